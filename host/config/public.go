package config

import (
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// Public is the public section: what the node keeps of each public chat.
// Anyone who knows a chat's name can write to it, so its history is
// bounded: the oldest messages are evicted when a new one would exceed
// MaxMessagesPerChat or MaxBytesPerChat, and messages older than
// Retention are removed by a periodic prune. 0 means no bound.
type Public struct {
	// MaxMessagesPerChat bounds the messages kept per chat
	// (public.max_messages_per_chat).
	MaxMessagesPerChat int
	// MaxBytesPerChat bounds the payload bytes kept per chat
	// (public.max_bytes_per_chat); a message larger on its own is not kept.
	MaxBytesPerChat int64
	// Retention is how long a message is kept (public.retention).
	Retention time.Duration
}

// Defaults of the public section.
const (
	DefaultPublicMaxMessages = 10000
	DefaultPublicMaxBytes    = 64 << 20
	DefaultPublicRetention   = 30 * 24 * time.Hour
)

// check validates the public section.
func (p Public) check() error {
	if p.MaxMessagesPerChat < 0 {
		return &sdk.ConfigError{Key: "public.max_messages_per_chat", Problem: fmt.Sprintf("is %d, below zero", p.MaxMessagesPerChat), Fix: fmt.Sprintf("use a count such as %d, or 0 for no bound", DefaultPublicMaxMessages)}
	}
	if p.MaxBytesPerChat < 0 {
		return &sdk.ConfigError{Key: "public.max_bytes_per_chat", Problem: fmt.Sprintf("is %d, below zero", p.MaxBytesPerChat), Fix: fmt.Sprintf("use a size in bytes such as %d, or 0 for no bound", DefaultPublicMaxBytes)}
	}
	return nil
}
