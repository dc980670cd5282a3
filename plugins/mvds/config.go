package mvds

import (
	"fmt"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
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

// Defaults of the config keys.
const (
	DefaultEpoch           = 300 * time.Millisecond
	DefaultMode            = ModeBatch
	DefaultBackoffBase     = 2
	DefaultBackoffMax      = 1024
	DefaultMaxSendCount    = 0
	DefaultOnlineReset     = 100
	DefaultMaxPending      = 1024
	DefaultMaxParents      = 32
	DefaultMaxIDs          = 1024
	DefaultMaxRequests     = 1024
	DefaultMaxFrame        = 256 << 10
	DefaultPendingExpiry   = time.Hour
	DefaultEphemeralWindow = 5 * time.Minute
	DefaultDurability      = DurabilityFull
)

// Bounds of the config keys that are not sizes of the wire format.
const (
	minEpoch   = time.Millisecond
	maxEpoch   = time.Minute
	maxBackoff = 1 << 20
	maxCount   = 1 << 30
	// maxFrameLimit keeps a frame within the max_payload of the secure
	// layers below (doubleratchet: 1 MiB - 16 KiB).
	maxFrameLimit = 1<<20 - 16<<10
	maxIDsLimit   = 1 << 16
	minWindow     = time.Second
	maxWindow     = 30 * 24 * time.Hour
)

// config is the layer's config section as JSON. A key that is absent keeps
// its default (newConfig).
type config struct {
	Epoch             string `json:"epoch"`
	Mode              string `json:"mode"`
	BackoffBase       int64  `json:"backoff_base"`
	BackoffMax        int64  `json:"backoff_max"`
	MaxSendCount      int64  `json:"max_send_count"`
	Relay             bool   `json:"relay"`
	AcceptUnsolicited bool   `json:"accept_unsolicited"`
	OnlineReset       int64  `json:"online_reset"`
	MaxPending        int64  `json:"max_pending"`
	MaxParents        int64  `json:"max_parents"`
	MaxIDs            int64  `json:"max_ids"`
	MaxRequests       int64  `json:"max_requests"`
	MaxFrame          int64  `json:"max_frame"`
	PendingExpiry     string `json:"pending_expiry"`
	EphemeralWindow   string `json:"ephemeral_window"`
	Durability        string `json:"durability"`
}

func newConfig() config {
	return config{
		Epoch:             DefaultEpoch.String(),
		Mode:              DefaultMode,
		BackoffBase:       DefaultBackoffBase,
		BackoffMax:        DefaultBackoffMax,
		MaxSendCount:      DefaultMaxSendCount,
		Relay:             true,
		AcceptUnsolicited: true,
		OnlineReset:       DefaultOnlineReset,
		MaxPending:        DefaultMaxPending,
		MaxParents:        DefaultMaxParents,
		MaxIDs:            DefaultMaxIDs,
		MaxRequests:       DefaultMaxRequests,
		MaxFrame:          DefaultMaxFrame,
		PendingExpiry:     DefaultPendingExpiry.String(),
		EphemeralWindow:   DefaultEphemeralWindow.String(),
		Durability:        DefaultDurability,
	}
}

// schema is the config section's ConfigField list (PluginInfo.config).
func schema() []*commonv1.ConfigField {
	return []*commonv1.ConfigField{
		sdk.Duration("epoch", "length of one epoch: every epoch each member gets at most one payload of what is due (1ms to 1m)", DefaultEpoch),
		sdk.OneOf(sdk.String("mode", "how new messages go out: batch sends them whole, interactive offers their ids and sends them on request", DefaultMode), ModeBatch, ModeInteractive),
		sdk.Int("backoff_base", "epochs between the first and second transmission of a record; each retransmission doubles the wait", DefaultBackoffBase, 1, maxBackoff),
		sdk.Int("backoff_max", "the longest wait between transmissions, in epochs; beyond it the wait falls back to backoff_base", DefaultBackoffMax, 1, maxBackoff),
		sdk.Int("max_send_count", "transmissions after which a message or offer to a member is abandoned; 0 never abandons", DefaultMaxSendCount, 0, maxCount),
		sdk.Bool("relay", "offer the messages received from one member to the other members, so that a member catches up from any peer; false also refuses relayed copies, so that every message comes from its author", true),
		sdk.Bool("accept_unsolicited", "accept a message that this node did not request; false takes only requested messages (interactive senders only)", true),
		sdk.Int("online_reset", "when a member is heard from after backoff_max epochs of silence, this many of the records waiting for it are sent at the next epoch; 0 disables", DefaultOnlineReset, 0, maxCount),
		sdk.Int("max_pending", "messages per group held while a parent is missing; more are dropped unacknowledged", DefaultMaxPending, 1, maxCount),
		sdk.Int("max_parents", "parents one message may name", DefaultMaxParents, 0, MaxParentsLimit),
		sdk.Int("max_ids", "entries in each section (acks, offers, requests, messages) of one payload", DefaultMaxIDs, 1, maxIDsLimit),
		sdk.Int("max_requests", "outstanding requests per group and member; offers beyond it are ignored", DefaultMaxRequests, 1, maxCount),
		sdk.Int("max_frame", "largest payload on the wire, in bytes, sent or accepted", DefaultMaxFrame, MinFrame, maxFrameLimit),
		sdk.Duration("pending_expiry", "how long a message may wait for a missing parent before it is dropped (1s to 720h)", DefaultPendingExpiry),
		sdk.Duration("ephemeral_window", "ephemeral messages older than this are dropped, and their ids are remembered this long (1s to 720h)", DefaultEphemeralWindow),
		sdk.OneOf(sdk.String("durability", "full fsyncs every commit; normal survives a crash of the plugin but not of the machine", DefaultDurability), DurabilityFull, DurabilityNormal),
	}
}

// settings are a checked config, in the types the node uses.
type settings struct {
	epoch             time.Duration
	interactive       bool
	backoffBase       uint64
	backoffMax        uint64
	maxSendCount      uint64
	relay             bool
	acceptUnsolicited bool
	onlineReset       int
	maxPending        int
	maxParents        int
	maxIDs            int
	maxRequests       int
	maxFrame          int
	pendingExpiry     time.Duration
	ephemeralWindow   time.Duration
	durability        string
}

// parseConfig decodes and checks a config section.
func parseConfig(configJSON string) (settings, error) {
	c := newConfig()
	if err := sdk.DecodeConfig(configJSON, &c); err != nil {
		return settings{}, err
	}
	return c.settings()
}

// settings checks c and converts it.
func (c config) settings() (settings, error) {
	epoch, err := duration("epoch", c.Epoch, minEpoch, maxEpoch)
	if err != nil {
		return settings{}, err
	}
	expiry, err := duration("pending_expiry", c.PendingExpiry, minWindow, maxWindow)
	if err != nil {
		return settings{}, err
	}
	window, err := duration("ephemeral_window", c.EphemeralWindow, minWindow, maxWindow)
	if err != nil {
		return settings{}, err
	}
	if c.Mode != ModeBatch && c.Mode != ModeInteractive {
		return settings{}, &sdk.ConfigError{Key: "mode", Problem: fmt.Sprintf("is %q", c.Mode), Fix: "use batch or interactive"}
	}
	if c.Durability != DurabilityFull && c.Durability != DurabilityNormal {
		return settings{}, &sdk.ConfigError{Key: "durability", Problem: fmt.Sprintf("is %q", c.Durability), Fix: "use full or normal"}
	}
	for _, k := range []struct {
		key    string
		v      int64
		lo, hi int64
	}{
		{"backoff_base", c.BackoffBase, 1, maxBackoff},
		{"backoff_max", c.BackoffMax, 1, maxBackoff},
		{"max_send_count", c.MaxSendCount, 0, maxCount},
		{"online_reset", c.OnlineReset, 0, maxCount},
		{"max_pending", c.MaxPending, 1, maxCount},
		{"max_parents", c.MaxParents, 0, MaxParentsLimit},
		{"max_ids", c.MaxIDs, 1, maxIDsLimit},
		{"max_requests", c.MaxRequests, 1, maxCount},
		{"max_frame", c.MaxFrame, MinFrame, maxFrameLimit},
	} {
		if k.v < k.lo || k.v > k.hi {
			return settings{}, &sdk.ConfigError{Key: k.key, Problem: fmt.Sprintf("is %d, out of range", k.v), Fix: fmt.Sprintf("use a value from %d to %d", k.lo, k.hi)}
		}
	}
	if c.BackoffMax < c.BackoffBase {
		return settings{}, &sdk.ConfigError{Key: "backoff_max", Problem: fmt.Sprintf("is %d, below backoff_base %d", c.BackoffMax, c.BackoffBase), Fix: "make it at least backoff_base"}
	}
	return settings{
		epoch:             epoch,
		interactive:       c.Mode == ModeInteractive,
		backoffBase:       uint64(c.BackoffBase),
		backoffMax:        uint64(c.BackoffMax),
		maxSendCount:      uint64(c.MaxSendCount),
		relay:             c.Relay,
		acceptUnsolicited: c.AcceptUnsolicited,
		onlineReset:       int(c.OnlineReset),
		maxPending:        int(c.MaxPending),
		maxParents:        int(c.MaxParents),
		maxIDs:            int(c.MaxIDs),
		maxRequests:       int(c.MaxRequests),
		maxFrame:          int(c.MaxFrame),
		pendingExpiry:     expiry,
		ephemeralWindow:   window,
		durability:        c.Durability,
	}, nil
}

func duration(key, s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("is %q", s), Fix: fmt.Sprintf("use a duration from %v to %v", lo, hi)}
	}
	return d, nil
}
