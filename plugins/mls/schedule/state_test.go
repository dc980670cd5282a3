package schedule

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/suite"
)

// TestSecretTreeRoundTrip stores a secret tree part way through its use
// and checks the restored tree hands out exactly the keys the original
// does from there on, and refuses what the original refuses.
func TestSecretTreeRoundTrip(t *testing.T) {
	s, _ := suite.New(1)
	secret := bytes.Repeat([]byte{7}, s.Nh())
	orig, err := NewSecretTree(s, secret, 5, Retention{MaxForward: 100, MaxSkipped: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orig.Next(0, Handshake); err != nil {
		t.Fatal(err)
	}
	if _, err := orig.Get(3, Application, 6); err != nil { // skips 0..5, keeps 2..5
		t.Fatal(err)
	}
	b, err := orig.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalSecretTree(s, b, Retention{MaxForward: 100, MaxSkipped: 4})
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs (%v)", err)
	}
	type step struct {
		leaf uint32
		typ  RatchetType
		gen  int // -1: Next
	}
	for _, st := range []step{{0, Handshake, -1}, {3, Application, 4}, {3, Application, 1}, {3, Application, 7}, {4, Handshake, 2}, {1, Application, -1}} {
		var a, b KeyNonce
		var ea, eb error
		if st.gen < 0 {
			a, ea = orig.Next(st.leaf, st.typ)
			b, eb = back.Next(st.leaf, st.typ)
		} else {
			a, ea = orig.Get(st.leaf, st.typ, uint32(st.gen))
			b, eb = back.Get(st.leaf, st.typ, uint32(st.gen))
		}
		if !errors.Is(eb, ea) && !(ea != nil && eb != nil) {
			t.Fatalf("%+v: original %v, restored %v", st, ea, eb)
		}
		if ea == nil && (a.Generation != b.Generation || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Nonce, b.Nonce)) {
			t.Fatalf("%+v: keys differ", st)
		}
	}
}

// FuzzUnmarshalSecretTree: stored state read back never panics, and what
// decodes encodes back to the same bytes.
func FuzzUnmarshalSecretTree(f *testing.F) {
	s, _ := suite.New(1)
	tr, _ := NewSecretTree(s, bytes.Repeat([]byte{1}, s.Nh()), 4, Retention{})
	_, _ = tr.Next(1, Application)
	_, _ = tr.Get(2, Handshake, 3)
	b, _ := tr.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A policy that keeps fewer skipped keys than the data holds
		// trims them: what it keeps encodes and decodes back the same.
		if few, err := UnmarshalSecretTree(s, data, Retention{MaxForward: 1000, MaxSkipped: 2}); err == nil {
			b, err := few.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalSecretTree(s, b, Retention{MaxForward: 1000, MaxSkipped: 2})
			if err != nil {
				t.Fatalf("a trimmed tree does not decode: %v", err)
			}
			if again, err := back.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding of a trimmed tree differs (%v)", err)
			}
		}
		got, err := UnmarshalSecretTree(s, data, Retention{MaxForward: 1000, MaxSkipped: math.MaxInt32})
		if err != nil {
			return
		}
		again, err := got.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}

