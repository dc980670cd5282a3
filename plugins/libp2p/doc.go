// Package libp2pplugin is Strata's p2p overlay layer built on go-libp2p.
//
// The layer carries the frames of the layers above over libp2p streams. Each
// named protocol registered at Start becomes the libp2p protocol
// "/strata/<name>/<version>"; a unicast frame travels on one long-lived
// outbound stream per peer and protocol, encoded as a uvarint length followed
// by the payload. A frame without a peer is a broadcast and is published on
// the GossipSub topic named by its protocol. Connections use TCP or QUIC,
// secured with Noise or TLS and multiplexed with yamux; relay, hole punching
// and NAT port mapping are off.
//
// The node's Ed25519 identity is kept in <data_dir>/identity.key so that its
// peer id survives restarts. The plugin binary is cmd/strata-plugin-libp2p;
// docs/plugins/libp2p.md lists the configuration keys, limits and counters.
package libp2pplugin
