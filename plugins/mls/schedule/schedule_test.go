package schedule

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
)

func testSuite(t *testing.T) *suite.Suite {
	t.Helper()
	s, err := suite.New(suite.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTree(t *testing.T, n uint32, keep Retention) *SecretTree {
	t.Helper()
	tree, err := NewSecretTree(testSuite(t), bytes.Repeat([]byte{1}, 32), n, keep)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestSecretTreeSenderMatchesReceiver checks that the keys a sender takes
// with Next are the ones a receiver's tree gives for the same generations,
// whatever order the receiver asks in.
func TestSecretTreeSenderMatchesReceiver(t *testing.T) {
	sender, receiver := newTree(t, 5, Retention{}), newTree(t, 5, Retention{})
	var sent []KeyNonce
	for g := range 10 {
		kn, err := sender.Next(3, Application)
		if err != nil {
			t.Fatal(err)
		}
		if kn.Generation != uint32(g) {
			t.Fatalf("Next gave generation %d, want %d", kn.Generation, g)
		}
		sent = append(sent, kn)
	}
	for _, g := range []int{4, 0, 9, 1, 8, 2, 3, 7, 6, 5} {
		kn, err := receiver.Get(3, Application, uint32(g))
		if err != nil {
			t.Fatalf("Get generation %d: %v", g, err)
		}
		if !bytes.Equal(kn.Key, sent[g].Key) || !bytes.Equal(kn.Nonce, sent[g].Nonce) {
			t.Errorf("generation %d: receiver's key differs from sender's", g)
		}
	}
	hs, err := receiver.Get(3, Handshake, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(hs.Key, sent[0].Key) {
		t.Error("handshake and application ratchets share a key")
	}
	other, err := receiver.Get(2, Application, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Key, sent[0].Key) {
		t.Error("two leaves share a key")
	}
}

func TestSecretTreeRejects(t *testing.T) {
	tree := newTree(t, 4, Retention{MaxForward: 10, MaxSkipped: 3})
	if _, err := tree.Get(4, Handshake, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("leaf 4 of 4: %v, want ErrLeafOutOfRange", err)
	}
	if _, err := tree.Get(0, Handshake, 11); !errors.Is(err, ErrTooFarAhead) {
		t.Errorf("jump of 11 with MaxForward 10: %v, want ErrTooFarAhead", err)
	}
	if _, err := tree.Get(0, Handshake, 10); err != nil {
		t.Fatalf("jump of 10: %v", err)
	}
	if _, err := tree.Get(0, Handshake, 10); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("replay: %v, want ErrKeyConsumed", err)
	}
	// Generations 0..9 were skipped; only the 3 newest (7, 8, 9) are kept.
	for g := range uint32(10) {
		_, err := tree.Get(0, Handshake, g)
		if kept := g >= 7; kept != (err == nil) {
			t.Errorf("skipped generation %d: %v (kept: %v)", g, err, kept)
		}
	}
	if _, err := tree.Get(0, Handshake, 8); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("skipped key used twice: %v, want ErrKeyConsumed", err)
	}
	// A sender's own ratchet: what Next handed out cannot be taken again.
	if _, err := tree.Next(1, Application); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Get(1, Application, 0); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("Get after Next: %v, want ErrKeyConsumed", err)
	}
}

func TestSecretTreeEvictsOldestSkipped(t *testing.T) {
	tree := newTree(t, 1, Retention{MaxForward: 100, MaxSkipped: 2})
	for _, g := range []uint32{2, 5} { // skips 0, 1, then 3, 4
		if _, err := tree.Get(0, Application, g); err != nil {
			t.Fatal(err)
		}
	}
	for g, kept := range map[uint32]bool{0: false, 1: false, 3: true, 4: true} {
		if _, err := tree.Get(0, Application, g); kept != (err == nil) {
			t.Errorf("generation %d: %v (kept: %v)", g, err, kept)
		}
	}
}

func TestSecretTreeDeletesConsumedNodes(t *testing.T) {
	tree := newTree(t, 8, Retention{})
	if _, err := tree.Get(5, Handshake, 0); err != nil {
		t.Fatal(err)
	}
	// The root (7), its right child (11) and 11's left child (9) are
	// consumed; their other children 3, 13 and 8 stay.
	for _, x := range []uint32{7, 11, 9, 10} {
		if _, ok := tree.nodes[x]; ok {
			t.Errorf("node %d still stored after its children were derived", x)
		}
	}
	for _, x := range []uint32{3, 13, 8} {
		if _, ok := tree.nodes[x]; !ok {
			t.Errorf("node %d not stored", x)
		}
	}
	tree.Destroy()
	if len(tree.nodes) != 0 || len(tree.ratchets) != 0 {
		t.Error("Destroy left secrets")
	}
}

func TestNewSecretTreeSizes(t *testing.T) {
	s := testSuite(t)
	if _, err := NewSecretTree(s, make([]byte, 32), 0, Retention{}); err == nil {
		t.Error("tree of 0 leaves")
	}
	for n, root := range map[uint32]uint32{1: 0, 2: 1, 3: 3, 4: 3, 5: 7, 8: 7, 9: 15, 32: 31} {
		tree, err := NewSecretTree(s, make([]byte, 32), n, Retention{})
		if err != nil || tree.root != root {
			t.Errorf("%d leaves: root %d, %v; want %d", n, tree.root, err, root)
			continue
		}
		for leaf := range n {
			if _, err := tree.Get(leaf, Handshake, 0); err != nil {
				t.Errorf("%d leaves, leaf %d: %v", n, leaf, err)
			}
		}
	}
}

func TestKeyScheduleDefaults(t *testing.T) {
	s := testSuite(t)
	zero := make([]byte, 32)
	a, err := JoinerSecret(s, zero, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := JoinerSecret(s, zero, zero, []byte("gc"))
	if !bytes.Equal(a, b) {
		t.Error("a nil commit secret is not Nh zero bytes")
	}
	e1, _ := NewEpoch(s, a, nil, []byte("gc"))
	e2, _ := NewEpoch(s, a, zero, []byte("gc"))
	if !bytes.Equal(e1.InitSecret, e2.InitSecret) {
		t.Error("a nil psk secret is not Nh zero bytes")
	}
	e3, _ := NewEpoch(s, a, nil, []byte("gc2"))
	if bytes.Equal(e1.EncryptionSecret, e3.EncryptionSecret) {
		t.Error("the epoch ignores the GroupContext")
	}
	none, err := PSKSecret(s, nil)
	if err != nil || !bytes.Equal(none, zero) {
		t.Errorf("PSKSecret of no PSKs = %x, %v", none, err)
	}
	e1.Destroy()
	if !bytes.Equal(e1.ConfirmationKey, zero) {
		t.Error("Destroy left the confirmation key")
	}
}

func TestTranscript(t *testing.T) {
	s := testSuite(t)
	confirmed := ConfirmedTranscriptHash(s, nil, []byte("input"))
	key := []byte("confirmation key")
	tag := ConfirmationTag(s, key, confirmed)
	if !VerifyConfirmationTag(s, key, confirmed, tag) {
		t.Error("own confirmation tag rejected")
	}
	if VerifyConfirmationTag(s, key, confirmed[1:], tag) {
		t.Error("confirmation tag accepted for another hash")
	}
	// InterimTranscriptHashInput is the tag as an opaque<V>.
	want := s.Hash(append(append(bytes.Clone(confirmed), byte(len(tag))), tag...))
	if got := InterimTranscriptHash(s, confirmed, tag); !bytes.Equal(got, want) {
		t.Error("interim transcript hash")
	}
}