// TestSecretTreeFewerSkipped reads a tree back under a policy that keeps
// fewer skipped keys than it was stored with (max_skipped lowered between
// two runs): the newest keys stay usable, the older ones are gone.
func TestSecretTreeFewerSkipped(t *testing.T) {
	s, _ := suite.New(1)
	orig, err := NewSecretTree(s, bytes.Repeat([]byte{9}, s.Nh()), 4, Retention{MaxForward: 100, MaxSkipped: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orig.Get(2, Application, 6); err != nil { // keeps 2..5
		t.Fatal(err)
	}
	b, err := orig.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalSecretTree(s, b, Retention{MaxForward: 100, MaxSkipped: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gen  uint32
		kept bool
	}{{2, false}, {3, false}, {4, true}, {5, true}} {
		want, err := orig.Get(2, Application, tc.gen)
		if err != nil {
			t.Fatal(err)
		}
		got, err := back.Get(2, Application, tc.gen)
		switch {
		case tc.kept && (err != nil || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Nonce, want.Nonce)):
			t.Errorf("generation %d: %v, want the stored key", tc.gen, err)
		case !tc.kept && err == nil:
			t.Errorf("generation %d: a key, want it dropped with the older skipped keys", tc.gen)
		}
	}
	// Stored again, the tree holds the two it kept and reads back under
	// either policy.
	again, err := back.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSecretTree(s, again, Retention{MaxForward: 100, MaxSkipped: 4}); err != nil {
		t.Fatal(err)
	}
}

func TestPutBack(t *testing.T) {
	s, _ := suite.New(1)
	tr, err := NewSecretTree(s, bytes.Repeat([]byte{3}, s.Nh()), 2, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.PutBack(1, Application, KeyNonce{}); err == nil {
		t.Fatal("put back a key never handed out")
	}
	kn, err := tr.Get(1, Application, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.PutBack(1, Application, KeyNonce{Generation: 4, Key: kn.Key, Nonce: kn.Nonce}); err == nil {
		t.Fatal("put back a generation the ratchet has not passed")
	}
	if err := tr.PutBack(1, Application, kn); err != nil {
		t.Fatal(err)
	}
	if err := tr.PutBack(1, Application, kn); err == nil {
		t.Fatal("put back the same generation twice")
	}
	again, err := tr.Get(1, Application, 3)
	if err != nil || !bytes.Equal(again.Key, kn.Key) || !bytes.Equal(again.Nonce, kn.Nonce) {
		t.Fatalf("the key put back: %v", err)
	}
	if _, err := tr.Get(1, Application, 3); !errors.Is(err, ErrKeyConsumed) {
		t.Fatalf("third Get: %v, want ErrKeyConsumed", err)
	}
}

// TestSecretTreeEncodingKept checks the parts of its encoding a tree keeps
// between two MarshalBinary calls against an encoding made afresh, after
// every step of a random use of the tree: a part kept past a change would
// store a state the tree is no longer in (a key used twice after a
// restart).
func TestSecretTreeEncodingKept(t *testing.T) {
	s, _ := suite.New(1)
	rng := rand.New(rand.NewPCG(1, 2))
	tr, err := NewSecretTree(s, bytes.Repeat([]byte{5}, s.Nh()), 11, Retention{MaxForward: 20, MaxSkipped: 3})
	if err != nil {
		t.Fatal(err)
	}
	var handed []struct {
		leaf uint32
		typ  RatchetType
		kn   KeyNonce
	}
	for step := range 2000 {
		leaf, typ := uint32(rng.IntN(11)), RatchetType(rng.IntN(2))
		switch op := rng.IntN(4); {
		case op == 0:
			kn, err := tr.Next(leaf, typ)
			if err == nil {
				handed = append(handed, struct {
					leaf uint32
					typ  RatchetType
					kn   KeyNonce
				}{leaf, typ, KeyNonce{Generation: kn.Generation, Key: bytes.Clone(kn.Key), Nonce: bytes.Clone(kn.Nonce)}})
			}
		case op == 1 && len(handed) > 0:
			h := handed[rng.IntN(len(handed))]
			_ = tr.PutBack(h.leaf, h.typ, h.kn) // refused when kept already
		default:
			next := uint32(0)
			if rs, ok := tr.ratchets[leaf]; ok {
				next = rs[typ].next
			}
			gen := max(int(next)+rng.IntN(8)-4, 0)
			_, _ = tr.Get(leaf, typ, uint32(gen)) // refused when consumed
		}
		got, err := tr.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := encodeAfresh(t, tr); !bytes.Equal(got, want) {
			t.Fatalf("step %d: the kept encoding differs from one made afresh", step)
		}
	}
}

// encodeAfresh encodes tr as MarshalBinary does, without the parts it keeps.
func encodeAfresh(t *testing.T, tr *SecretTree) []byte {
	var w codec.Writer
	w.Uint32(tr.nLeaves)
	w.Vector(func(w *codec.Writer) {
		for _, x := range slices.Sorted(maps.Keys(tr.nodes)) {
			w.Uint32(x)
			w.Opaque(tr.nodes[x])
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, leaf := range slices.Sorted(maps.Keys(tr.ratchets)) {
			e, err := encodeRatchets(leaf, tr.ratchets[leaf])
			if err != nil {
				t.Fatal(err)
			}
			w.Raw(e)
		}
	})
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}
