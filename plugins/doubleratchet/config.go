package doubleratchet

import (
	"time"

	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
)

// Checkpoint values.
const (
	checkpointBeforeSend = "before_send"
	checkpointAfterSend  = "after_send"
	checkpointDeferred   = "deferred"
)

// Config is the layer's config section; its tags are the schema.
type Config struct {
	SignedPreKeyRotation  time.Duration `json:"signed_prekey_rotation" default:"168h" min:"1s" desc:"How often the signed prekey (and the last-resort ML-KEM prekey) is replaced; the contact card is re-signed each time."`
	SignedPreKeyRetention time.Duration `json:"signed_prekey_retention" default:"720h" min:"0s" desc:"How long a replaced signed prekey is kept for initial messages still in flight; after that they fail (ErrUnknownPreKey)."`
	OneTimePreKeys        int           `json:"one_time_prekeys" default:"100" min:"0" max:"10000" desc:"Size of the pool of one-time X25519 prekeys handed to contacts that ask (BundleRequest); refilled when half is used."`
	OneTimeKEMPreKeys     int           `json:"one_time_kem_prekeys" default:"20" min:"0" max:"1000" desc:"Size of the pool of one-time ML-KEM-1024 prekeys, as one_time_prekeys."`
	PostQuantum           bool          `json:"post_quantum" default:"true" desc:"Publish ML-KEM-1024 prekeys and use PQXDH with contacts that publish them too; off: X3DH only."`
	MaxSkip               int           `json:"max_skip" default:"1000" min:"1" max:"100000" desc:"Most message keys one message may skip in a chain (Double Ratchet MAX_SKIP); a header further ahead is refused."`
	MaxSkippedKeys        int           `json:"max_skipped_keys" default:"1000" min:"1" max:"100000" desc:"Most skipped message keys stored per session; the oldest are deleted first."`
	SkippedKeyTTL         time.Duration `json:"skipped_key_ttl" default:"720h" min:"1s" desc:"How long a skipped message key is kept for a late message before it is deleted."`
	Padding               int           `json:"padding" default:"32" min:"0" max:"4096" desc:"Plaintexts are padded to a multiple of this many bytes before encryption, to blur their length; 0 turns padding off."`
	Checkpoint            string        `json:"checkpoint" default:"after_send" enum:"before_send,after_send,deferred" desc:"When the write-ahead log is truncated after a commit that superseded keys: after_send (right after the batch's frames are handed on: a message does not wait for the three fsyncs of the checkpoint; superseded keys stay in the log for those milliseconds), before_send (before any frame of the batch leaves: no file holds a superseded key once a message that used its successor is out) or deferred (once, checkpoint_delay after the first such commit, for every commit in between: fewer fsyncs and no batch waits behind one; superseded keys stay in the log up to checkpoint_delay)."`
	CheckpointDelay       time.Duration `json:"checkpoint_delay" default:"1s" min:"1ms" max:"1h" desc:"With checkpoint: deferred, the longest a superseded key stays in the write-ahead log: the truncating checkpoint runs this long after the first commit that needed it."`
	GroupMessages         string        `json:"group_messages" default:"pairwise" enum:"pairwise,sender_keys" desc:"How a message for every member of a group of three or more is sealed: pairwise (once per member, each in its own Double Ratchet session) or sender_keys (once for the group with the node's sender key, handed to each member pairwise; sent to the group's shared privacy address)."`

	// limits are the ratchet's limits from the keys above, set by Validate.
	limits ratchet.Limits
}

// Validate derives the ratchet's limits; sdk.LoadConfig calls it.
func (c *Config) Validate() error {
	c.limits = ratchet.DefaultLimits()
	c.limits.MaxSkip = c.MaxSkip
	c.limits.MaxSkippedKeys = c.MaxSkippedKeys
	c.limits.SkippedKeyTTL = c.SkippedKeyTTL
	return nil
}
