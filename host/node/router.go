package node

import (
	"context"
	"errors"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/contacts"
)

// router returns the function that receives everything slot i emits and
// routes it: DOWN frames to the layer below, UP frames and events to the
// layer above (or, from the top layer, to the application).
func (n *Node) router(i int) func(*commonv1.Batch) {
	return func(b *commonv1.Batch) {
		var ups, downs []*commonv1.Frame
		for _, f := range b.GetFrames() {
			switch f.GetDirection() {
			case commonv1.Direction_DIRECTION_DOWN:
				downs = append(downs, f)
			case commonv1.Direction_DIRECTION_UP:
				ups = append(ups, f)
			default:
				n.bounds[i].dropped[DropInvalid].Add(1)
			}
		}
		if len(downs) > 0 {
			if i == 0 {
				// Nothing lies below the overlay.
				n.bounds[0].dropped[DropInvalid].Add(uint64(len(downs)))
			} else {
				n.forward(n.ctx, i, i-1, downs)
			}
		}
		if len(ups) > 0 {
			if i == 0 {
				// A frame from the wire gets its trace id at the bottom, so
				// it can be followed up through the stack.
				for _, f := range ups {
					if f.GetTraceId() == 0 {
						f.TraceId = n.traceID.Add(1)
					}
				}
			}
			if n.slots[i].kind == commonv1.LayerKind_LAYER_KIND_PRIVACY {
				ups = n.divertPublic(i, ups)
			}
			if len(ups) == 0 {
				// All were public chat messages.
			} else if i == len(n.slots)-1 {
				n.toApp(ups)
			} else {
				n.forward(n.ctx, i, i+1, ups)
			}
		}
		if len(b.GetEvents()) > 0 && i+1 < len(n.slots) {
			n.handEvents(n.ctx, i+1, b.GetEvents())
		}
	}
}

// divertPublic takes the privacy layer's UP frames of public chats (their
// conversation is a joined chat's shared address) to the application, and
// returns the others.
func (n *Node) divertPublic(i int, frames []*commonv1.Frame) []*commonv1.Frame {
	var public []*commonv1.Frame
	rest := frames[:0]
	for _, f := range frames {
		if _, ok := n.public.conversation(f.GetConversation()); ok {
			public = append(public, f)
		} else {
			rest = append(rest, f)
		}
	}
	if len(public) > 0 {
		n.deliverPublic(i, public)
	}
	return rest
}

// handEvents gives events to slot to, through its gate, after the frames
// of the same batch: the order they were emitted in.
func (n *Node) handEvents(ctx context.Context, to int, events []*commonv1.Event) {
	items := make([]heldItem, len(events))
	for i, ev := range events {
		items[i] = heldItem{event: ev}
	}
	l, _ := n.slots[to].gate.admit(items)
	if l == nil {
		return // held, or dropped: events are advisory
	}
	tctx, cancel := context.WithTimeout(ctx, n.opts.RouteTimeout)
	defer cancel()
	for _, ev := range events {
		if l.EmitEvent(tctx, ev) != nil {
			return // the layer is gone or stalled; events are advisory
		}
	}
}

// forward moves frames from slot `from` (len(slots) for the application) to
// the adjacent slot `to`: it translates addresses at the privacy boundary,
// counts, and hands the frames to the layer, waiting at most RouteTimeout
// for a slow layer. It reports whether every frame was taken.
func (n *Node) forward(ctx context.Context, from, to int, frames []*commonv1.Frame) bool {
	dir, k := down, to
	if to > from {
		dir, k = up, from
	}
	b := n.bounds[k]
	// The host translates addresses at the boundary just above the privacy
	// layer: identity keys above it, privacy addresses below it.
	if n.slots[k].kind == commonv1.LayerKind_LAYER_KIND_PRIVACY {
		frames = n.translate(b, dir, frames)
	}
	if len(frames) == 0 {
		return false
	}
	if inj := b.faults[dir]; inj != nil {
		// The injector hands on what survives, now or later (hand).
		inj.Apply(frames)
		return true
	}
	return n.hand(ctx, b, dir, to, frames)
}

// hand gives frames that crossed boundary b in direction dir to slot to,
// through its gate: a layer that is not taking traffic yet gets them when
// it does.
func (n *Node) hand(ctx context.Context, b *boundary, dir, to int, frames []*commonv1.Frame) bool {
	items := make([]heldItem, len(frames))
	for i, f := range frames {
		items[i] = heldItem{b: b, dir: dir, frame: f}
	}
	l, held := n.slots[to].gate.admit(items)
	if l == nil {
		return held // held for the layer's start, or dropped and counted
	}
	return n.handTo(ctx, b, dir, l, frames)
}

