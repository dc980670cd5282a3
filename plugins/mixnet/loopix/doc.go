// Package loopix is the Loopix mixnet (Piotrowska et al., USENIX Security
// 2017) as pure state machines: a Client, a Mix and a Provider, each fed
// inputs — a link frame from an overlay peer, a tick of an injected clock,
// a message to send — and drained of outputs (Ready: frames to send now to
// which overlay peer, messages delivered), in the style of etcd's raft.
// They do no I/O of their own and never sleep: time enters only as the
// instants given to them, randomness only through the io.Reader they were
// built with, and the two pieces of durable state — a provider's mailboxes
// and a relay's replay tags — through the Mailboxes and ReplayFilter
// interfaces, which a caller backs with SQLite (package mailbox) and
// package replay, and which are written before anything derived from them
// is returned in Ready.
//
// Packets are Katzenpost-compatible X25519 Sphinx packets (package sphinx)
// on paths chosen from a verified PKI document (package pki): the sender's
// provider, one mix of every layer, the recipient's provider. The sender
// samples every hop's delay from Exp(μ) and writes it into the hop's
// routing block; mixes hold each packet for exactly that delay.
//
// Clients send on three Poisson streams: λP (a real fragment if one is
// queued, a drop cover packet otherwise), λL (a loop through the network
// back to the client's own mailbox) and λD (drop cover, discarded by a
// provider). Mixes send their own loops at λM. A client pulls its mailbox
// every pull interval; the provider answers every pull with the same number
// of frames of the same size, padding with dummies.
//
// The user payload of a packet is sealed end to end to the recipient's
// X25519 key (Seal), so the recipient's provider, the only relay that sees
// the payload, stores ciphertext; messages longer than one packet are
// fragmented and reassembled with bounded buffers (Reassembler). Every
// packet to a mailbox carries a SURB back to its sender, on which the
// recipient acknowledges each fragment without learning where it leads;
// fragments not acknowledged in time are sent again.
//
// Link frames between a client and its provider and between relays are
// defined in wire.go; every decoder returns errors and has a fuzz target.
package loopix
