package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/host/conversations"
)

// maxPublicChatName bounds a public chat's name.
const maxPublicChatName = 255

// ErrNoPublicChats is returned by JoinPublicChat when the privacy layer
// has no shared addresses (the none layer).
var ErrNoPublicChats = errors.New("the privacy layer has no public chats")

// JoinPublicChat joins the public chat of that name: the privacy layer
// subscribes to the shared address derived from the name (whisper: Status's
// public chat topic and key), and the chat is stored as a conversation
// whose id is conversations.PublicChatID(name), the same on every node.
// Joining again is harmless.
func (n *Node) JoinPublicChat(ctx context.Context, name string) (*conversations.Conversation, error) {
	if name == "" || len(name) > maxPublicChatName {
		return nil, fmt.Errorf("a public chat's name is 1 to %d bytes, got %d", maxPublicChatName, len(name))
	}
	pub, _ := adapterOf[publicChatter](n)
	if pub == nil {
		return nil, ErrNoPublicChats
	}
	id := conversations.PublicChatID(name)
	if c, err := n.convs.Get(ctx, id); err == nil && c.PublicChat != name {
		return nil, fmt.Errorf("conversation %x exists and is not the public chat %q", id, name)
	}
	if err := pub.joinPublic(ctx, id, name); err != nil {
		return nil, err
	}
	c := conversations.Conversation{ID: id, Members: []ed25519.PublicKey{n.id.Public()}, PublicChat: name}
	if err := n.convs.Put(ctx, c); err != nil {
		return nil, err
	}
	return n.convs.Get(ctx, id)
}

// prunePublic brings every public chat's history within public.retention
// and the quotas (conversations.Store.Prune) at start and then every
// Options.PruneInterval, until the node closes.
func (n *Node) prunePublic() {
	t := time.NewTicker(n.opts.PruneInterval)
	defer t.Stop()
	for {
		removed, err := n.convs.Prune(n.ctx, time.Now())
		if err != nil && n.ctx.Err() == nil {
			n.log.Warn("could not prune the public chats' history", "error", err)
		}
		if removed > 0 {
			n.msgStats.pruned.Add(uint64(removed))
			n.log.Debug("pruned the public chats' history", "messages", removed)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}
