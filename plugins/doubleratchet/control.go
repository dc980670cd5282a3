package doubleratchet

import (
	"bytes"
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// AddContact implements securev1.ControlServer. The section is the
// contact's Bundle; it is verified and pinned. The same section again
// changes nothing; a newer one replaces the pinned bundle and keeps the
// sessions; one issued before the pinned one is refused (ErrStaleBundle).
// A contact with no session yet is asked for one-time prekeys.
func (l *Layer) AddContact(ctx context.Context, req *securev1.AddContactRequest) (*securev1.AddContactResponse, error) {
	if len(req.GetIdentity()) != identitySize {
		return nil, status.Errorf(codes.InvalidArgument, "doubleratchet: identity is %d bytes, want %d", len(req.GetIdentity()), identitySize)
	}
	bundle, err := x3dh.ParseBundle(req.GetContactSection())
	if err != nil {
		l.c.drop(ErrBadBundle)
		return nil, status.Errorf(codes.InvalidArgument, "doubleratchet: contact section: %v", err)
	}
	ask, err := l.addContact(ctx, req.GetIdentity(), req.GetContactSection(), bundle)
	if err != nil {
		return nil, err
	}
	if ask != nil {
		if err := l.env.Out.Emit(ctx, ask); err == nil {
			l.c.add(cRequestsSent, 1)
		}
	}
	return &securev1.AddContactResponse{}, nil
}

// addContact stores the contact and returns the BundleRequest frame to
// send it, if one is due.
func (l *Layer) addContact(ctx context.Context, identity, raw []byte, bundle *x3dh.Bundle) (*commonv1.Frame, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	c := l.contacts[string(identity)]
	if c == nil || !bytes.Equal(c.pinnedRaw, raw) {
		if c != nil {
			if err := notOlder(bundle, c.pinned, "pinned"); err != nil {
				l.c.drop(err)
				return nil, status.Errorf(codes.FailedPrecondition, "doubleratchet: contact section: %v", err)
			}
		}
		b, err := newBatch(ctx, l.db)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "doubleratchet: %v", err)
		}
		if c == nil {
			c = &contact{identity: append([]byte(nil), identity...)}
		} else if !bundle.SameIdentity(c.pinned) {
			// A new installation of the contact: what it sent before is
			// from keys it no longer has.
			c.fresh, c.freshRaw = nil, nil
		}
		prev, prevRaw := c.pinned, c.pinnedRaw
		c.pinned, c.pinnedRaw = bundle, append([]byte(nil), raw...)
		b.contacts[c] = true
		if err := l.commit(b); err != nil {
			c.pinned, c.pinnedRaw = prev, prevRaw
			return nil, status.Errorf(codes.Unavailable, "doubleratchet: %v", err)
		}
		l.contacts[string(identity)] = c
		l.levels()
	}
	if len(l.self) == 0 || len(c.sessions) > 0 || c.asked || !l.started.Load() {
		return nil, nil
	}
	req, err := bundleRequest()
	if err != nil {
		return nil, fmt.Errorf("doubleratchet: %w", err)
	}
	c.asked = true
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: c.identity, Payload: req}, nil
}

// SetConversation implements securev1.ControlServer. Members are 32-byte
// identity keys; members that are not contacts are skipped when a group
// message is fanned out.
func (l *Layer) SetConversation(_ context.Context, req *securev1.ConversationRequest) (*securev1.ConversationResponse, error) {
	if len(req.GetId()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "doubleratchet: conversation id is empty")
	}
	if len(req.GetMembers()) > maxMembers {
		return nil, status.Errorf(codes.InvalidArgument, "doubleratchet: %d members, at most %d", len(req.GetMembers()), maxMembers)
	}
	members := make([][]byte, 0, len(req.GetMembers()))
	for _, m := range req.GetMembers() {
		if len(m) != identitySize {
			return nil, status.Errorf(codes.InvalidArgument, "doubleratchet: member is %d bytes, want %d", len(m), identitySize)
		}
		members = append(members, append([]byte(nil), m...))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	l.conversations[string(req.GetId())] = members
	l.levels()
	return &securev1.ConversationResponse{}, nil
}

// Bundle implements securev1.ControlServer: the current card section.
func (l *Layer) Bundle(context.Context, *securev1.BundleRequest) (*securev1.BundleResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	return &securev1.BundleResponse{ContactSection: append([]byte(nil), l.card...)}, nil
}
