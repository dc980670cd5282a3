package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
)

// Group frames. A layer above the privacy layer may send a DOWN frame
// without a peer: it is for every other member of its conversation (the
// sync layer's first transmission of a group message, the secure layer's
// message sealed once with a sender key). At the boundary above the privacy
// layer the host sends such a frame to the conversation's shared address
// when the privacy layer has shared addresses (whisper: one envelope on the
// group's topic, which every member's node opens), and otherwise one copy
// to each other member's address (none, and any layer without "shared").
//
// The shared address of a conversation of three or more is derived from
// its id, which only its members know: the name from HKDF-SHA256 with
// info "strata group topic v1", the key from HKDF-SHA256 with info
// "strata group key v1". A group frame names its conversation, which the
// privacy layer carries, so the receiver's layers above know the group.

// groupRoute is where a conversation's group frames go.
type groupRoute struct {
	members []ed25519.PublicKey
	addr    []byte // the shared address; nil: one copy per member
}

// groupRoutes are the routes of every conversation the node is in.
type groupRoutes struct {
	mu   sync.RWMutex
	byID map[string]groupRoute
}

func newGroupRoutes() *groupRoutes { return &groupRoutes{byID: map[string]groupRoute{}} }

func (g *groupRoutes) get(id []byte) (groupRoute, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	r, ok := g.byID[string(id)]
	return r, ok
}

func (g *groupRoutes) put(id []byte, r groupRoute) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byID[string(id)] = r
}

// forget drops every shared address, so that the next setMembers
// subscribes again (a privacy layer that restarted knows none).
func (g *groupRoutes) forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, r := range g.byID {
		r.addr = nil
		g.byID[id] = r
	}
}

// groupAddressName and groupAddressKey derive a conversation's shared
// address.
func groupAddressName(id []byte) string {
	b, _ := hkdf.Key(sha256.New, id, nil, "strata group topic v1", 16)
	return "strata-group-" + hex.EncodeToString(b)
}

func groupAddressKey(id []byte) []byte {
	b, _ := hkdf.Key(sha256.New, id, nil, "strata group key v1", 32)
	return b
}

// setMembers implements memberTaker: the route of the conversation's group
// frames, subscribing the layer to the conversation's shared address when
// it has three or more members and the layer has shared addresses. A
// refused subscription leaves the route at one copy per member.
func (a *privacyAdapter) setMembers(ctx context.Context, id []byte, members []ed25519.PublicKey) error {
	r := groupRoute{members: slices.Clone(members)}
	if old, ok := a.groups.get(id); ok {
		r.addr = old.addr
	}
	if r.addr == nil && len(members) > 2 && slices.Contains(a.s.info.GetProvides(), sdk.CapShared) {
		if conn := a.s.liveConn(); conn != nil {
			resp, err := privacyv1.NewControlClient(conn.Control()).Subscribe(ctx, &privacyv1.SubscribeRequest{
				Name: groupAddressName(id), Key: groupAddressKey(id),
			})
			switch {
			case err == nil:
				r.addr = resp.GetAddress()
			case status.Code(err) != codes.Unimplemented:
				a.s.log.Warn("privacy layer refused a group's shared address; its group frames go to each member", "error", err)
			}
		}
	}
	a.groups.put(id, r)
	return nil
}

// routeGroup appends the frames that a group frame f becomes: f itself to
// the shared address, or a copy to each other member's address. A member
// without an address is dropped and counted.
func (a *privacyAdapter) routeGroup(b *pipeline.Boundary, out []*commonv1.Frame, f *commonv1.Frame, r groupRoute) []*commonv1.Frame {
	if r.addr != nil {
		f.Peer = r.addr
		return append(out, f)
	}
	first := true
	self := a.n.id.Public()
	for _, m := range r.members {
		if bytes.Equal(m, self) {
			continue
		}
		addr, ok := a.n.book.address(m)
		if !ok {
			b.Drop(pipeline.DropUnknownContact, 1)
			continue
		}
		c := f
		if !first {
			// Each frame owns its payload once handed over.
			c = &commonv1.Frame{
				Direction: f.GetDirection(), TraceId: f.GetTraceId(), Conversation: f.GetConversation(),
				Protocol: f.GetProtocol(), Hints: f.GetHints(), Payload: bytes.Clone(f.GetPayload()), MessageId: f.GetMessageId(),
			}
		}
		c.Peer = addr
		out = append(out, c)
		first = false
	}
	return out
}
