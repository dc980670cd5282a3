// Package mvds is Strata's sync layer (core/api/sync/v1) built on Vac
// MVDS: 2/MVDS for the wire and the sync state, with the parents and the
// ephemeral flag of 4/MVDS-META in Message.metadata, as the specs define
// them (config wire: spec, the default). An opt-in extension (wire: bound)
// carries the author, the parents and the flag inside the message body
// instead, so that the message id covers them.
//
// What it implements of MVDS:
//
//   - the wire format: Payload{acks, offers, requests, messages} and
//     Message{group_id, timestamp, body, metadata}, Metadata{parents,
//     ephemeral} with the spec's field numbers (wirepb), one Payload per
//     DOWN frame, and the message id SHA-256("MESSAGE_ID" || group_id ||
//     u64le(timestamp) || body) (MessageID); two extension fields that
//     spec nodes skip: the author of a copy a member relays for another
//     (Message.author), and the bound mode's messages
//     (Payload.bound_messages);
//   - per-message, per-member state records (OFFER, REQUEST, MESSAGE) with
//     a send count and a next send epoch; an epoch every `epoch` (300 ms
//     by default) in which each member gets at most one payload with what
//     is due (with `eager`, the default, what was never sent goes at once
//     instead, coalesced under load: flush.go); retransmission with the spec's backoff, exponential up to a
//     bound and then back to the start (nextEpoch); acks, never
//     retransmitted, sent again for every copy that arrives;
//   - batch mode (the default: messages go whole) and interactive mode
//     (offer, request, message), chosen by `mode`; ephemeral messages are
//     always sent whole, once;
//   - causal delivery: a message goes up once all its parents have; until
//     then it waits, within limits, and each missing parent is requested
//     (causal.go);
//   - relaying: a delivered message is offered to the members that are
//     neither its author nor the member it came from, so that a member
//     that missed it catches up from any peer.
//
// What it adds: durable state in SQLite (store.go; Send returns once the
// message is committed, concurrent Sends and SendBatch sharing one commit
// (commit.go), a message is acked once committed, the delivered
// mark is committed before the UP frame leaves), exactly-once delivery to
// the host with Ack (ack.go: a delivery stays unacknowledged until the
// host's Ack, committed before Ack returns, and every Start delivers the
// unacknowledged ones again, in their first order; ephemeral messages are
// delivered once and never again), limits on everything a peer can make
// it hold, each violation dropped and counted, and online reset (a member
// heard from after a long silence gets what waits for it at the next
// epoch).
//
// What it does not do: prove authorship of relayed messages (the secure
// layer authenticates the member a frame comes from, not the author a
// relayed copy names; `relay: false` accepts first-hand copies only), send
// history to members that join later, compact or expire delivered
// messages, or 4/MVDS-META's eventual mode. docs/plugins/mvds.md has the
// details: wire and wire modes, config keys, limits, durability, trust
// model.
//
// The node (node.go, receive.go, causal.go, tick.go, ack.go) is the state
// machine and knows nothing of the SDK; Layer (layer.go, control.go)
// drives it: HandleBatch feeds it payloads, a ticker runs its epochs, a
// goroutine that Start begins redelivers, and what they return is
// emitted.
package mvds
