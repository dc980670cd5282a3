package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// maxLearnedQueue bounds the conversation events waiting for the host: a
// layer that sends more before the host has stored the earlier ones is
// broken or hostile, and what does not fit is dropped and counted.
const maxLearnedQueue = 1024

// layerEvents holds what the layers tell the host through events (core/api/
// common/v1 SectionChanged and ConversationLearned) until the host's own
// goroutine acts on it: a layer's routing goroutine must not wait for a
// store or for a control call into a plugin.
type layerEvents struct {
	// section is signalled when a layer's card section changed.
	section chan struct{}
	// learned wakes the worker when conversations are queued.
	learned chan struct{}

	mu      sync.Mutex
	pending []learnedConversation

	accepted, unchanged, malformed, notSecure, publicChat, overflow, storeError atomic.Uint64
}

// learnedConversation is a ConversationLearned event and the layer that
// sent it.
type learnedConversation struct {
	slot    int
	id      []byte
	members []ed25519.PublicKey
	removed bool
}

func newLayerEvents() *layerEvents {
	return &layerEvents{section: make(chan struct{}, 1), learned: make(chan struct{}, 1)}
}

// LayerEventStats returns what the node did with the conversation events
// its secure layer sent: accepted (stored), unchanged (the store already
// held that membership), and each reason for a refusal.
func (n *Node) LayerEventStats() map[string]uint64 {
	e := n.events
	return map[string]uint64{
		"conversation_accepted":            e.accepted.Load(),
		"conversation_unchanged":           e.unchanged.Load(),
		"conversation_refused_malformed":   e.malformed.Load(),
		"conversation_refused_not_secure":  e.notSecure.Load(),
		"conversation_refused_public_chat": e.publicChat.Load(),
		"conversation_refused_overflow":    e.overflow.Load(),
		"conversation_refused_store_error": e.storeError.Load(),
	}
}

// consumeEvent implements pipeline.Config.Consume: it keeps the events that
// are for the host, from layer i, and lets the others go up.
func (n *Node) consumeEvent(i int, ev *commonv1.Event) bool {
	switch k := ev.GetKind().(type) {
	case *commonv1.Event_SectionChanged:
		select {
		case n.events.section <- struct{}{}:
		default: // a refresh is pending already; it reads the newest section
		}
		return true
	case *commonv1.Event_Conversation:
		n.queueLearned(i, k.Conversation)
		return true
	}
	return false
}

// queueLearned checks a ConversationLearned event and queues it for the
// worker.
func (n *Node) queueLearned(i int, ev *commonv1.ConversationLearned) {
	e := n.events
	s := n.slots[i]
	if s.kind != commonv1.LayerKind_LAYER_KIND_SECURE {
		e.notSecure.Add(1)
		s.log.Warn("dropped a conversation event from a layer that is not the secure layer", "plugin", s.layer.Plugin)
		return
	}
	raw := make([]ed25519.PublicKey, len(ev.GetMembers()))
	for j, m := range ev.GetMembers() {
		raw[j] = m
	}
	members, err := conversations.Normalize(ev.GetId(), raw)
	if err == nil && !ev.GetRemoved() && !slices.ContainsFunc(members, func(m ed25519.PublicKey) bool { return bytes.Equal(m, n.id.Public()) }) {
		err = fmt.Errorf("this node is not among the members and the event does not say it was removed")
	}
	if err != nil {
		e.malformed.Add(1)
		s.log.Warn("dropped a malformed conversation event", "plugin", s.layer.Plugin, "conversation", fmt.Sprintf("%x", ev.GetId()), "error", err)
		return
	}
	e.mu.Lock()
	if len(e.pending) >= maxLearnedQueue {
		e.mu.Unlock()
		e.overflow.Add(1)
		s.log.Warn("dropped a conversation event: too many wait for the host", "plugin", s.layer.Plugin)
		return
	}
	e.pending = append(e.pending, learnedConversation{slot: i, id: bytes.Clone(ev.GetId()), members: members, removed: ev.GetRemoved()})
	e.mu.Unlock()
	select {
	case e.learned <- struct{}{}:
	default:
	}
}

// runLayerEvents acts on the queued events until ctx ends: a changed card
// section re-signs the card at once, a learned conversation is stored.
func (n *Node) runLayerEvents(ctx context.Context) {
	e := n.events
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.section:
			n.refreshSections(ctx)
		case <-e.learned:
			e.mu.Lock()
			todo := e.pending
			e.pending = nil
			e.mu.Unlock()
			for _, l := range todo {
				n.learnConversation(ctx, l)
			}
		}
	}
}

// learnConversation stores a conversation as the secure layer learned it
// and gives its members to the other layers that take members. It is not
// announced: the layer learned it from its members. Unlike an announcement,
// a member need not be a contact: the secure layer authenticated every
// member with its own protocol (an MLS credential); sending to a member
// whose address the node lacks fails at Send with ErrUnknownContact, and
// on a privacy layer with shared addresses needs none.
func (n *Node) learnConversation(ctx context.Context, l learnedConversation) {
	e := n.events
	s := n.slots[l.slot]
	members := l.members
	if l.removed {
		// Alone in it: the stack sends to nobody, the history stays.
		members = []ed25519.PublicKey{n.id.Public()}
	}
	c := conversations.Conversation{ID: l.id, Members: members}
	if old, err := n.convs.Get(ctx, l.id); err == nil {
		if old.PublicChat != "" {
			e.publicChat.Add(1)
			s.log.Warn("refused a conversation event: the id is a public chat's", "conversation", fmt.Sprintf("%x", l.id))
			return
		}
		if slices.EqualFunc(old.Members, members, func(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }) {
			e.unchanged.Add(1)
			return
		}
		c.Name = old.Name
	}
	if err := n.convs.Put(ctx, c); err != nil {
		e.storeError.Add(1)
		s.log.Warn("could not store a conversation the secure layer learned", "conversation", fmt.Sprintf("%x", l.id), "error", err)
		return
	}
	for i, other := range n.slots {
		m, ok := other.adapter.(memberTaker)
		if !ok || i == l.slot {
			continue // the layer that told us knows it
		}
		if err := m.setMembers(ctx, c.ID, members); err != nil {
			other.log.Warn("layer refused a conversation the secure layer learned", "conversation", fmt.Sprintf("%x", l.id), "error", err)
		}
	}
	e.accepted.Add(1)
	if l.removed {
		n.log.Info("removed from a conversation by its members", "conversation", fmt.Sprintf("%x", l.id))
		return
	}
	n.log.Info("joined a conversation the secure layer learned", "conversation", fmt.Sprintf("%x", l.id), "members", len(members))
}
