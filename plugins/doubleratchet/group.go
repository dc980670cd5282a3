package doubleratchet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/doubleratchet/senderkey"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// Group messages with sender keys (config group_messages: sender_keys).
//
// A frame for every member of a conversation of three or more is sealed
// once with the node's sender key for the conversation (package
// senderkey) and goes down as one frame without a peer: the host sends it
// to the conversation's shared privacy address (a whisper topic), or, when
// the privacy layer has none, to each member. Before its first group
// message to a member, the node hands the member its sender key in a
// pairwise Double Ratchet message (a Plaintext with sender_key set), in the
// same batch. A member that leaves makes every remaining member's next
// group message start a new chain, handed to the remaining members only.
//
// A group message whose chain the node does not know yet (its distribution
// is still on the way: the privacy layer may reorder) waits, up to
// maxPendingGroup of them for at most pendingGroupTTL, and is opened when
// the distribution arrives. If the distribution was lost, the node asks
// the message's sender for its chain (a SenderKeyRequest, pairwise, at most
// once per requestInterval for a sender and conversation); the answer is
// the chain at its current position, so the node opens the sender's later
// group messages, and the sync layer above repairs the earlier ones by
// sending them again to this member alone, sealed pairwise.

const (
	// groupSenderKeys is the config value that turns sender keys on.
	groupSenderKeys = "sender_keys"
	// maxPendingGroup bounds the group messages waiting for their chain.
	maxPendingGroup = 256
	// pendingGroupTTL is how long such a message waits.
	pendingGroupTTL = 2 * time.Minute
	// requestInterval is the least time between two requests for one
	// member's chain of a conversation, and between two answers to one
	// member's requests.
	requestInterval = 5 * time.Second
)

// Counters of the group path.
const (
	cGroupSealed       = "group_sealed"
	cGroupOpened       = "group_opened"
	cGroupPending      = "group_pending"
	cGroupOwn          = "group_own_echo"
	cDistributionsSent = "sender_keys_sent"
	cDistributionsRecv = "sender_keys_received"
	cChainsStarted     = "sender_key_chains_started"
	cKeyRequestsSent   = "sender_key_requests_sent"
	cKeyRequestsRecv   = "sender_key_requests_received"
)

// senderChain is a sender key of one conversation: the node's own (own
// set, with the members it was handed to) or a member's (recv set).
type senderChain struct {
	id           int64 // the sender_keys row
	conversation []byte
	owner        []byte
	own          *senderkey.Sender
	sentTo       map[string]bool
	recv         *senderkey.Receiver
}

// zero wipes the chain's secrets.
func (ch *senderChain) zero() {
	if ch.own != nil {
		ch.own.Zero()
	}
	if ch.recv != nil {
		ch.recv.Zero()
	}
}

// pendingGroup is a group message waiting for its chain.
type pendingGroup struct {
	frame *commonv1.Frame
	msg   *wirepb.SenderKeyMessage
	at    time.Time
}

func chainKey(conversation, owner []byte) string { return string(owner) + string(conversation) }

// useSenderKeys reports whether a frame for every member goes as one group
// message: sender keys are on and it has two or more recipients.
func (l *Layer) useSenderKeys(recipients int) bool {
	return l.cfg.GroupMessages == groupSenderKeys && recipients >= 2
}

// groupDown seals f once for the members to, with distributions first for
// those that lack the node's chain. Only a storage failure is returned.
func (l *Layer) groupDown(ctx context.Context, b *batch, out []*commonv1.Frame, f *commonv1.Frame, members [][]byte, to []*contact) ([]*commonv1.Frame, error) {
	conv := f.GetConversation()
	ch := l.ownChain(b, conv, members)
	if ch == nil {
		return out, nil
	}
	for _, c := range to {
		if ch.sentTo[string(c.identity)] {
			continue
		}
		var err error
		if out, err = l.distribute(ctx, b, out, ch, c, f.GetTraceId()); err != nil {
			return out, err
		}
	}
	pt, err := l.plaintext(&wirepb.Plaintext{Conversation: conv, Payload: f.GetPayload()})
	if err != nil {
		l.c.drop(fmt.Errorf("%w: %v", ErrMalformed, err))
		return out, nil
	}
	m, err := ch.own.Seal(conv, pt)
	clear(pt)
	if errors.Is(err, senderkey.ErrExhausted) {
		l.rotate(b, ch)
		return l.groupDown(ctx, b, out, f, members, to)
	}
	if err != nil {
		l.c.drop(err)
		return out, nil
	}
	b.touchChain(ch)
	env, err := proto.Marshal(&wirepb.Envelope{Version: WireVersion, Body: &wirepb.Envelope_SenderKeyMessage{SenderKeyMessage: &wirepb.SenderKeyMessage{
		Conversation: conv, KeyId: m.KeyID, Iteration: m.Iteration, Ciphertext: m.Ciphertext, Signature: m.Signature, Sender: l.self,
	}}})
	if err != nil {
		l.c.drop(fmt.Errorf("%w: %v", ErrMalformed, err))
		return out, nil
	}
	l.c.add(cGroupSealed, 1)
	return append(out, &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_DOWN,
		TraceId:      f.GetTraceId(),
		Conversation: conv,
		Hints:        f.GetHints(),
		Payload:      env,
	}), nil
}

