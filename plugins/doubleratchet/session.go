package doubleratchet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// session is one Double Ratchet session with a contact.
type session struct {
	id        int64
	contact   *contact
	initiator bool
	// baseKey is the initiator's EncodeEC(EK_A): it names the session in
	// the PreKeyMessages that start it.
	baseKey []byte
	// header is the PreKeyMessage an initiator repeats until its first
	// reply; nil once the responder has answered (or on the responder).
	header  *wirepb.PreKeyMessage
	ad      []byte
	state   *ratchet.State
	rank    int64
	created time.Time
}

// sessionAD is the associated data of a session: the agreement's AD, then
// the initiator's and the responder's node identities, so that a message
// authenticates only between the two nodes whose cards pinned the keys.
func sessionAD(agreementAD, initiator, responder []byte) []byte {
	ad := make([]byte, 0, len(agreementAD)+len(initiator)+len(responder))
	ad = append(ad, agreementAD...)
	ad = append(ad, initiator...)
	return append(ad, responder...)
}

// saveSession writes a session's current state, sealed under the at-rest
// key when there is one.
func (l *Layer) saveSession(ctx context.Context, q querier, s *session) error {
	raw, err := s.state.MarshalBinary()
	if err != nil {
		return fmt.Errorf("session %d: %w", s.id, err)
	}
	state, err := sealSecret(l.key, purposeSession(s.id), raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("session %d: %w", s.id, err)
	}
	defer clear(state)
	var header []byte
	if s.header != nil {
		if header, err = proto.Marshal(s.header); err != nil {
			return fmt.Errorf("session %d: header: %w", s.id, err)
		}
	}
	return putSession(ctx, q, &storedSession{
		id: s.id, contact: s.contact.identity, initiator: s.initiator, baseKey: s.baseKey,
		header: header, ad: s.ad, state: state, rank: s.rank, created: s.created,
	})
}

// promote makes s the session that seals for its contact, and evicts the
// contact's least recently used sessions beyond maxSessions.
func (l *Layer) promote(b *batch, s *session) {
	c := s.contact
	if len(c.sessions) > 0 && c.sessions[0] == s {
		return
	}
	l.nextRank++
	s.rank = l.nextRank
	rest := []*session{s}
	for _, o := range c.sessions {
		if o != s {
			rest = append(rest, o)
		}
	}
	for len(rest) > maxSessions {
		old := rest[len(rest)-1]
		rest = rest[:len(rest)-1]
		b.deleted = append(b.deleted, old)
	}
	c.sessions = rest
	b.touch(s)
}

