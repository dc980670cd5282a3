package layer

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mls/suite"
)

// Config is the layer's config section; its tags are the schema.
type Config struct {
	CipherSuite        int           `json:"cipher_suite" default:"1" min:"1" max:"65535" desc:"RFC 9420 cipher suite of the groups this node creates and of its KeyPackages: 1 (X25519, AES-128-GCM, SHA-256, Ed25519, the default), 3 (X25519, ChaCha20-Poly1305, SHA-256, Ed25519) or any other suite the library serves (2, 4, 5, 6, 7); a contact whose card is of another suite cannot be added to this node's groups."`
	KeyPackages        int           `json:"key_packages" default:"5" min:"1" max:"100" desc:"How many one-time KeyPackages the contact card carries (besides the last-resort one); a used one is replaced at once and the card republished."`
	KeyPackageLifetime time.Duration `json:"key_package_lifetime" default:"2160h" min:"1h" max:"87600h" desc:"Lifetime of the KeyPackages and leaves this node makes; the last-resort KeyPackage is replaced when half of it has passed."`
	PastEpochs         int           `json:"past_epochs" default:"2" min:"0" max:"64" desc:"How many epochs before the current one keep their keys, so that late application messages sent in them still open."`
	SkippedKeys        int           `json:"skipped_keys" default:"256" min:"0" max:"65536" desc:"How many keys of skipped generations each sender's ratchet keeps per epoch, so that a message that arrives after later ones from its sender still opens; the oldest go first. Every frame a member seals for some members only is a skipped generation at the others, and the kept keys are written with the group state after each batch: keep it small in a large group whose links deliver in order. 0 keeps none."`
	SettleWindow       time.Duration `json:"settle_window" default:"10s" min:"1ms" max:"1h" desc:"How long a member keeps the state from before each Commit it applied: a competing Commit for the same epoch with a lower hash that arrives within it wins (the member rolls back and applies it); after it, the Commit stands."`
	BranchRetention    time.Duration `json:"branch_retention" default:"2m" min:"1ms" max:"24h" desc:"How long the losing branch of a fork stays readable (receive-only), so that application messages sealed in it still open; also how long an UP frame for an epoch or group not reached yet is kept. At least settle_window."`
	RetransmitInitial  time.Duration `json:"retransmit_initial" default:"2s" min:"1ms" max:"1h" desc:"First wait before a Commit or Welcome is sent again to a member that has not shown the new epoch in a status message; each later wait doubles."`
	CreateWait         time.Duration `json:"create_wait" default:"0s" min:"0" max:"1h" desc:"How long the lowest member of a conversation of three or more waits for a Welcome (the group may exist already, this node being added to it) before it creates the group, and, twice this, how long another member waits for the Welcome before it asks the lowest member for the group; 0: retransmit_initial. Set it apart from retransmit_initial where the path below is reliable and slow (a mixnet): a long retransmit_initial spares retransmissions without delaying the group."`
	RetransmitMax      time.Duration `json:"retransmit_max" default:"1m" min:"1ms" max:"24h" desc:"Longest wait between two retransmissions of a Commit or Welcome. At least retransmit_initial."`
	RetransmitAttempts int           `json:"retransmit_attempts" default:"12" min:"0" max:"1000" desc:"How many rounds a Commit and its Welcome are sent again while members have not shown the new epoch (each round once to the group, or to each member missing when they are few); then the committer gives up on the members still missing."`
	TakeoverTimeout    time.Duration `json:"takeover_timeout" default:"30s" min:"1ms" max:"24h" desc:"How long the k-th member in commit order waits (k times this) for the members before it to commit a membership change the host asked for, before it commits it itself."`
	Padding            int           `json:"padding" default:"32" min:"0" max:"4096" desc:"Application messages are padded to a multiple of this many bytes inside the encryption; 0 turns padding off."`
	UpdateInterval     time.Duration `json:"update_interval" default:"24h" min:"0" max:"8760h" desc:"How long this member's leaf may stay unchanged before it refreshes it (post-compromise security): it commits an empty Commit with an UpdatePath when the group is quiet and it is its turn in a rotation derived from the epoch; a membership Commit it makes meanwhile carries the path instead. 0 turns refreshing off."`
	StatusToGroupMax   int           `json:"status_to_group_max" default:"8" min:"0" max:"1024" desc:"In a group of at most this many members a member sends its status after every epoch change to the whole group, so that every member compares epochs with every other (forks detected by all); in a larger group it sends it to the committer of the Commit that entered the epoch only, so that an epoch costs O(n) frames instead of O(n²) (forks detected by the committers, through their retransmissions)."`
	HeldFrames         int           `json:"held_frames" default:"256" min:"1" max:"100000" desc:"Most frames held per conversation: DOWN frames waiting for their group (not created, or its Welcome not here yet), and UP frames for an epoch or group not reached yet; the oldest is dropped and counted beyond it."`
}

// createWait is CreateWait, or RetransmitInitial when it is 0.
func (c *Config) createWait() time.Duration {
	if c.CreateWait > 0 {
		return c.CreateWait
	}
	return c.RetransmitInitial
}

// Validate checks what the tags cannot say; sdk.LoadConfig calls it.
func (c *Config) Validate() error {
	if !slices.Contains(suite.Supported(), suite.ID(c.CipherSuite)) {
		var ids []string
		for _, id := range suite.Supported() {
			ids = append(ids, fmt.Sprint(uint16(id)))
		}
		return &sdk.ConfigError{Key: "cipher_suite", Problem: fmt.Sprintf("cipher suite %d is not one the library serves", c.CipherSuite),
			Fix: "use one of " + strings.Join(ids, ", ") + " (1 is X25519/AES-128-GCM/SHA-256/Ed25519)"}
	}
	if c.BranchRetention < c.SettleWindow {
		return &sdk.ConfigError{Key: "branch_retention", Problem: fmt.Sprintf("%v is shorter than settle_window (%v)", c.BranchRetention, c.SettleWindow),
			Fix: "set branch_retention to at least settle_window: a losing branch must stay readable while a Commit can still lose"}
	}
	if c.RetransmitMax < c.RetransmitInitial {
		return &sdk.ConfigError{Key: "retransmit_max", Problem: fmt.Sprintf("%v is shorter than retransmit_initial (%v)", c.RetransmitMax, c.RetransmitInitial),
			Fix: "set retransmit_max to at least retransmit_initial"}
	}
	return nil
}
