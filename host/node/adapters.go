package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
)

// An adapter is the host's knowledge of one layer kind: what the host does
// with a layer of that kind beyond routing its frames. The routing core
// (core/pipeline) and the rest of this package know no kinds; they ask a
// slot's adapter whether it implements one of the optional interfaces
// below and call it if so, as Caddy calls a module's Provisioner or
// Validator. A new kind, or a new duty of an existing one, is a new
// adapter file, not a switch in five places.
type adapter any

// adapterFor returns the adapter of slot s's kind. It is the one place in
// the host that switches on layer kinds.
func adapterFor(n *Node, s *slot) adapter {
	switch s.kind {
	case commonv1.LayerKind_LAYER_KIND_P2P:
		return &p2pAdapter{n: n, s: s}
	case commonv1.LayerKind_LAYER_KIND_PRIVACY:
		return newPrivacyAdapter(n, s)
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		return &secureAdapter{n: n, s: s}
	case commonv1.LayerKind_LAYER_KIND_SYNC:
		return &syncAdapter{n: n, s: s}
	default:
		return nil
	}
}

// startPreparer adds to a layer's StartRequest what only its kind asks for
// (the p2p layer carries the overlay protocols of every layer above it).
type startPreparer interface {
	prepareStart(req *commonv1.StartRequest)
}

// installer gives a layer that has just started the host state it does not
// keep across starts (contacts, conversations, public chats). It runs
// before the layer's door opens, so no frame reaches a layer that does not
// yet know its sender.
type installer interface {
	install(ctx context.Context)
}

// aboveStartedHook is told that the layer right above its own has started:
// the p2p layer tells it which peers are connected already.
type aboveStartedHook interface {
	aboveStarted(ctx context.Context, above *slot)
}

// stager adds a stage to every boundary's chain (it acts on the boundaries
// it cares about and passes the others through).
type stager interface {
	stage() pipeline.Stage
}

// contactTaker takes a contact's card: the secure layer its key material.
type contactTaker interface {
	addContact(ctx context.Context, c *contacts.Card) error
}

// memberTaker takes a conversation's members: the secure and sync layers.
type memberTaker interface {
	setMembers(ctx context.Context, id []byte, members []ed25519.PublicKey) error
}

// appPort is how the application's messages enter the stack when the
// adapter's layer is the top one. sendBatch hands on messages in order,
// each as its wire form (the message in its signed envelope, envelope.go),
// and fills in each one's m.TraceID, and m.MessageID when the layer names
// messages (a sync layer; otherwise a message keeps its envelope's id).
type appPort interface {
	sendBatch(ctx context.Context, items []portItem) error
}

// portItem is one message on its way into the top layer.
type portItem struct {
	c    *conversations.Conversation
	m    *conversations.Message
	wire []byte
	opts SendOptions
}

// appAcker acknowledges messages that the host has stored, or refused for
// good, so that the top layer does not deliver them again (the sync
// layer's Ack, with its verdicts).
type appAcker interface {
	ack(ctx context.Context, group []byte, items []ackItem) error
}

// cardRefresher notices that the layer's card section changed while it ran
// (the secure layer's prekeys rotate) and returns the new one, or nil.
type cardRefresher interface {
	refreshSection(ctx context.Context) []byte
}

// dialer keeps the overlay connected to the nodes of cards.
type dialer interface {
	dial(cards []*contacts.Card, tieBreak bool)
}

// publicChatter is the layer that carries public chats (shared addresses).
type publicChatter interface {
	joinPublic(ctx context.Context, id []byte, name string) error
	postPublic(ctx context.Context, c *conversations.Conversation, m *conversations.Message, wire []byte) error
}

// contractChecker says what is wrong with a frame the layer emitted under
// its kind's contract, or "".
type contractChecker interface {
	check(f *commonv1.Frame) string
}

// adapterOf returns the adapter of the first slot, bottom up, whose
// adapter implements T, with its slot.
func adapterOf[T any](n *Node) (T, *slot) {
	for _, s := range n.slots {
		if a, ok := s.adapter.(T); ok {
			return a, s
		}
	}
	var zero T
	return zero, nil
}

// addressSection is the card section the address book indexes: that of
// the layer whose addresses the host translates (the privacy layer), and
// its plugin.
func (n *Node) addressSection() (commonv1.LayerKind, string) {
	if a, s := adapterOf[*privacyAdapter](n); a != nil {
		return a.addressKind(), s.layer.Plugin
	}
	return commonv1.LayerKind_LAYER_KIND_UNSPECIFIED, ""
}

// recipientChecker says why a contact cannot be reached at the adapter's
// layer (its card has no section for this node's plugin), or nil.
type recipientChecker interface {
	checkRecipient(c *contacts.Card) error
}

// ErrStaleCard is returned by Send when a member's card has no section for
// a plugin of this node's stack: it was made on another stack.
var ErrStaleCard = errors.New("the contact's card is not for this stack")

// cardSectionFor says why card c has no section for slot s's plugin, or
// nil when it has one.
func cardSectionFor(c *contacts.Card, s *slot) error {
	sec, ok := c.Sections[s.kind]
	if ok && sec.Plugin == s.layer.Plugin {
		return nil
	}
	name := c.Name
	if c.Alias != "" {
		name = c.Alias
	}
	has := "none"
	if ok {
		has = fmt.Sprintf("one for %q", sec.Plugin)
	}
	return fmt.Errorf("%w: %s's card has no %s section for %q (it has %s): it was made on another stack; import %s's card from its node on this stack (strata contact import)",
		ErrStaleCard, name, s.key, s.layer.Plugin, has, name)
}
