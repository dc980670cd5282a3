// Posting: a DOWN frame from above is sealed (PoW mined off the batch
// path) into an envelope, pooled and flooded.

package whisper

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

type post struct {
	addr         *address
	conversation []byte
	payload      []byte
	trace        uint64
	hints        *commonv1.Hints
}

// prepare checks a DOWN frame and turns it into a post job.
func (l *Layer) prepare(f *commonv1.Frame) *post {
	a, err := decodeAddress(f.GetPeer())
	if err != nil {
		l.count("dropped_bad_address")
		return nil
	}
	if len(f.GetPayload()) > int(l.cfg.maxSize())-payloadOverhead || len(f.GetConversation()) > maxConversation {
		l.count("dropped_too_large")
		return nil
	}
	return &post{addr: a, conversation: f.GetConversation(), payload: f.GetPayload(), trace: f.GetTraceId(), hints: f.GetHints()}
}

// poster seals posts off the batch path (mining takes time) and posts them.
func (l *Layer) poster(ctx context.Context) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-l.posts:
			l.send(ctx, p)
		}
	}
}

// send seals (mining, outside every lock), pools and forwards one message.
func (l *Layer) send(ctx context.Context, p *post) {
	l.mu.Lock()
	cfg, key, now := l.cfg, l.key, l.now()
	l.mu.Unlock()
	env, err := seal(p, cfg, key, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enqueue(l.publish(p, env, err))
}

// publish pools a sealed envelope and returns the frames that forward it;
// the caller holds l.mu.
func (l *Layer) publish(p *post, env *wire.Envelope, err error) []*commonv1.Frame {
	if err != nil {
		if errors.Is(err, wire.ErrPoWTimeout) {
			l.count("dropped_pow_timeout")
		} else {
			l.count("dropped_too_large")
		}
		l.logf("whisper: cannot post: %v", err)
		return nil
	}
	ent := newEntry(env, env.Encode(), env.PoW())
	if _, dup := l.pool[ent.hash]; dup {
		return nil
	}
	l.pooled(ent)
	l.count("envelopes_posted")
	out := l.forward([]*entry{ent}, nil, l.now())
	for _, f := range out {
		f.TraceId, f.Hints = p.trace, p.hints
	}
	return out
}

func seal(p *post, cfg Config, key *ecdsa.PrivateKey, now time.Time) (*wire.Envelope, error) {
	inner, flags, err := appendInner(nil, p.conversation, p.payload)
	if err != nil {
		return nil, err
	}
	params := &wire.MessageParams{TTL: cfg.ttl(), Src: key, Topic: p.addr.topic, Payload: inner, Flags: flags}
	if p.addr.kind == addrKindContact {
		params.Dst = p.addr.pub
	} else {
		params.KeySym = p.addr.symKey
	}
	msg, err := wire.NewSentMessage(params)
	if err != nil {
		return nil, err
	}
	env, err := msg.Wrap(params, now)
	if err != nil {
		return nil, err
	}
	if env.Size() > int(cfg.maxSize()) {
		return nil, wire.ErrTooLarge
	}
	if err := env.Seal(cfg.powTarget(), cfg.PoWTime); err != nil {
		return nil, err
	}
	return env, nil
}