// distribute hands the node's chain ch, at its current position, to the
// member c in a pairwise message. Only a storage failure is returned; a
// failure to seal leaves c without the chain (it asks for it when a group
// message comes).
func (l *Layer) distribute(ctx context.Context, b *batch, out []*commonv1.Frame, ch *senderChain, c *contact, trace uint64) ([]*commonv1.Frame, error) {
	d := ch.own.Distribution()
	env, err := l.sealPlaintext(ctx, b, c, &wirepb.Plaintext{Conversation: ch.conversation, SenderKey: &wirepb.SenderKeyDistribution{
		KeyId: d.KeyID, Iteration: d.Iteration, ChainKey: d.ChainKey[:], SigningKey: d.SigningKey,
	}})
	clear(d.ChainKey[:])
	if err != nil {
		if errors.As(err, new(*storeError)) {
			return out, err
		}
		l.c.drop(err)
		l.env.Logger.Debug("sender key distribution failed", "contact", short(c.identity), "error", err)
		return out, nil
	}
	ch.sentTo[string(c.identity)] = true
	b.touchChain(ch)
	l.c.add(cDistributionsSent, 1)
	return append(out, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: trace, Peer: c.identity, Payload: env}), nil
}

// answerSenderKeyRequest hands the node's chain of conv to a member that
// asked for it, when the key id it asked for is the chain's and it did not
// ask within requestInterval. Only a storage failure is returned.
func (l *Layer) answerSenderKeyRequest(ctx context.Context, b *batch, out []*commonv1.Frame, from *contact, conv []byte, r *wirepb.SenderKeyRequest) ([]*commonv1.Frame, error) {
	l.c.add(cKeyRequestsRecv, 1)
	members, ok := l.conversations[string(conv)]
	ch := l.chains[chainKey(conv, l.self)]
	if !ok || !containsKey(members, from.identity) || ch == nil || ch.own.KeyID() != r.GetKeyId() {
		return out, nil // nothing this node can or may answer
	}
	k := chainKey(conv, from.identity)
	if last, ok := l.answeredAt[k]; ok && l.now().Sub(last) < requestInterval {
		return out, nil
	}
	l.answeredAt[k] = l.now()
	return l.distribute(ctx, b, out, ch, from, 0)
}

// requestChain asks sender for its chain of conv, at most once per
// requestInterval. Only a storage failure is returned.
func (l *Layer) requestChain(ctx context.Context, b *batch, out []*commonv1.Frame, sender, conv []byte, keyID uint32) ([]*commonv1.Frame, error) {
	c := l.contacts[string(sender)]
	if c == nil {
		return out, nil
	}
	k := chainKey(conv, sender)
	if last, ok := l.requestedAt[k]; ok && l.now().Sub(last) < requestInterval {
		return out, nil
	}
	env, err := l.sealPlaintext(ctx, b, c, &wirepb.Plaintext{Conversation: conv, SenderKeyRequest: &wirepb.SenderKeyRequest{KeyId: keyID}})
	if err != nil {
		if errors.As(err, new(*storeError)) {
			return out, err
		}
		l.c.drop(err)
		return out, nil
	}
	l.requestedAt[k] = l.now()
	l.c.add(cKeyRequestsSent, 1)
	return append(out, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: c.identity, Payload: env}), nil
}

// ownChain returns the node's chain for a conversation, making one when
// there is none, or a new one when a member it was handed to has left.
func (l *Layer) ownChain(b *batch, conv []byte, members [][]byte) *senderChain {
	ch := l.chains[chainKey(conv, l.self)]
	if ch == nil {
		l.nextChain++
		ch = &senderChain{id: l.nextChain, conversation: bytes.Clone(conv), owner: l.self}
		if err := l.newOwnChain(ch); err != nil {
			l.c.drop(err)
			return nil
		}
		l.chains[chainKey(conv, l.self)] = ch
		b.touchChain(ch)
		return ch
	}
	for m := range ch.sentTo {
		if !containsKey(members, []byte(m)) {
			l.rotate(b, ch)
			break
		}
	}
	return ch
}