// handTo emits frames to link l, waiting at most RouteTimeout for a slow
// layer, and counts them on boundary b.
func (n *Node) handTo(ctx context.Context, b *boundary, dir int, l sdk.Link, frames []*commonv1.Frame) bool {
	tctx, cancel := context.WithTimeout(ctx, n.opts.RouteTimeout)
	defer cancel()
	for i, f := range frames {
		if n.opts.Tap != nil {
			n.opts.Tap(b.name, f)
		}
		if err := l.Emit(tctx, f); errors.Is(err, sdk.ErrInvalidFrame) {
			b.dropped[DropInvalid].Add(1)
			continue
		} else if err != nil {
			reason := DropBackpressure
			if err != context.DeadlineExceeded {
				reason = DropLayerDown
			}
			b.dropped[reason].Add(uint64(len(frames) - i))
			return false
		}
		b.frames[dir].Add(1)
		b.bytes[dir].Add(uint64(len(f.GetPayload())))
	}
	return true
}

// translate rewrites Frame.peer between identity keys and privacy
// addresses. A DOWN frame for an identity with no privacy address is
// dropped; an UP frame from an unknown address goes on with an empty peer
// (the layer above may authenticate it in-band, as a first X3DH message
// does).
func (n *Node) translate(b *boundary, dir int, frames []*commonv1.Frame) []*commonv1.Frame {
	out := frames[:0]
	for _, f := range frames {
		if dir == down {
			if _, public := n.public.conversation(f.GetPeer()); public {
				out = append(out, f) // a public chat's shared address
				continue
			}
			if len(f.GetPeer()) > 0 {
				addr, ok := n.book.privacyAddress(f.GetPeer())
				if !ok {
					b.dropped[DropUnknownContact].Add(1)
					continue
				}
				f.Peer = addr
			}
		} else if len(f.GetPeer()) > 0 {
			id, ok := n.book.identityOf(f.GetPeer())
			if !ok {
				b.unknownSender.Add(1)
			}
			f.Peer = id
		}
		out = append(out, f)
	}
	return out
}

// addressBook is the in-memory index of contacts that the router consults
// on every frame: identity → privacy address and back. A privacy address
// that more than one card claims is ambiguous: anyone can copy another
// node's address into a card of their own, so such an address identifies
// nobody, and frames from it go up with no sender.
type addressBook struct {
	mu        sync.RWMutex
	byID      map[string]*contacts.Card
	byPrivacy map[string]map[string]bool // privacy address → identity keys claiming it
}

func loadAddressBook(ctx context.Context, store *contacts.Store) (*addressBook, error) {
	cards, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	ab := &addressBook{byID: map[string]*contacts.Card{}, byPrivacy: map[string]map[string]bool{}}
	for _, c := range cards {
		ab.put(c)
	}
	return ab, nil
}

func (ab *addressBook) put(c *contacts.Card) {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	id := string(c.IdentityKey)
	if old, ok := ab.byID[id]; ok {
		if sec, ok := old.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]; ok {
			claims := ab.byPrivacy[string(sec.Data)]
			delete(claims, id)
			if len(claims) == 0 {
				delete(ab.byPrivacy, string(sec.Data))
			}
		}
	}
	ab.byID[id] = c
	if sec, ok := c.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]; ok {
		claims := ab.byPrivacy[string(sec.Data)]
		if claims == nil {
			claims = map[string]bool{}
			ab.byPrivacy[string(sec.Data)] = claims
		}
		claims[id] = true
	}
}

func (ab *addressBook) knows(id []byte) bool {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	_, ok := ab.byID[string(id)]
	return ok
}

func (ab *addressBook) privacyAddress(id []byte) ([]byte, bool) {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	c, ok := ab.byID[string(id)]
	if !ok {
		return nil, false
	}
	sec, ok := c.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]
	return sec.Data, ok
}

// identityOf returns the one contact whose card has this privacy address.
func (ab *addressBook) identityOf(addr []byte) ([]byte, bool) {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	claims := ab.byPrivacy[string(addr)]
	if len(claims) != 1 {
		return nil, false
	}
	for id := range claims {
		return []byte(id), true
	}
	return nil, false
}

func (ab *addressBook) name(id []byte) string {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	if c, ok := ab.byID[string(id)]; ok {
		if c.Alias != "" {
			return c.Alias
		}
		return c.Name
	}
	return ""
}

func (ab *addressBook) all() []*contacts.Card {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	out := make([]*contacts.Card, 0, len(ab.byID))
	for _, c := range ab.byID {
		out = append(out, c)
	}
	return out
}
