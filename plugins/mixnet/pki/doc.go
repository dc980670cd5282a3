// Package pki is the mixnet's directory: the epoch clock, the relays'
// self-signed descriptors, and the per-epoch network document that
// authorities sign and every client and relay verifies before it routes.
//
// A Document lists the Loopix parameters, the stratified mix layers and
// the providers for one epoch. Each node appears as a SignedDescriptor:
// its identity key (Ed25519), its Sphinx keys (X25519) for the epoch and
// the next, its role and layer, and its libp2p and devp2p addresses,
// signed by the identity key itself. The document body is encoded
// canonically (one encoding per value, refused otherwise), so authorities
// that assemble the same descriptors sign the same bytes; Verify requires
// k of n configured authorities. Because descriptors carry their own
// signatures, a document assembled from gossiped or on-chain registrations
// is verified the same way, with only the authority step replaced.
//
// KeyChain derives a node's per-epoch Sphinx keys forward-securely, and
// the testnet subpackage generates signed documents for local networks.
// docs/plugins/mixnet-pki.md describes the format and the rules.
package pki