// rotate gives the node's chain a new key, to be handed to every member
// again.
func (l *Layer) rotate(b *batch, ch *senderChain) {
	old := ch.own
	if err := l.newOwnChain(ch); err != nil {
		l.c.drop(err)
		return
	}
	old.Zero()
	b.touchChain(ch)
}

func (l *Layer) newOwnChain(ch *senderChain) error {
	s, err := senderkey.NewSender(rand.Reader)
	if err != nil {
		return err
	}
	ch.own, ch.sentTo = s, map[string]bool{}
	l.c.add(cChainsStarted, 1)
	return nil
}

// takeDistribution installs a member's chain from a pairwise plaintext,
// replacing the one held for it, and opens the group messages that waited
// for it.
func (l *Layer) takeDistribution(ctx context.Context, b *batch, out []*commonv1.Frame, from *contact, conv []byte, d *wirepb.SenderKeyDistribution) ([]*commonv1.Frame, error) {
	if len(d.GetChainKey()) != senderkey.KeySize {
		l.c.drop(fmt.Errorf("%w: sender key of %d bytes", ErrMalformed, len(d.GetChainKey())))
		return out, nil
	}
	if len(conv) == 0 {
		l.c.drop(fmt.Errorf("%w: sender key without a conversation", ErrMalformed))
		return out, nil
	}
	dist := senderkey.Distribution{KeyID: d.GetKeyId(), Iteration: d.GetIteration(), SigningKey: d.GetSigningKey()}
	copy(dist.ChainKey[:], d.GetChainKey())
	r, err := senderkey.NewReceiver(dist, l.senderLimits())
	clear(dist.ChainKey[:])
	clear(d.GetChainKey())
	if err != nil {
		l.c.drop(fmt.Errorf("%w: %w", ErrMalformed, err))
		return out, nil
	}
	k := chainKey(conv, from.identity)
	ch := l.chains[k]
	if ch == nil {
		l.nextChain++
		ch = &senderChain{id: l.nextChain, conversation: bytes.Clone(conv), owner: from.identity}
		l.chains[k] = ch
	} else if ch.recv != nil {
		ch.recv.Zero()
	}
	ch.recv = r
	b.touchChain(ch)
	l.c.add(cDistributionsRecv, 1)
	delete(l.requestedAt, k)
	return l.retryPending(ctx, b, out, conv, from.identity, r.KeyID(), d.GetIteration())
}

func (l *Layer) senderLimits() senderkey.Limits {
	return senderkey.Limits{MaxSkip: uint32(l.cfg.MaxSkip), MaxSkippedKeys: l.cfg.MaxSkippedKeys}
}

// groupUp opens a group message. Only a storage failure is returned.
func (l *Layer) groupUp(ctx context.Context, b *batch, out []*commonv1.Frame, f *commonv1.Frame, m *wirepb.SenderKeyMessage) ([]*commonv1.Frame, error) {
	conv, sender := m.GetConversation(), m.GetSender()
	if len(sender) != identitySize || len(conv) == 0 {
		l.c.drop(fmt.Errorf("%w: group message without its sender or conversation", ErrMalformed))
		return out, nil
	}
	if outer := f.GetConversation(); len(outer) > 0 && !bytes.Equal(outer, conv) {
		l.c.drop(ErrConversationMismatch)
		return out, nil
	}
	if p := f.GetPeer(); len(p) == identitySize && !bytes.Equal(p, sender) {
		l.c.drop(ErrSenderMismatch)
		return out, nil
	}
	if bytes.Equal(sender, l.self) {
		l.c.add(cGroupOwn, 1) // the privacy layer handed the node its own message
		return out, nil
	}
	if members, ok := l.conversations[string(conv)]; ok && !containsKey(members, sender) {
		l.c.drop(ErrNotMember)
		return out, nil
	}
	ch := l.chains[chainKey(conv, sender)]
	if ch == nil || ch.recv == nil || ch.recv.KeyID() != m.GetKeyId() {
		l.pend(f, m)
		return l.requestChain(ctx, b, out, sender, conv, m.GetKeyId())
	}
	raw, err := ch.recv.Open(conv, senderkey.Message{KeyID: m.GetKeyId(), Iteration: m.GetIteration(), Ciphertext: m.GetCiphertext(), Signature: m.GetSignature()})
	if err != nil {
		l.c.drop(err)
		return out, nil
	}
	b.touchChain(ch)
	pt := &wirepb.Plaintext{}
	perr := proto.Unmarshal(raw, pt)
	clear(raw)
	if perr != nil || subtle.ConstantTimeCompare(pt.GetConversation(), conv) != 1 || pt.GetSenderKey() != nil {
		l.c.drop(fmt.Errorf("%w: group plaintext", ErrMalformed))
		return out, nil
	}
	l.c.add(cGroupOpened, 1)
	return append(out, &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Conversation: conv,
		Peer:         ch.owner,
		Hints:        f.GetHints(),
		Payload:      pt.GetPayload(),
	}), nil
}

