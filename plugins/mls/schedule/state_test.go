package schedule

import (
	"bytes"
	"errors"
	"testing"

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
		got, err := UnmarshalSecretTree(s, data, Retention{})
		if err != nil {
			return
		}
		again, err := got.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
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
