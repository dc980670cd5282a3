package layer

import (
	"bytes"
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
)

// AddContact implements securev1.ControlServer: it verifies and stores the
// contact's card section (its KeyPackages are what this node adds it
// with, and its signature key what the contact's leaves must carry), then
// commits any addition that waited for it.
func (l *Layer) AddContact(ctx context.Context, req *securev1.AddContactRequest) (*securev1.AddContactResponse, error) {
	id := req.GetIdentity()
	if len(id) != identitySize {
		return nil, status.Errorf(codes.InvalidArgument, "mls: contact identity is %d bytes, want %d", len(id), identitySize)
	}
	card, err := DecodeCard(req.GetContactSection())
	if err == nil {
		err = card.Verify(id, l.now())
	}
	if err != nil {
		l.c.drop(ErrBadCard)
		return nil, status.Errorf(codes.InvalidArgument, "mls: contact %x: %v", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	if bytes.Equal(id, l.self) {
		return &securev1.AddContactResponse{}, nil
	}
	l.newContacts = append(l.newContacts, [2][]byte{bytes.Clone(id), bytes.Clone(req.GetContactSection())})
	l.contacts[string(id)] = card
	for _, c := range l.convs {
		if c.wants(id) {
			l.reconcile(c)
		}
	}
	l.flush(ctx)
	if err := l.ready(); err != nil {
		return nil, err // the contact was not stored
	}
	return &securev1.AddContactResponse{}, nil
}

// SetConversation implements securev1.ControlServer: it records the
// members the host wants in the conversation and, if it is this node's
// turn (commit.go), creates the group and commits the change; the group
// of a conversation of two is created only once it is needed (lazy.go).
func (l *Layer) SetConversation(ctx context.Context, req *securev1.ConversationRequest) (*securev1.ConversationResponse, error) {
	id := req.GetId()
	if len(id) == 0 || len(id) > 255 {
		return nil, status.Errorf(codes.InvalidArgument, "mls: conversation id of %d bytes, want 1 to 255", len(id))
	}
	if len(req.GetMembers()) > maxMembers {
		return nil, status.Errorf(codes.InvalidArgument, "mls: %d members, at most %d", len(req.GetMembers()), maxMembers)
	}
	members := make([][]byte, 0, len(req.GetMembers()))
	for _, m := range req.GetMembers() {
		if len(m) != identitySize {
			return nil, status.Errorf(codes.InvalidArgument, "mls: member identity of %d bytes, want %d", len(m), identitySize)
		}
		members = append(members, bytes.Clone(m))
	}
	slices.SortFunc(members, bytes.Compare)
	members = slices.CompactFunc(members, bytes.Equal)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	c := l.convs[string(id)]
	if c == nil {
		c = newConv(id)
		l.convs[string(id)] = c
	}
	if c.desired == nil || !sameIDs(c.desired, members) {
		c.desired = members
		c.gen++
		c.since = l.now()
		l.markDirty(c)
	}
	l.reconcile(c)
	l.askGroup(c, l.now()) // a conversation of three or more (lazy.go)
	l.releaseHeld(c)
	l.flush(ctx)
	return &securev1.ConversationResponse{}, nil
}

// Bundle implements securev1.ControlServer: the current card section.
func (l *Layer) Bundle(context.Context, *securev1.BundleRequest) (*securev1.BundleResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	return &securev1.BundleResponse{ContactSection: bytes.Clone(l.card)}, nil
}