// plaintext encodes what a message encrypts, padded to a multiple of the
// configured block.
func (l *Layer) plaintext(pt *wirepb.Plaintext) ([]byte, error) {
	n := proto.Size(pt)
	if block := l.cfg.Padding; block > 0 {
		// The padding field costs a tag byte and a length varint besides
		// its bytes; find the pad that lands on the next block boundary.
		target := (n + 2 + block - 1) / block * block
		for p := target - n - 2; p >= 0; p-- {
			if n+1+protowire.SizeVarint(uint64(p))+p == target {
				pt.Padding = make([]byte, p)
				break
			}
		}
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(pt)
}

// seal encrypts a payload for a contact, starting a session if need be,
// and returns the envelope.
func (l *Layer) seal(ctx context.Context, b *batch, c *contact, conversation, payload []byte) ([]byte, error) {
	return l.sealPlaintext(ctx, b, c, &wirepb.Plaintext{Conversation: conversation, Payload: payload})
}

// sealPlaintext is seal for a plaintext of any kind (one that hands over
// or asks for a sender key).
func (l *Layer) sealPlaintext(ctx context.Context, b *batch, c *contact, plain *wirepb.Plaintext) ([]byte, error) {
	var s *session
	if len(c.sessions) > 0 && c.sessions[0].state.CanSend() {
		s = c.sessions[0]
	} else {
		var err error
		if s, err = l.initiate(ctx, b, c); err != nil {
			return nil, err
		}
	}
	pt, err := l.plaintext(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m, err := s.state.Encrypt(rand.Reader, pt, s.ad)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	b.touch(s)
	rm := &wirepb.RatchetMessage{Header: m.Header, Ciphertext: m.Ciphertext}
	env := &wirepb.Envelope{Version: WireVersion}
	if s.header != nil {
		pk := proto.CloneOf(s.header)
		pk.Message = rm
		env.Body = &wirepb.Envelope_Prekey{Prekey: pk}
	} else {
		env.Body = &wirepb.Envelope_Message{Message: rm}
	}
	return proto.Marshal(env)
}

// initiate starts a session with a contact (X3DH, or PQXDH when both sides
// publish an ML-KEM prekey) from its freshest bundle. A bundle with
// one-time keys is used once.
func (l *Layer) initiate(_ context.Context, b *batch, c *contact) (*session, error) {
	if c.pinned == nil {
		return nil, fmt.Errorf("%w: the contact's pinned bundle is of an old version; waiting for its current card", ErrBadBundle)
	}
	bundle := c.pinned
	fromFresh := false
	if c.fresh != nil {
		bundle, fromFresh = c.fresh, true
	}
	agree := x3dh.Initiate
	if !l.cfg.PostQuantum {
		// "PQXDH when both sides advertise the KEM prekey": this node does not.
		agree = x3dh.InitiateClassic
	}
	in, err := agree(rand.Reader, l.id, bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	defer clear(in.SharedSecret)
	st, err := ratchet.InitAlice(rand.Reader, in.SharedSecret, in.RatchetKey, l.cfg.limits)
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	if fromFresh {
		// One-time keys are one-time: the next session starts from the card
		// (or a newer answer).
		c.fresh, c.freshRaw = nil, nil
		b.contacts[c] = true
	}
	l.nextSession++
	s := &session{
		id: l.nextSession, contact: c, initiator: true, baseKey: in.Header.GetBaseKey(), header: in.Header,
		ad: sessionAD(in.AssociatedData, l.self, c.identity), state: st, created: l.now(),
	}
	l.promote(b, s)
	if in.PostQuantum {
		l.c.add(cStartedPQXDH, 1)
	} else {
		l.c.add(cStartedX3DH, 1)
	}
	return s, nil
}

// decodeEnvelope decodes an envelope from below.
func decodeEnvelope(raw []byte) (*wirepb.Envelope, error) {
	if len(raw) > maxEnvelope {
		return nil, ErrOversize
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	env := &wirepb.Envelope{}
	if err := proto.Unmarshal(raw, env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if env.GetVersion() != WireVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, env.GetVersion())
	}
	return env, nil
}

// open decrypts an envelope from a contact and returns the plaintext.
// On any error nothing in the session state changes.
func (l *Layer) open(ctx context.Context, b *batch, c *contact, outerConversation []byte, env *wirepb.Envelope) (*wirepb.Plaintext, error) {
	switch body := env.GetBody().(type) {
	case *wirepb.Envelope_Message:
		return l.openMessage(b, c, outerConversation, body.Message, nil)
	case *wirepb.Envelope_Prekey:
		return l.openPreKey(ctx, b, c, outerConversation, body.Prekey)
	case *wirepb.Envelope_BundleRequest:
		return nil, l.answerBundleRequest(ctx, b, c)
	case *wirepb.Envelope_Bundle:
		return nil, l.takeBundle(b, c, body.Bundle)
	case *wirepb.Envelope_SenderKeyMessage:
		return nil, fmt.Errorf("%w: a group message in a pairwise path", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: empty envelope", ErrMalformed)
	}
}

// errNoReply marks control envelopes (bundle traffic) that open to no
// plaintext; it is not a drop.
var errNoReply = errors.New("no plaintext")

// openMessage tries a RatchetMessage on the contact's sessions, or on only
// one when only is set.
func (l *Layer) openMessage(b *batch, c *contact, outer []byte, rm *wirepb.RatchetMessage, only *session) (*wirepb.Plaintext, error) {
	if rm == nil {
		return nil, fmt.Errorf("%w: no message", ErrMalformed)
	}
	m := ratchet.Message{Header: rm.GetHeader(), Ciphertext: rm.GetCiphertext()}
	candidates := c.sessions
	if only != nil {
		candidates = []*session{only}
	}
	now := l.now()
	for _, s := range candidates {
		st := s.state
		if len(outer) > 0 {
			// The conversation can be checked only after decryption, and a
			// mismatch must not consume the message key: open a copy.
			st = st.Clone()
		}
		raw, err := st.Decrypt(rand.Reader, now, m, s.ad)
		if errors.Is(err, ratchet.ErrHeader) {
			if st != s.state {
				st.Zero()
			}
			continue // not this session's message
		}
		if err != nil {
			if st != s.state {
				st.Zero()
			}
			return nil, err
		}
		pt := &wirepb.Plaintext{}
		perr := proto.Unmarshal(raw, pt)
		clear(raw)
		if len(outer) > 0 && (perr != nil || subtle.ConstantTimeCompare(outer, pt.GetConversation()) != 1) {
			st.Zero()
			return nil, ErrConversationMismatch
		}
		if st != s.state {
			s.state.Zero()
			s.state = st
		}
		if s.initiator && s.header != nil && s.state.Received() {
			s.header = nil // the responder has the session: stop repeating it
		}
		b.touch(s)
		l.promote(b, s)
		if perr != nil {
			// Authentic but not a Plaintext: the key is spent, the message is not.
			return nil, fmt.Errorf("%w: plaintext: %v", ErrMalformed, perr)
		}
		return pt, nil
	}
	return nil, ErrUnknownSession
}

// openPreKey handles a PreKeyMessage: in the session it started if that
// exists, else by accepting a new session.
func (l *Layer) openPreKey(ctx context.Context, b *batch, c *contact, outer []byte, pk *wirepb.PreKeyMessage) (*wirepb.Plaintext, error) {
	for _, s := range c.sessions {
		if !s.initiator && bytes.Equal(s.baseKey, pk.GetBaseKey()) {
			return l.openMessage(b, c, outer, pk.GetMessage(), s)
		}
	}
	if c.pinned == nil {
		return nil, fmt.Errorf("%w: the contact's pinned bundle is of an old version; no new session until its current card", ErrBadBundle)
	}
	if b.acceptedBase[string(pk.GetBaseKey())] {
		return nil, ErrReplay
	}
	spkID := pk.GetSignedPrekeyId()
	seen, err := seenBaseKey(ctx, b.q(), spkID, pk.GetBaseKey())
	if err != nil {
		return nil, l.storeFailure(err)
	}
	if seen {
		return nil, ErrReplay
	}
	var keys x3dh.ResponderKeys
	spk, _, err := signedPreKey(ctx, b.q(), l.key, spkID)
	if err != nil {
		return nil, l.storeFailure(err)
	}
	if spk == nil {
		return nil, fmt.Errorf("%w: signed prekey %d", ErrUnknownPreKey, spkID)
	}
	keys.SignedPreKey = spk
	defer spk.Zero()
	// A one-time key, X25519 or ML-KEM, opens only for the contact it was
	// reserved for (handed to in answer to its BundleRequest): another
	// contact cannot spend it, and one never handed out was never usable.
	if id := pk.GetOneTimePrekeyId(); id != 0 {
		opk, holder, err := oneTimePreKey(ctx, b.q(), l.key, id)
		if err != nil {
			return nil, l.storeFailure(err)
		}
		if opk == nil {
			return nil, fmt.Errorf("%w: one-time prekey %d", ErrUnknownPreKey, id)
		}
		defer opk.Zero()
		if !bytes.Equal(holder, c.identity) {
			return nil, fmt.Errorf("%w: one-time prekey %d is not reserved for this contact", ErrUnknownPreKey, id)
		}
		keys.OneTimePreKey = opk
	}
	lastResortKEM := false
	if id := pk.GetKemPrekeyId(); id != 0 {
		row, err := kemPreKey(ctx, b.q(), l.key, id)
		if err != nil {
			return nil, l.storeFailure(err)
		}
		if row == nil {
			return nil, fmt.Errorf("%w: KEM prekey %d", ErrUnknownPreKey, id)
		}
		defer row.key.Zero()
		if !row.lastResort && !bytes.Equal(row.reservedFor, c.identity) {
			return nil, fmt.Errorf("%w: one-time KEM prekey %d is not reserved for this contact", ErrUnknownPreKey, id)
		}
		keys.KEMPreKey, lastResortKEM = row.key, row.lastResort
	} else if l.kem != nil && c.pinned.KEMPreKey != nil {
		return nil, ErrDowngrade
	}
	sk, agreementAD, err := x3dh.Respond(l.id, keys, c.pinned.IdentityKey, pk)
	if err != nil {
		return nil, err
	}
	st, err := ratchet.InitBob(sk, spk.Private, l.cfg.limits)
	clear(sk)
	if err != nil {
		return nil, fmt.Errorf("accept session: %w", err)
	}
	l.nextSession++
	s := &session{
		id: l.nextSession, contact: c, baseKey: pk.GetBaseKey(),
		ad: sessionAD(agreementAD, c.identity, l.self), state: st, created: l.now(),
	}
	pt, err := l.openMessage(b, c, outer, pk.GetMessage(), s)
	if err != nil && !errors.Is(err, ErrMalformed) {
		// The initial message does not open: forget the secret (X3DH §3.4).
		st.Zero()
		l.nextSession--
		if errors.Is(err, ErrUnknownSession) {
			err = fmt.Errorf("%w: initial message", ratchet.ErrAuth)
		}
		return nil, err
	}
	// openMessage promoted s into the contact's sessions. The prekeys it
	// used are spent, and its base key is remembered.
	b.acceptedBase[string(pk.GetBaseKey())] = true
	if err := addSeenBaseKey(ctx, b.q(), spkID, pk.GetBaseKey()); err != nil {
		return nil, l.storeFailure(err)
	}
	if keys.OneTimePreKey != nil {
		if err := deleteOneTimePreKey(ctx, b.q(), keys.OneTimePreKey.ID); err != nil {
			return nil, l.storeFailure(err)
		}
	}
	if keys.KEMPreKey != nil && !lastResortKEM {
		if err := deleteKEMPreKey(ctx, b.q(), keys.KEMPreKey.ID); err != nil {
			return nil, l.storeFailure(err)
		}
	}
	b.refill = true
	l.c.add(cAccepted, 1)
	return pt, err
}

// answerBundleRequest sends a contact the bundle with one-time keys
// reserved for it.
func (l *Layer) answerBundleRequest(ctx context.Context, b *batch, c *contact) error {
	now := l.now()
	if now.Sub(c.answered) < bundleAnswerInterval {
		return errNoReply // asked again too soon: the answer is on its way
	}
	opks, kems, err := reserveOneTime(ctx, b.q(), c.identity, l.kem != nil)
	if err != nil {
		return l.storeFailure(err)
	}
	bundle := l.publicBundle(opks, kems).Proto()
	raw, err := proto.Marshal(&wirepb.Envelope{Version: WireVersion, Body: &wirepb.Envelope_Bundle{Bundle: bundle}})
	if err != nil {
		return fmt.Errorf("bundle answer: %w", err)
	}
	c.answered = now
	b.control(c, raw)
	b.refill = true
	l.c.add(cBundlesSent, 1)
	if c.fresh == nil && len(c.sessions) == 0 {
		// Our own request may have reached the contact before it knew us,
		// and been dropped there: it knows us now, so ask again.
		req, err := bundleRequest()
		if err != nil {
			return err
		}
		b.control(c, req)
		l.c.add(cRequestsSent, 1)
	}
	return errNoReply
}

// bundleRequest is the envelope of a BundleRequest.
func bundleRequest() ([]byte, error) {
	raw, err := proto.Marshal(&wirepb.Envelope{Version: WireVersion, Body: &wirepb.Envelope_BundleRequest{BundleRequest: &wirepb.BundleRequest{}}})
	if err != nil {
		return nil, fmt.Errorf("bundle request: %w", err)
	}
	return raw, nil
}

// takeBundle keeps a bundle a contact sent in answer to a BundleRequest,
// when its pinned keys signed it and it is not older than the bundles held
// for the contact.
func (l *Layer) takeBundle(b *batch, c *contact, p *wirepb.Bundle) error {
	bundle, err := x3dh.BundleFromProto(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	if !bundle.SameIdentity(c.pinned) {
		return fmt.Errorf("%w: not signed by the contact's pinned key", ErrBadBundle)
	}
	if err := notOlder(bundle, c.pinned, "pinned"); err != nil {
		return err
	}
	if err := notOlder(bundle, c.fresh, "in-band"); err != nil {
		return err
	}
	if c.pinned.KEMPreKey != nil && bundle.KEMPreKey == nil {
		return fmt.Errorf("%w: the ML-KEM prekey is missing (downgrade)", ErrBadBundle)
	}
	raw, err := bundle.Marshal()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	c.fresh, c.freshRaw = bundle, raw
	b.contacts[c] = true
	l.c.add(cBundlesReceived, 1)
	return errNoReply
}

// notOlder refuses a bundle issued before the one held (nil: none held).
// The issue time is signed (bundle version 2), so an older bundle is a
// replay, or a copy that was delayed past a newer one: either way its
// prekeys are older than those held.
func notOlder(b, held *x3dh.Bundle, what string) error {
	if held != nil && b.Issued.Before(held.Issued) {
		return fmt.Errorf("%w: bundle issued %s, older than the %s bundle held (issued %s)",
			ErrStaleBundle, b.Issued.UTC().Format(time.RFC3339), what, held.Issued.UTC().Format(time.RFC3339))
	}
	return nil
}

// storeFailure records a storage error; the batch then fails as a whole.
func (l *Layer) storeFailure(err error) error {
	return &storeError{err: err}
}

// storeError is a storage failure on the open path.
type storeError struct{ err error }

func (e *storeError) Error() string { return "doubleratchet: storage: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// batch is the work of one HandleBatch (or control call): its transaction,
// the sessions it changed, and the frames it will emit once committed.
type batch struct {
	ctx          context.Context
	tx           *sql.Tx
	dirty        map[*session]bool
	deleted      []*session
	contacts     map[*contact]bool
	acceptedBase map[string]bool
	refill       bool
	controls     []controlFrame
	chains       map[*senderChain]bool
}

// controlFrame is a bundle-traffic frame to a contact.
type controlFrame struct {
	to      []byte
	payload []byte
}

// newBatch begins a batch and its transaction.
func newBatch(ctx context.Context, db *sql.DB) (*batch, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return &batch{ctx: ctx, tx: tx, dirty: map[*session]bool{}, contacts: map[*contact]bool{}, acceptedBase: map[string]bool{}, chains: map[*senderChain]bool{}}, nil
}

// q returns the batch's transaction.
func (b *batch) q() querier { return b.tx }

func (b *batch) touch(s *session) { b.dirty[s] = true }

func (b *batch) touchChain(ch *senderChain) { b.chains[ch] = true }

func (b *batch) control(c *contact, payload []byte) {
	b.controls = append(b.controls, controlFrame{to: c.identity, payload: payload})
}

// commit writes what the batch changed and commits it. On failure the
// transaction is rolled back. When the batch changed or deleted a session
// (and with it, when it accepted one, deleted the prekeys it used), or a
// checkpoint is still due, it then checkpoints the database, so that the
// superseded secrets are gone from the files before any frame leaves.
func (l *Layer) commit(b *batch) error {
	if err := l.commitTx(b); err != nil {
		return err
	}
	if l.forgetDue(b) {
		return l.forget(context.WithoutCancel(b.ctx))
	}
	return nil
}

// commitTx writes what the batch changed and commits it, without the
// checkpoint; on failure the transaction is rolled back.
func (l *Layer) commitTx(b *batch) error {
	err := l.writeBatch(b)
	if err == nil {
		err = b.tx.Commit()
	}
	if err != nil {
		b.tx.Rollback()
		return fmt.Errorf("commit: %w", err)
	}
	for _, s := range b.deleted {
		s.state.Zero()
	}
	l.levels()
	return nil
}

// forgetDue reports whether a committed batch superseded or deleted
// secrets (or a checkpoint is still due), so that forget must run.
func (l *Layer) forgetDue(b *batch) bool {
	return len(b.dirty) > 0 || len(b.deleted) > 0 || len(b.chains) > 0 || l.unforgotten
}

func (l *Layer) writeBatch(b *batch) error {
	for c := range b.contacts {
		if err := putContact(b.ctx, b.tx, c.identity, c.pinnedRaw, c.freshRaw); err != nil {
			return err
		}
	}
	for s := range b.dirty {
		if slices.Contains(b.deleted, s) {
			continue
		}
		if err := l.saveSession(b.ctx, b.tx, s); err != nil {
			return err
		}
	}
	for _, s := range b.deleted {
		if err := deleteSession(b.ctx, b.tx, s.id); err != nil {
			return err
		}
	}
	for ch := range b.chains {
		if err := l.saveChain(b, ch); err != nil {
			return err
		}
	}
	if b.refill {
		return l.refill(b.ctx, b.tx)
	}
	return nil
}

// abort rolls a batch back without writing anything.
func (b *batch) abort() { b.tx.Rollback() }
