package layer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// testCard makes a card section for identity with n one-time KeyPackages.
func testCard(t testing.TB, identity []byte, n int) []byte {
	t.Helper()
	cs, err := suite.New(1)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := cs.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := group.Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: identity}, SignaturePriv: priv, SignaturePub: pub}
	card := Card{Suite: 1, SignatureKey: pub}
	for i := range n + 1 {
		b, err := group.NewKeyPackage(cs, id, time.Now(), time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == n {
			card.LastResort = b.KeyPackage
		} else {
			card.OneTime = append(card.OneTime, b.KeyPackage)
		}
	}
	raw, err := card.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FuzzCard feeds arbitrary bytes to the card-section decoder and, when
// they decode, to Verify: no panic, and a decoded card encodes back to the
// same bytes (the encoding is canonical).
func FuzzCard(f *testing.F) {
	identity := bytes.Repeat([]byte{7}, identitySize)
	f.Add(testCard(f, identity, 2))
	f.Add(testCard(f, identity, 0))
	f.Add([]byte{CardVersion, 0, 1, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCard(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrOversize) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("decoded card does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode∘encode changed the bytes")
		}
		_ = c.Verify(identity, time.Now())
	})
}

// FuzzEnvelope feeds arbitrary bytes to the envelope decoder: no panic, a
// typed error, and a decoded envelope encodes back to the same bytes.
func FuzzEnvelope(f *testing.F) {
	st, _ := (&envelope{kind: kindStatus, groupID: []byte("g"), epoch: 3, branch: bytes.Repeat([]byte{1}, 32), sender: bytes.Repeat([]byte{2}, 32), tag: []byte("0123456789abcdef")}).marshal()
	f.Add(st)
	ask, _ := (&envelope{kind: kindStatus, groupID: []byte("g"), sender: bytes.Repeat([]byte{2}, 32)}).marshal() // lazy.go
	f.Add(ask)
	groupAsk, _ := (&envelope{kind: kindGroupAsk, groupID: []byte("g"), sender: bytes.Repeat([]byte{2}, 32),
		listed: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)}}).marshal()
	f.Add(groupAsk)
	f.Add([]byte{WireVersion, kindApplication, 0, 1, 0, 2})
	f.Add([]byte{WireVersion, kindWelcome, 0, 0, 1, 0, 3})
	for _, seed := range envelopeSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrOversize) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		out, err := e.marshal()
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode∘encode changed the bytes")
		}
	})
}

// envelopeSeeds are genuine envelopes of every kind with a message: a
// Commit, a Welcome and an application message of a two-member group, and
// the Commit and Welcome again as sent to the group.
func envelopeSeeds(t testing.TB) [][]byte {
	cs, err := suite.New(1)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := cs.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := group.Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: bytes.Repeat([]byte{1}, 32)}, SignaturePriv: priv, SignaturePub: pub}
	g, err := group.Create(group.Config{}, cs, []byte("conversation"), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err = cs.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	bID := group.Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: bytes.Repeat([]byte{2}, 32)}, SignaturePriv: priv, SignaturePub: pub}
	kp, err := group.NewKeyPackage(cs, bID, time.Now(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := g.Commit(group.CommitOptions{Proposals: []wire.Proposal{group.AddProposal(kp.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Merge(pc); err != nil {
		t.Fatal(err)
	}
	app, err := g.Protect([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range []struct {
		kind uint8
		m    *wire.MLSMessage
	}{{kindCommit, pc.Message}, {kindWelcome, pc.Welcome}, {kindApplication, app}, {kindCommitAgain, pc.Message}, {kindGroupWelcome, pc.Welcome}} {
		raw, err := wire.Marshal(e.m)
		if err != nil {
			t.Fatal(err)
		}
		// committer and listed are written by commit_again and
		// group_welcome only.
		b, err := (&envelope{kind: e.kind, raw: raw, path: []pathEntry{{epoch: 1, hash: commitHash(raw)}},
			committer: a.Credential.Identity, listed: [][]byte{bID.Credential.Identity}}).marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzUp feeds arbitrary UP frames to a member of a two-member group,
// seeded with genuine application and status envelopes: no panic, and the
// group stays in its epoch with its authenticator.
func FuzzUp(f *testing.F) {
	n := newNet(f, "a", "b")
	a, b := n.nodes[0], n.nodes[1]
	const conv = "fuzz"
	n.converse(conv, a, b)
	n.run()
	var seeds [][]byte
	n.onEmit = func(from *tnode, frames []*commonv1.Frame) bool {
		for _, fr := range frames {
			if fr.GetDirection() == commonv1.Direction_DIRECTION_DOWN {
				seeds = append(seeds, bytes.Clone(fr.GetPayload()))
			}
		}
		return true
	}
	n.send(a, conv, nil)
	n.send(a, conv, b.id)
	a.l.mu.Lock()
	a.l.sendStatus(a.l.convs[conv])
	a.l.flush(n.ctx)
	a.l.mu.Unlock()
	n.onEmit = nil
	n.mu.Lock()
	n.queue = nil
	n.mu.Unlock()
	for _, s := range seeds {
		f.Add(s, true)
	}
	// An ask (lazy.go) for the group, which exists already.
	ask, err := (&envelope{kind: kindStatus, groupID: []byte(conv), sender: a.id}).marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ask, true)
	f.Add([]byte{WireVersion, kindCommit, 0}, false)
	f.Fuzz(func(t *testing.T, payload []byte, withConv bool) {
		e0, a0, _ := n.state(b, conv)
		up := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: a.id, Payload: payload}
		if withConv {
			up.Conversation = []byte(conv)
		}
		b.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{up}})
		n.mu.Lock()
		n.queue = nil
		b.ups = nil
		n.mu.Unlock()
		e1, a1, ok := n.state(b, conv)
		if !ok || e1 != e0 || !bytes.Equal(a0, a1) {
			t.Fatalf("an UP frame moved the group from epoch %d to %d (or out of it)", e0, e1)
		}
	})
}
