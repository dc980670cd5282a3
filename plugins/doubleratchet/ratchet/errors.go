package ratchet

import (
	"errors"
	"time"
)

// Errors returned by this package. They are wrapped with context; test them
// with errors.Is. Every error leaves the State unchanged.
var (
	// ErrMalformed reports bad lengths or a bad encoding (message, AD, SK,
	// keys, serialised state).
	ErrMalformed = errors.New("ratchet: malformed input")
	// ErrHeader reports that no header key of this session opens the
	// header: the message belongs to another session or was tampered with.
	// A replay of a message from an old chain of which no skipped key is
	// stored any more also gives ErrHeader: its header key is gone.
	ErrHeader = errors.New("ratchet: header does not open under any header key of this session")
	// ErrTooFarAhead reports a header whose PN or N would make the receiver
	// skip more than MaxSkip message keys in one chain.
	ErrTooFarAhead = errors.New("ratchet: message too far ahead")
	// ErrDuplicate reports a header that opens, for a message whose key was
	// already used or has been deleted (a replay, or a key evicted/expired).
	ErrDuplicate = errors.New("ratchet: message key already used or deleted")
	// ErrAuth reports that the message AEAD did not open.
	ErrAuth = errors.New("ratchet: message authentication failed")
	// ErrNoSendingChain reports Encrypt before a sending chain exists (Bob
	// before he has decrypted a message), or an exhausted sending chain.
	ErrNoSendingChain = errors.New("ratchet: no sending chain")
	// ErrBadKey reports a bad ratchet key: an all-zero X25519 output.
	ErrBadKey = errors.New("ratchet: bad ratchet key")
)

// Limits bounds the work and memory a peer can cause. A field that is zero
// or negative selects its default (DefaultLimits). Limits are not part of
// the serialised state; pass the same (or larger) limits to Unmarshal.
type Limits struct {
	// MaxSkip is the most message keys skipped in one chain by one message
	// (checked separately for PN on the old chain and N on the new one).
	MaxSkip int
	// MaxSkippedKeys is the most skipped message keys stored per session;
	// the oldest are deleted to make room.
	MaxSkippedKeys int
	// MaxSkippedChains is the most distinct header keys with stored skipped
	// keys; the oldest chains are deleted first.
	MaxSkippedChains int
	// SkippedKeyTTL is the age after which a stored skipped key is deleted
	// (whole seconds).
	SkippedKeyTTL time.Duration
	// MaxKeepMessages deletes a stored skipped key once this many later
	// messages have been decrypted in the session.
	MaxKeepMessages int
}

// DefaultLimits returns Strata's defaults: MaxSkip 1000, MaxSkippedKeys
// 1000, MaxSkippedChains 5, SkippedKeyTTL 30 days, MaxKeepMessages 3000.
func DefaultLimits() Limits {
	return Limits{
		MaxSkip:          1000,
		MaxSkippedKeys:   1000,
		MaxSkippedChains: 5,
		SkippedKeyTTL:    30 * 24 * time.Hour,
		MaxKeepMessages:  3000,
	}
}

// normalized replaces unset (≤ 0) fields by their defaults.
func (l Limits) normalized() Limits {
	d := DefaultLimits()
	if l.MaxSkip <= 0 {
		l.MaxSkip = d.MaxSkip
	}
	if l.MaxSkippedKeys <= 0 {
		l.MaxSkippedKeys = d.MaxSkippedKeys
	}
	if l.MaxSkippedChains <= 0 {
		l.MaxSkippedChains = d.MaxSkippedChains
	}
	if l.SkippedKeyTTL <= 0 {
		l.SkippedKeyTTL = d.SkippedKeyTTL
	}
	if l.MaxKeepMessages <= 0 {
		l.MaxKeepMessages = d.MaxKeepMessages
	}
	return l
}
