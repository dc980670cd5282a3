package mvds

import (
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// Modes of sending (2/MVDS "Flow").
const (
	// ModeBatch sends a new message in full to every member at once.
	ModeBatch = "batch"
	// ModeInteractive offers a new message's id first and sends the
	// message to the members that request it.
	ModeInteractive = "interactive"
)

// Durability settings of the store.
const (
	// DurabilityFull fsyncs every commit (SQLite synchronous=FULL).
	DurabilityFull = "full"
	// DurabilityNormal leaves commits in the operating system's cache
	// (synchronous=NORMAL): safe against a crash of the plugin, not
	// against a crash of the machine.
	DurabilityNormal = "normal"
)

// Defaults of the config keys that other code names; the tags of Config
// are the schema, and TestConfigDefaults holds these to them.
const (
	DefaultEpoch      = 300 * time.Millisecond
	DefaultMode       = ModeBatch
	DefaultDurability = DurabilityFull
	DefaultWire       = WireSpec
)

// Config is the layer's config section; its tags are the schema (bounds
// that are sizes of the wire format: MaxParentsLimit, MinFrame; max_frame's
// upper bound keeps a frame within the max_payload of the secure layers
// below, doubleratchet's 1 MiB - 16 KiB).
type Config struct {
	Epoch             time.Duration `json:"epoch" default:"300ms" min:"1ms" max:"1m" desc:"length of one epoch: every epoch each member gets at most one payload of what is due (1ms to 1m)"`
	Wire              string        `json:"wire" default:"spec" enum:"spec,bound" desc:"how messages are encoded: spec is 2/MVDS with 4/MVDS-META (interoperates with other MVDS nodes; a relay could change parents or the ephemeral flag unseen), bound is Strata's extension that binds author, parents and ephemeral flag to the message id (Strata nodes in bound mode only)"`
	Mode              string        `json:"mode" default:"batch" enum:"batch,interactive" desc:"how new messages go out: batch sends them whole, interactive offers their ids and sends them on request"`
	Eager             bool          `json:"eager" default:"true" desc:"send what is new (a message or offer, a request, an answer, an ephemeral message) at once when the link is idle, coalesced while a send is in progress, and leave epochs to retransmissions and acks; false sends everything at the next epoch, as 2/MVDS describes (timing only: the wire is the same)"`
	BackoffBase       uint64        `json:"backoff_base" default:"2" min:"1" max:"1048576" desc:"epochs between the first and second transmission of a record; each retransmission doubles the wait"`
	BackoffMax        uint64        `json:"backoff_max" default:"1024" min:"1" max:"1048576" desc:"the longest wait between transmissions, in epochs; beyond it the wait falls back to backoff_base"`
	AckDelay          uint64        `json:"ack_delay" default:"1" min:"1" max:"1048576" desc:"the most epochs an ack this node owes waits for a payload to ride on (a message, a retransmission, an ack owed longer) before an epoch sends it in a payload of its own; 1 sends it at the next epoch, as 2/MVDS does. A longer wait sends fewer payloads where every member acks every message to every other (a large group with group_acks: n(n-1) acks an epoch); above 1 it must be below backoff_base, or authors would send each message again before its acks come"`
	MaxSendCount      uint64        `json:"max_send_count" default:"0" min:"0" max:"1073741824" desc:"transmissions after which a message or offer to a member is abandoned; 0 never abandons"`
	Multicast         bool          `json:"multicast" default:"true" desc:"send this node's new messages in a group of three or more (with eager) as one payload for every member: a frame without a peer, which the secure layer seals once with sender keys (or once per member) and the host sends to the group's shared privacy address where the privacy layer has one; retransmissions and acks stay per member (see group_retransmit and group_acks); false sends one payload per member"`
	GroupAcks         bool          `json:"group_acks" default:"false" desc:"at each epoch, send the acks this node owes in a group of three or more in one payload for every member, and let them ride on a multicast payload: fewer frames where a frame for the group costs what one for a member does (whisper's shared addresses), more where the host copies it to each member (none); the other members learn who holds what, which cancels their delayed relay offers (relay_delay)"`
	GroupRetransmit   bool          `json:"group_retransmit" default:"false" desc:"in a group of three or more, send a message again as one payload for every member when it is due for retransmission to two or more members and to at least half of the others, instead of one payload each; the members that hold it drop the copy. Fewer frames and seals where a payload for one member costs the group (mls: each uses a generation of the sender's ratchet that every other member skips), more bytes where the host copies it to every member (none)"`
	Relay             bool          `json:"relay" default:"true" desc:"offer the messages received from one member to the other members, so that a member catches up from any peer; false also refuses relayed copies, so that every message comes from its author"`
	RelayDelay        uint64        `json:"relay_delay" default:"0" min:"0" max:"1048576" desc:"epochs a relay offer waits before it is first sent; a sign that the member holds the message meanwhile (its ack, seen with group_acks; its offer; the message from it) cancels it, so that only members that were away get offers; 0 sends them at once"`
	AcceptUnsolicited bool          `json:"accept_unsolicited" default:"true" desc:"accept a message that this node did not request; false takes only requested messages (interactive senders only)"`
	OnlineReset       int           `json:"online_reset" default:"100" min:"0" max:"1073741824" desc:"when a member is heard from after backoff_max epochs of silence, this many of the records waiting for it are sent at the next epoch; 0 disables"`
	MaxPending        int           `json:"max_pending" default:"1024" min:"1" max:"1073741824" desc:"messages per group held while a parent is missing; more are dropped unacknowledged"`
	MaxParents        int           `json:"max_parents" default:"32" min:"0" max:"256" desc:"parents one message may name"`
	MaxIDs            int           `json:"max_ids" default:"1024" min:"1" max:"65536" desc:"entries in each section (acks, offers, requests, messages) of one payload"`
	MaxRequests       int           `json:"max_requests" default:"1024" min:"1" max:"1073741824" desc:"outstanding requests per group and member; offers beyond it are ignored"`
	MaxFrame          int           `json:"max_frame" default:"262144" min:"81920" max:"1032192" desc:"largest payload on the wire, in bytes, sent or accepted"`
	PendingExpiry     time.Duration `json:"pending_expiry" default:"1h" min:"1s" max:"720h" desc:"how long a message may wait for a missing parent before it is dropped (1s to 720h)"`
	EphemeralWindow   time.Duration `json:"ephemeral_window" default:"5m" min:"1s" max:"720h" desc:"ephemeral messages older than this are dropped, and their ids are remembered this long (1s to 720h)"`
	Durability        string        `json:"durability" default:"full" enum:"full,normal" desc:"full fsyncs every commit; normal survives a crash of the plugin but not of the machine"`
}

// Validate checks what the tags cannot; sdk.LoadConfig calls it.
func (c Config) Validate() error {
	if c.BackoffMax < c.BackoffBase {
		return &sdk.ConfigError{Key: "backoff_max", Problem: fmt.Sprintf("is %d, below backoff_base %d", c.BackoffMax, c.BackoffBase), Fix: "make it at least backoff_base"}
	}
	if c.AckDelay > 1 && c.AckDelay >= c.BackoffBase {
		return &sdk.ConfigError{Key: "ack_delay", Problem: fmt.Sprintf("is %d, not below backoff_base %d", c.AckDelay, c.BackoffBase),
			Fix: "make it smaller than backoff_base, or raise backoff_base: an author sends a message again backoff_base epochs after it, so acks that wait as long come too late and every message goes twice"}
	}
	return nil
}

// bound reports whether the node speaks the bound wire mode.
func (c Config) bound() bool { return c.Wire == WireBound }

// interactive reports whether new messages are offered first.
func (c Config) interactive() bool { return c.Mode == ModeInteractive }
