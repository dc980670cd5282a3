// Package devp2p is Strata's p2p overlay layer built on go-ethereum's devp2p
// stack (the p2p package: RLPx transport, secp256k1 node keys, enode URLs,
// optional discv4/discv5 discovery).
//
// Every protocol named in StartRequest.protocols is registered as a devp2p
// subprotocol (name, version, Length = message_codes) before the server
// starts; devp2p cannot add protocols later. Frames name the protocol by its
// name alone, as the libp2p plugin does. For a protocol with two or more
// message codes a frame's payload is one byte of message code followed by
// the message's raw RLP payload; for a protocol with a single code (or none
// declared) the payload is carried whole as message 0, so opaque layers run
// unchanged over either overlay. A DOWN frame without a peer goes to every
// connected peer that runs its protocol (devp2p has no pubsub).
//
// The overlay peer id (Frame.peer, PeerEvent.peer, StartResponse
// local_address) is the 32-byte devp2p node id, Keccak256 of the node's
// public key. The node key is kept in <data_dir>/nodekey. The plugin binary
// is cmd/strata-plugin-devp2p; docs/plugins/devp2p.md lists the keys.
package devp2p