// pend keeps a group message for its chain, the oldest going first when
// full.
func (l *Layer) pend(f *commonv1.Frame, m *wirepb.SenderKeyMessage) {
	now := l.now()
	kept := l.pending[:0]
	for _, p := range l.pending {
		if now.Sub(p.at) < pendingGroupTTL {
			kept = append(kept, p)
		} else {
			l.c.drop(ErrUnknownSenderKey)
		}
	}
	l.pending = kept
	if len(l.pending) >= maxPendingGroup {
		l.pending = l.pending[1:]
		l.c.drop(ErrUnknownSenderKey)
	}
	l.pending = append(l.pending, pendingGroup{frame: f, msg: m, at: now})
	l.c.set(cGroupPending, uint64(len(l.pending)))
}

// retryPending opens the waiting group messages of sender's chain in
// conv with the key id; those before the chain's first iteration cannot be
// opened (the sync layer resends them pairwise).
func (l *Layer) retryPending(ctx context.Context, b *batch, out []*commonv1.Frame, conv, sender []byte, keyID, from uint32) ([]*commonv1.Frame, error) {
	var ready []pendingGroup
	kept := l.pending[:0]
	for _, p := range l.pending {
		switch {
		case p.msg.GetKeyId() != keyID || !bytes.Equal(p.msg.GetConversation(), conv) || !bytes.Equal(p.msg.GetSender(), sender):
			kept = append(kept, p)
		case p.msg.GetIteration() < from:
			l.c.drop(ErrUnknownSenderKey)
		default:
			ready = append(ready, p)
		}
	}
	l.pending = kept
	l.c.set(cGroupPending, uint64(len(l.pending)))
	var err error
	for _, p := range ready {
		if out, err = l.groupUp(ctx, b, out, p.frame, p.msg); err != nil {
			return out, err
		}
	}
	return out, nil
}

// saveChain writes a chain's row.
func (l *Layer) saveChain(b *batch, ch *senderChain) error {
	var raw []byte
	var err error
	if ch.own != nil {
		raw, err = ch.own.MarshalBinary()
	} else {
		raw, err = ch.recv.MarshalBinary()
	}
	if err != nil {
		return fmt.Errorf("sender key %d: %w", ch.id, err)
	}
	state, err := sealSecret(l.key, purposeSenderKey(ch.id), raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("sender key %d: %w", ch.id, err)
	}
	defer clear(state)
	var sentTo []byte
	for m := range ch.sentTo {
		sentTo = append(sentTo, m...)
	}
	return putSenderKey(b.ctx, b.tx, ch.id, ch.conversation, ch.owner, state, sentTo)
}

// loadChains reads every stored chain; l.mu is held.
func (l *Layer) loadChains(ctx context.Context) error {
	rows, err := loadSenderKeys(ctx, l.db)
	if err != nil {
		return err
	}
	for _, row := range rows {
		raw, err := openSecret(l.key, purposeSenderKey(row.id), row.state)
		clear(row.state)
		if err != nil {
			return fmt.Errorf("stored sender key %d: %w", row.id, err)
		}
		ch := &senderChain{id: row.id, conversation: row.conversation, owner: row.owner}
		if bytes.Equal(row.owner, l.self) {
			ch.own, err = senderkey.UnmarshalSender(raw)
			ch.sentTo = map[string]bool{}
			for s := row.sentTo; len(s) >= identitySize; s = s[identitySize:] {
				ch.sentTo[string(s[:identitySize])] = true
			}
		} else {
			ch.recv, err = senderkey.UnmarshalReceiver(raw, l.senderLimits())
		}
		clear(raw)
		if err != nil {
			return fmt.Errorf("stored sender key %d: %w", row.id, err)
		}
		l.chains[chainKey(ch.conversation, ch.owner)] = ch
		l.nextChain = max(l.nextChain, row.id)
	}
	return nil
}
