package loopix_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// FuzzDecodeSharedRequest: a shared mailbox's post or pull from arbitrary
// user payloads decodes or fails with ErrShared, never panics, and what
// decodes encodes back to the same bytes.
func FuzzDecodeSharedRequest(f *testing.F) {
	g := testGeometry(f)
	n := loopix.SharedInnerLength(g)
	post, _ := loopix.EncodeSharedPost(g, make([]byte, n+40))
	f.Add(post)
	surbs := make([][]byte, loopix.SharedPullSURBs(g)-1)
	for i := range surbs {
		surbs[i] = bytes.Repeat([]byte{byte(i + 1)}, g.SURBLength)
	}
	pull, _ := loopix.EncodeSharedPull(g, 42, surbs)
	f.Add(pull)
	f.Add([]byte("stratash"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := loopix.DecodeSharedRequest(g, b)
		if err != nil {
			if !errors.Is(err, loopix.ErrShared) {
				t.Fatalf("error %v is not ErrShared", err)
			}
			return
		}
		var again []byte
		if r.Post {
			again, err = loopix.EncodeSharedPost(g, r.Entry)
		} else {
			again, err = loopix.EncodeSharedPull(g, r.Position, r.SURBs)
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}

// FuzzDecodeSharedReply: a pull's answer from arbitrary bytes decodes or
// fails with ErrShared and re-encodes to itself.
func FuzzDecodeSharedReply(f *testing.F) {
	g := testGeometry(f)
	entry := bytes.Repeat([]byte{7}, loopix.SharedInnerLength(g)+40)
	real, _ := loopix.EncodeSharedReply(g, loopix.SharedReply{Real: true, Seq: 9, Gone: 3, Entry: entry})
	f.Add(real)
	dummy, _ := loopix.EncodeSharedReply(g, loopix.SharedReply{})
	f.Add(dummy)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := loopix.DecodeSharedReply(g, b)
		if err != nil {
			if !errors.Is(err, loopix.ErrShared) {
				t.Fatalf("error %v is not ErrShared", err)
			}
			return
		}
		again, err := loopix.EncodeSharedReply(g, r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}

// FuzzOpenShared: a sealed post from arbitrary bytes opens only if it was
// sealed under the chat's key; otherwise ErrOpen, never a panic.
func FuzzOpenShared(f *testing.F) {
	ch, err := loopix.DeriveChannel("fuzz", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(make([]byte, 40))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := loopix.OpenShared(ch, b); err == nil {
			t.Fatal("arbitrary bytes opened under the chat's key")
		} else if !errors.Is(err, loopix.ErrOpen) {
			t.Fatalf("error %v is not ErrOpen", err)
		}
	})
}

// TestSharedCodecs: the encoders refuse what does not fit, and a sealed
// post opens under its chat's key only.
func TestSharedCodecs(t *testing.T) {
	g := testGeometry(t)
	if _, err := loopix.EncodeSharedPost(g, make([]byte, 3)); err == nil {
		t.Error("a short post encoded")
	}
	if _, err := loopix.EncodeSharedPull(g, 1, nil); loopix.SharedPullSURBs(g) > 1 && err == nil {
		t.Error("a pull with too few SURBs encoded")
	}
	if _, err := loopix.EncodeSharedReply(g, loopix.SharedReply{Real: true, Seq: 0, Entry: make([]byte, loopix.SharedInnerLength(g)+40)}); err == nil {
		t.Error("a reply with seq 0 encoded")
	}
	b, _ := loopix.EncodeSharedReply(g, loopix.SharedReply{Real: true, Seq: 5, Gone: 5, Entry: make([]byte, loopix.SharedInnerLength(g)+40)})
	if _, err := loopix.DecodeSharedReply(g, b); err == nil {
		t.Error("a reply whose gone is not below its seq decoded")
	}
	if loopix.IsShared(make([]byte, 100)) {
		t.Error("zeros taken for a shared payload")
	}
}
