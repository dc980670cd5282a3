package bsp

import (
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// Session kinds (§2.7).
const (
	// ModeEager sends a new message of this node in full to every member
	// at once, as Briar's eager simplex sessions do; messages relayed from
	// others are offered.
	ModeEager = "eager"
	// ModeInteractive offers every message and sends it on request, as
	// Briar's duplex sessions do.
	ModeInteractive = "interactive"
)

// Durability settings of the store.
const (
	// DurabilityFull fsyncs every commit (SQLite synchronous=FULL).
	DurabilityFull = "full"
	// DurabilityNormal survives a crash of the plugin, not of the machine.
	DurabilityNormal = "normal"
)

// Config is the layer's config section; its tags are the schema.
type Config struct {
	Mode            string        `json:"mode" default:"eager" enum:"eager,interactive" desc:"eager sends this node's new messages whole at once and offers relayed ones; interactive offers every message and sends it on request"`
	InitialLatency  time.Duration `json:"initial_latency" default:"1s" min:"1ms" max:"1h" desc:"the latency assumed for a member before one is observed; a record is resent after 2 x latency x 2^transmissions, as Briar times it"`
	MinLatency      time.Duration `json:"min_latency" default:"50ms" min:"1ms" max:"1h" desc:"the least latency used, whatever is observed"`
	MaxLatency      time.Duration `json:"max_latency" default:"30s" min:"1ms" max:"8760h" desc:"the most latency used, whatever is observed (Briar's network transports declare 30s)"`
	MaxBackoff      time.Duration `json:"max_backoff" default:"10m" min:"1ms" max:"8760h" desc:"the longest wait between transmissions of a record to a member; Briar has none, and a member who comes back is sent what is due at once"`
	Keepalive       time.Duration `json:"keepalive" default:"30s" min:"0s" max:"24h" desc:"a member sent nothing for this long gets a frame with VERSIONS alone, as Briar's duplex sessions flush every maxIdleTime, so that it hears this node is there; 0 disables"`
	Coalesce        time.Duration `json:"coalesce" default:"0s" min:"0s" max:"10s" desc:"how long to gather records after a flush before the next one; 0 sends at once when idle, and what arrives during a flush goes in the next"`
	Relay           bool          `json:"relay" default:"true" desc:"offer messages received from one member to the others, so that a member catches up from any peer"`
	AnswerBackoff   int           `json:"answer_backoff" default:"4" min:"0" max:"64" desc:"a repair request (for a message this node did not offer or send to the requester) is answered after a random delay of up to this many of the requester's latencies, and not at all if the requester acks it meanwhile (it got it from another member); 0 answers at once"`
	Multicast       bool          `json:"multicast" default:"true" desc:"in a group of three or more, send what is new for every other member at once (this node's new messages, or their offers in interactive mode, its ephemeral messages, a session to open) as one frame for the whole group: a frame without a peer, which the secure layer seals once (mls) or once per member and the host sends to the group's shared privacy address where the privacy layer has one; each member's state is updated as if the frame had gone to it alone, so retransmissions stay per member; false sends one frame per member"`
	GroupRetransmit bool          `json:"group_retransmit" default:"false" desc:"in a group of three or more with multicast, send this node's message again as one frame for the whole group when two or more members, and at least half of the others, are due for its retransmission (none acknowledged it in time), instead of a frame to each; the members that hold it get a copy they drop. Fewer frames where a frame for the group costs what one for a member does (mls with a shared privacy address: mixnet, whisper), more where the host copies it to every member (none)"`
	GroupAcks       bool          `json:"group_acks" default:"false" desc:"in a group of three or more, send the acks this node owes to two or more members at once (and any it owes when a group frame goes anyway) in one frame for the whole group, each id once: fewer frames where a frame for the group costs what one for a member does (mls, a shared privacy address), more bytes where it is sealed or copied for each member (doubleratchet, none); the other members learn who holds what, which cancels their relayed offers to the acker"`
	AckDelay        time.Duration `json:"ack_delay" default:"0s" min:"0" max:"1m" desc:"how long the acks this node owes for messages may wait for other records to the same member (or, with group_acks, to the group) before they go in a frame of their own, as TCP's delayed acks; 0 sends them at the next flush. Fewer frames where each costs a scarce slot (a mixnet client sends λP real packets a second, and every member reads every group frame from the group's shared mailbox); keep it well below the senders' retransmission wait (2 × initial_latency at first, then twice the observed round trip, which comes to include the delay)"`
	BatchRelays     bool          `json:"batch_relays" default:"true" desc:"relayed offers, and acks that answer offers, wait up to half the member's latency for other records to it and go in one frame with them, instead of in frames of their own (acks of messages are never held); false sends them at the next flush"`
	MaxOffered      int           `json:"max_offered" default:"1000" min:"1" max:"1048576" desc:"offered ids not yet requested kept per member (Briar's MAX_OFFERED_MESSAGES); more are dropped"`
	MaxPending      int           `json:"max_pending" default:"1024" min:"1" max:"1073741824" desc:"messages per group held while a dependency is missing; more are dropped unacknowledged"`
	MaxParents      int           `json:"max_parents" default:"32" min:"0" max:"32" desc:"parents (dependencies) one message may name"`
	MaxFrame        int           `json:"max_frame" default:"65536" min:"32821" max:"1032192" desc:"largest payload of one frame to the layer below, in bytes; it holds a VERSIONS record and at least one largest MESSAGE record"`
	MaxClockSkew    time.Duration `json:"max_clock_skew" default:"24h" min:"1s" max:"8760h" desc:"a message stamped further in the future than this is invalid (Briar's MAX_CLOCK_DIFFERENCE)"`
	History         time.Duration `json:"history" default:"0s" min:"0s" max:"876000h" desc:"bounded history: messages older than this are not offered to a member who joins, and those compacted are forgotten after it; 0 keeps all"`
	EphemeralWindow time.Duration `json:"ephemeral_window" default:"5m" min:"1s" max:"720h" desc:"ids of ephemeral messages delivered are remembered this long, so that a replay is not delivered again"`
	Durability      string        `json:"durability" default:"full" enum:"full,normal" desc:"full fsyncs every commit (one fsync shared by concurrent sends); normal survives a crash of the plugin but not of the machine"`
}

// Validate checks what the tags cannot; sdk.LoadConfig calls it.
func (c Config) Validate() error {
	if c.MaxLatency < c.MinLatency {
		return &sdk.ConfigError{Key: "max_latency", Problem: fmt.Sprintf("is %v, below min_latency %v", c.MaxLatency, c.MinLatency), Fix: "make it at least min_latency"}
	}
	return nil
}

func (c Config) interactive() bool { return c.Mode == ModeInteractive }
