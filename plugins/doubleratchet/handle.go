package doubleratchet

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// HandleBatch implements sdk.Layer: DOWN frames are sealed, UP frames
// opened. Everything the batch changes is committed in one transaction
// before any frame it sends toward a peer is emitted.
//
// A batch that only opens (its output is UP frames, nothing for a peer)
// hands its frames up first and commits while they travel: nothing
// derived from the new state leaves the node before the commit, so a
// crash before it only rolls the sessions back to where they were. The
// sync layer above has not acknowledged those messages to their authors
// until it has stored them itself; what it had not stored comes again,
// and opens from the rolled-back state (a message whose key was used then
// opens as a skipped one, and the sync layer drops it as a duplicate).
// The secure deletion that follows a commit (checkpoint) comes after the
// frames too: they carry plaintext to the host's history, not anything a
// superseded key could reveal beyond it.
func (l *Layer) HandleBatch(ctx context.Context, in *commonv1.Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started.Load() || l.storeErr.Load() != nil {
		return
	}
	b, err := newBatch(ctx, l.db)
	if err != nil {
		l.failStore(err)
		return
	}
	var out []*commonv1.Frame
	for _, f := range in.GetFrames() {
		var err error
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			out, err = l.down(ctx, b, out, f)
		case commonv1.Direction_DIRECTION_UP:
			out, err = l.up(ctx, b, out, f)
		default:
			l.c.add("dropped_wrong_direction", 1)
		}
		var se *storeError
		if errors.As(err, &se) {
			b.abort()
			l.c.add("dropped_store_error", 1)
			l.failStore(se.err)
			return
		}
	}
	if len(b.controls) == 0 && allUp(out) {
		if len(out) > 0 {
			_ = l.env.Out.Emit(ctx, out...)
			out = nil
		}
	}
	if err := l.commitTx(b); err != nil {
		l.c.add("dropped_store_error", uint64(len(out)))
		l.failStore(err)
		return
	}
	// Committed: the checkpoint runs to its end even if the caller has gone.
	forget := l.forgetDue(b)
	if forget && l.cfg.Checkpoint == checkpointBeforeSend && len(out)+len(b.controls) > 0 {
		if err := l.forget(context.WithoutCancel(ctx)); err != nil {
			l.c.add("dropped_store_error", uint64(len(out)))
			l.failStore(err)
			return
		}
		forget = false
	}
	for _, cf := range b.controls {
		out = append(out, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: cf.to, Payload: cf.payload})
	}
	if len(out) > 0 {
		_ = l.env.Out.Emit(ctx, out...)
	}
	switch {
	case forget && l.cfg.Checkpoint == checkpointDeferred:
		l.deferForget()
	case forget:
		if err := l.forget(context.WithoutCancel(ctx)); err != nil {
			l.failStore(err)
		}
	}
}

// down seals a DOWN frame for its peer, or for every other member of its
// conversation when the peer is empty. Only a storage failure is returned;
// other failures are counted.
func (l *Layer) down(ctx context.Context, b *batch, out []*commonv1.Frame, f *commonv1.Frame) ([]*commonv1.Frame, error) {
	if len(l.self) == 0 {
		l.c.drop(ErrNoIdentity)
		return out, nil
	}
	if len(f.GetPayload()) > MaxPayload {
		l.c.drop(ErrOversize)
		return out, nil
	}
	var to []*contact
	var members [][]byte
	if len(f.GetPeer()) > 0 {
		c := l.contacts[string(f.GetPeer())]
		if c == nil {
			l.c.drop(ErrUnknownContact)
			return out, nil
		}
		to = append(to, c)
	} else {
		var ok bool
		members, ok = l.conversations[string(f.GetConversation())]
		if !ok {
			l.c.drop(ErrUnknownConversation)
			return out, nil
		}
		for _, m := range members {
			if c := l.contacts[string(m)]; c != nil && !bytes.Equal(m, l.self) {
				to = append(to, c)
			}
		}
		if l.useSenderKeys(len(to)) {
			return l.groupDown(ctx, b, out, f, members, to)
		}
	}
	for _, c := range to {
		env, err := l.seal(ctx, b, c, f.GetConversation(), f.GetPayload())
		if err != nil {
			l.c.drop(err)
			l.env.Logger.Debug("seal failed", "contact", short(c.identity), "error", err)
			continue
		}
		l.c.add(cSealed, 1)
		out = append(out, &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_DOWN,
			TraceId:   f.GetTraceId(),
			Peer:      c.identity,
			Hints:     f.GetHints(),
			Payload:   env,
		})
	}
	return out, nil
}

// up opens an UP frame: a group message sealed with a sender key, or a
// pairwise message from a contact. Only a storage failure is returned;
// other failures are counted.
func (l *Layer) up(ctx context.Context, b *batch, out []*commonv1.Frame, f *commonv1.Frame) ([]*commonv1.Frame, error) {
	if len(l.self) == 0 {
		l.c.drop(ErrNoIdentity)
		return out, nil
	}
	env, err := decodeEnvelope(f.GetPayload())
	if err != nil {
		l.c.drop(err)
		return out, nil
	}
	if m := env.GetSenderKeyMessage(); m != nil {
		return l.groupUp(ctx, b, out, f, m)
	}
	c := l.contacts[string(f.GetPeer())]
	if c == nil {
		l.c.drop(ErrUnknownContact)
		return out, nil
	}
	pt, err := l.open(ctx, b, c, f.GetConversation(), env)
	if err != nil {
		var se *storeError
		switch {
		case errors.As(err, &se):
			return out, err
		case errors.Is(err, errNoReply):
		default:
			l.c.drop(err)
			l.env.Logger.Debug("open failed", "contact", short(c.identity), "error", err)
		}
		return out, nil
	}
	if members, ok := l.conversations[string(pt.GetConversation())]; ok && !containsKey(members, c.identity) {
		l.c.drop(ErrNotMember)
		return out, nil
	}
	l.c.add(cOpened, 1)
	if d, r := pt.GetSenderKey(), pt.GetSenderKeyRequest(); d != nil || r != nil {
		if len(pt.GetPayload()) > 0 || (d != nil && r != nil) {
			l.c.drop(fmt.Errorf("%w: a sender key plaintext with more in it", ErrMalformed))
			return out, nil
		}
		if r != nil {
			return l.answerSenderKeyRequest(ctx, b, out, c, pt.GetConversation(), r)
		}
		return l.takeDistribution(ctx, b, out, c, pt.GetConversation(), d)
	}
	return append(out, &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Conversation: pt.GetConversation(),
		Peer:         c.identity,
		Hints:        f.GetHints(),
		Payload:      pt.GetPayload(),
	}), nil
}

// allUp reports whether every frame goes up, toward the sync layer.
func allUp(frames []*commonv1.Frame) bool {
	for _, f := range frames {
		if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
			return false
		}
	}
	return true
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, m := range keys {
		if bytes.Equal(m, k) {
			return true
		}
	}
	return false
}

// short is a key's first bytes in hex, for logs; never used on secrets.
func short(k []byte) string {
	const hexdigits = "0123456789abcdef"
	n := min(len(k), 4)
	out := make([]byte, 0, 2*n)
	for _, c := range k[:n] {
		out = append(out, hexdigits[c>>4], hexdigits[c&15])
	}
	return string(out)
}
