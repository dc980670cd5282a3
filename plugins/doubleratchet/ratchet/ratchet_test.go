package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/iotest"
	"time"
)

func TestPingPong(t *testing.T) {
	a, b := newPair(t, "pingpong", DefaultLimits())
	if !a.s.CanSend() || b.s.CanSend() || a.s.Received() || b.s.Received() {
		t.Fatal("initial CanSend/Received wrong")
	}
	if _, err := b.s.Encrypt(b.rand, []byte("early"), testAD); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("Bob Encrypt before receiving: %v, want ErrNoSendingChain", err)
	}
	for i := range 20 {
		msg := fmt.Sprintf("a%d", i)
		b.recv(t, a.send(t, msg), msg)
		msg = fmt.Sprintf("b%d", i)
		a.recv(t, b.send(t, msg), msg)
	}
	if !b.s.CanSend() || !a.s.Received() || !b.s.Received() {
		t.Fatal("CanSend/Received wrong after exchange")
	}
	if a.s.Skipped() != 0 || b.s.Skipped() != 0 {
		t.Fatal("skipped keys in an in-order exchange")
	}
}

func TestEmptyPlaintextAndAD(t *testing.T) {
	a, b := newPair(t, "empty", DefaultLimits())
	m, err := a.s.Encrypt(a.rand, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Header) != encHeaderLen || len(m.Ciphertext) != tagLen {
		t.Fatalf("sizes %d/%d", len(m.Header), len(m.Ciphertext))
	}
	pt, err := b.s.Decrypt(b.rand, t0, m, nil)
	if err != nil || len(pt) != 0 {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
}

func TestBursts(t *testing.T) {
	a, b := newPair(t, "bursts", DefaultLimits())
	bursts := []struct{ fromAlice, n int }{{1, 5}, {0, 3}, {1, 1}, {0, 10}, {1, 7}, {0, 1}, {1, 2}}
	for k, bu := range bursts {
		from, to := a, b
		if bu.fromAlice == 0 {
			from, to = b, a
		}
		var ms []Message
		for i := range bu.n {
			ms = append(ms, from.send(t, fmt.Sprintf("%d/%d", k, i)))
		}
		for i, m := range ms {
			to.recv(t, m, fmt.Sprintf("%d/%d", k, i))
		}
	}
}

func TestOutOfOrder(t *testing.T) {
	t.Run("reverse5", func(t *testing.T) {
		a, b := newPair(t, "reverse", DefaultLimits())
		var ms []Message
		for i := range 5 {
			ms = append(ms, a.send(t, fmt.Sprint(i)))
		}
		for i := 4; i >= 0; i-- {
			b.recv(t, ms[i], fmt.Sprint(i))
			if got, want := b.s.Skipped(), i; got != want {
				t.Fatalf("after %d: Skipped = %d, want %d", i, got, want)
			}
		}
		for i := range 5 {
			b.recvErr(t, ms[i], ErrDuplicate)
		}
	})
	t.Run("old-chain-after-newer", func(t *testing.T) {
		a, b := newPair(t, "oldchain", DefaultLimits())
		b.recv(t, a.send(t, "a0"), "a0")
		late1 := a.send(t, "a1") // chain 1, delayed
		late2 := a.send(t, "a2")
		a.recv(t, b.send(t, "b0"), "b0") // Alice ratchets
		b.recv(t, a.send(t, "a3"), "a3") // chain 2 first: Bob skips a1, a2 by PN
		if b.s.Skipped() != 2 {
			t.Fatalf("Skipped = %d, want 2", b.s.Skipped())
		}
		a.recv(t, b.send(t, "b1"), "b1")
		b.recv(t, a.send(t, "a4"), "a4") // chain 3
		b.recv(t, late2, "a2")
		b.recv(t, late1, "a1")
		if b.s.Skipped() != 0 {
			t.Fatalf("Skipped = %d, want 0", b.s.Skipped())
		}
		b.recvErr(t, late1, ErrHeader) // old chain's header key is gone with its last key
	})
}

func TestFirstMessageLate(t *testing.T) {
	a, b := newPair(t, "firstlate", DefaultLimits())
	m0 := a.send(t, "a0")
	m1 := a.send(t, "a1")
	b.recv(t, m1, "a1")
	a.recv(t, b.send(t, "b0"), "b0")
	b.recv(t, m0, "a0")
	b.recv(t, a.send(t, "a2"), "a2")
}

func TestLostMessages(t *testing.T) {
	a, b := newPair(t, "lost", DefaultLimits())
	for round := range 6 {
		for i := range 4 {
			m := a.send(t, fmt.Sprint(round, i))
			if i%2 == 0 {
				b.recv(t, m, fmt.Sprint(round, i)) // odd ones are lost
			}
		}
		for i := range 3 {
			m := b.send(t, fmt.Sprint(round, i))
			if i != 1 {
				a.recv(t, m, fmt.Sprint(round, i))
			}
		}
	}
	// Lost keys stay stored, bounded by MaxSkippedChains chains.
	if b.s.Skipped() == 0 || a.s.Skipped() == 0 {
		t.Fatal("no skipped keys for lost messages")
	}
	if n := len(b.s.sk.chains); n > DefaultLimits().MaxSkippedChains {
		t.Fatalf("%d chains stored", n)
	}
}

func TestDuplicate(t *testing.T) {
	a, b := newPair(t, "dup", DefaultLimits())
	m0 := a.send(t, "a0")
	b.recv(t, m0, "a0")
	b.recvErr(t, m0, ErrDuplicate) // first message of a chain (ratchet path) replayed
	m1 := a.send(t, "a1")
	b.recv(t, m1, "a1")
	b.recvErr(t, m1, ErrDuplicate)
	m3, m2 := a.send(t, "a2"), a.send(t, "a3")
	b.recv(t, m2, "a3")
	b.recv(t, m3, "a2") // skipped key
	b.recvErr(t, m3, ErrDuplicate)
	b.recvErr(t, m2, ErrDuplicate)
	// Alice's side too.
	r := b.send(t, "b0")
	a.recv(t, r, "b0")
	a.recvErr(t, r, ErrDuplicate)
}

// TestTamper flips every byte of the header and ciphertext of messages
// taking each decryption path, and changes lengths and AD. Each must fail
// with the right error and leave the state byte-identical; the untouched
// message still decrypts afterwards.
func TestTamper(t *testing.T) {
	a, b := newPair(t, "tamper", DefaultLimits())
	b.recv(t, a.send(t, "warmup"), "warmup")
	skippedMsg := a.send(t, "skipped")
	currentMsg := func() Message { return a.send(t, "current") }
	cur := currentMsg() // Bob stores a key for skippedMsg when opening cur
	b.recv(t, cur, "current")
	cur = currentMsg()
	a.recv(t, b.send(t, "reply"), "reply")
	ratchetMsg := a.send(t, "ratchet") // opens under Bob's NHKr

	cases := []struct {
		name string
		m    Message
		want string
	}{
		{"current-chain", cur, "current"},
		{"skipped-key", skippedMsg, "skipped"},
		{"dh-ratchet", ratchetMsg, "ratchet"},
	}
	classes := []struct {
		name   string
		lo, hi int
	}{
		{"header-nonce", 0, headerNonceLen},
		{"header-version", headerNonceLen, headerNonceLen + 1},
		{"header-dh", headerNonceLen + 1, headerNonceLen + 1 + 32},
		{"header-pn", headerNonceLen + 33, headerNonceLen + 37},
		{"header-n", headerNonceLen + 37, headerNonceLen + 41},
		{"header-tag", headerNonceLen + headerLen, encHeaderLen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cl := range classes {
				for i := cl.lo; i < cl.hi; i++ {
					m := Message{Header: flip(tc.m.Header, i), Ciphertext: tc.m.Ciphertext}
					b.recvErr(t, m, ErrHeader)
				}
			}
			ctLen := len(tc.m.Ciphertext)
			for i := range ctLen {
				// body bytes and tag bytes
				m := Message{Header: tc.m.Header, Ciphertext: flip(tc.m.Ciphertext, i)}
				b.recvErr(t, m, ErrAuth)
			}
			b.recvErr(t, Message{Header: tc.m.Header[:encHeaderLen-1], Ciphertext: tc.m.Ciphertext}, ErrMalformed)
			b.recvErr(t, Message{Header: append(bytes.Clone(tc.m.Header), 0), Ciphertext: tc.m.Ciphertext}, ErrMalformed)
			b.recvErr(t, Message{Header: tc.m.Header, Ciphertext: tc.m.Ciphertext[:ctLen-1]}, ErrAuth)
			b.recvErr(t, Message{Header: tc.m.Header, Ciphertext: append(bytes.Clone(tc.m.Ciphertext), 0)}, ErrAuth)
			b.recvErr(t, Message{Header: tc.m.Header, Ciphertext: tc.m.Ciphertext[:tagLen-1]}, ErrMalformed)
			b.recvErr(t, Message{Header: tc.m.Header}, ErrMalformed)
			b.recvErrAt(t, t0, tc.m, []byte("other AD"), ErrHeader)
			b.recvErrAt(t, t0, tc.m, nil, ErrHeader)
			b.recvErrAt(t, t0, tc.m, make([]byte, maxADLen+1), ErrMalformed)
			b.recv(t, tc.m, tc.want)
		})
	}
}

// TestCraftedHeaders uses the header keys directly, as only the peer (or a
// holder of the keys) could, to reach checks behind header authentication.
func TestCraftedHeaders(t *testing.T) {
	a, b := newPair(t, "crafted", DefaultLimits())
	nhkr := b.s.c.nhkr
	var zero [32]byte
	t.Run("bad-version", func(t *testing.T) {
		b.recvErr(t, craft(t, nhkr, 2, a.s.c.dhsPub, 0, 0), ErrHeader)
		b.recvErr(t, craft(t, nhkr, 0, a.s.c.dhsPub, 0, 0), ErrHeader)
	})
	t.Run("all-zero-dh", func(t *testing.T) {
		b.recvErr(t, craft(t, nhkr, 1, zero, 0, 0), ErrBadKey)
	})
	t.Run("too-far-ahead", func(t *testing.T) {
		b.recvErr(t, craft(t, nhkr, 1, a.s.c.dhsPub, 0, 1001), ErrTooFarAhead)
		b.recvErr(t, craft(t, nhkr, 1, a.s.c.dhsPub, 1001, 0), ErrTooFarAhead)
		b.recvErr(t, craft(t, nhkr, 1, a.s.c.dhsPub, 0, math.MaxUint32), ErrTooFarAhead)
	})
	t.Run("forged-ciphertext", func(t *testing.T) {
		// Header opens, ratchet and 1000 skipped keys computed, AEAD fails:
		// nothing is kept.
		b.recvErr(t, craft(t, nhkr, 1, a.s.c.dhsPub, 1000, 1000), ErrAuth)
		if b.s.Skipped() != 0 {
			t.Fatal("skipped keys kept after a failed decrypt")
		}
	})
	b.recv(t, a.send(t, "still fine"), "still fine")
	t.Run("current-chain-max-n", func(t *testing.T) {
		b.recvErr(t, craft(t, b.s.c.hkr, 1, a.s.c.dhsPub, 0, math.MaxUint32), ErrTooFarAhead)
	})
}

func TestTooFarAhead(t *testing.T) {
	t.Run("n", func(t *testing.T) {
		a, b := newPair(t, "far-n", DefaultLimits())
		b.recv(t, a.send(t, "m0"), "m0") // Nr = 1
		var ms []Message
		for i := 1; i <= 1002; i++ {
			ms = append(ms, a.send(t, fmt.Sprint(i)))
		}
		b.recvErr(t, ms[1001], ErrTooFarAhead) // n = 1002: 1001 to skip
		b.recv(t, ms[1000], "1001")            // n = 1001: exactly 1000 to skip
		if b.s.Skipped() != 1000 {
			t.Fatalf("Skipped = %d", b.s.Skipped())
		}
	})
	t.Run("n-new-chain", func(t *testing.T) {
		a, b := newPair(t, "far-n0", DefaultLimits())
		var ms []Message
		for i := 0; i <= 1001; i++ {
			ms = append(ms, a.send(t, fmt.Sprint(i)))
		}
		b.recvErr(t, ms[1001], ErrTooFarAhead)
		b.recv(t, ms[1000], "1000")
	})
	t.Run("pn", func(t *testing.T) {
		for _, tc := range []struct {
			extra int
			err   error
		}{{1001, ErrTooFarAhead}, {1000, nil}} {
			a, b := newPair(t, "far-pn", DefaultLimits())
			b.recv(t, a.send(t, "m0"), "m0") // Bob: Nr = 1 in chain 1
			for i := range tc.extra {
				a.send(t, fmt.Sprint(i)) // lost
			}
			a.recv(t, b.send(t, "b0"), "b0") // Alice ratchets: PN = 1 + extra
			m := a.send(t, "new chain")
			if tc.err != nil {
				b.recvErr(t, m, tc.err)
			} else {
				b.recv(t, m, "new chain")
				if b.s.Skipped() != tc.extra {
					t.Fatalf("Skipped = %d", b.s.Skipped())
				}
			}
		}
	})
}

func TestEvictionMaxSkippedKeys(t *testing.T) {
	a, b := newPair(t, "evict", DefaultLimits())
	var ms []Message
	for i := range 1500 {
		ms = append(ms, a.send(t, fmt.Sprint(i)))
	}
	b.recv(t, ms[999], "999") // stores 0..998
	if b.s.Skipped() != 999 {
		t.Fatalf("Skipped = %d", b.s.Skipped())
	}
	b.recv(t, ms[1499], "1499") // stores 1000..1498; oldest 498 evicted
	if b.s.Skipped() != 1000 {
		t.Fatalf("Skipped = %d, want 1000", b.s.Skipped())
	}
	b.recvErr(t, ms[497], ErrDuplicate)
	b.recvErr(t, ms[0], ErrDuplicate)
	b.recv(t, ms[498], "498")
	b.recv(t, ms[1498], "1498")
	b.recv(t, ms[1000], "1000")
	if b.s.Skipped() != 997 {
		t.Fatalf("Skipped = %d, want 997", b.s.Skipped())
	}

	t.Run("small-limit-across-chains", func(t *testing.T) {
		lim := DefaultLimits()
		lim.MaxSkippedKeys = 3
		a, b := newPair(t, "evict-small", lim)
		m0, m1, m2 := a.send(t, "0"), a.send(t, "1"), a.send(t, "2")
		b.recv(t, a.send(t, "3"), "3") // stores 0, 1, 2
		a.recv(t, b.send(t, "r"), "r")
		n0, n1 := a.send(t, "n0"), a.send(t, "n1")
		b.recv(t, n1, "n1") // stores n0; evicts 0
		if b.s.Skipped() != 3 {
			t.Fatalf("Skipped = %d", b.s.Skipped())
		}
		b.recvErr(t, m0, ErrDuplicate)
		b.recv(t, m1, "1")
		b.recv(t, m2, "2")
		b.recv(t, n0, "n0")
	})
}

func TestEvictionBothChains(t *testing.T) {
	// One message skips 1000 keys of the old chain (PN) and 1000 of the new
	// one (N): only the newest 1000 are kept.
	a, b := newPair(t, "evict-both", DefaultLimits())
	b.recv(t, a.send(t, "m0"), "m0")
	var old []Message
	for i := range 1000 {
		old = append(old, a.send(t, fmt.Sprint("old", i)))
	}
	a.recv(t, b.send(t, "r"), "r")
	var cur []Message
	for i := range 1001 {
		cur = append(cur, a.send(t, fmt.Sprint("new", i)))
	}
	b.recv(t, cur[1000], "new1000")
	if b.s.Skipped() != 1000 || len(b.s.sk.chains) != 1 {
		t.Fatalf("Skipped = %d in %d chains", b.s.Skipped(), len(b.s.sk.chains))
	}
	b.recvErr(t, old[999], ErrHeader) // the old chain's keys are all gone
	b.recv(t, cur[0], "new0")
	b.recv(t, cur[999], "new999")

	lim := DefaultLimits()
	lim.MaxSkippedKeys = 3
	a, b = newPair(t, "evict-both-small", lim)
	var ms []Message
	for i := range 11 {
		ms = append(ms, a.send(t, fmt.Sprint(i)))
	}
	b.recv(t, ms[10], "10")
	if b.s.Skipped() != 3 {
		t.Fatalf("Skipped = %d, want 3", b.s.Skipped())
	}
	b.recvErr(t, ms[6], ErrDuplicate)
	for i := 7; i < 10; i++ {
		b.recv(t, ms[i], fmt.Sprint(i))
	}
}

func TestEvictionMaxSkippedChains(t *testing.T) {
	a, b := newPair(t, "chains", DefaultLimits())
	var lost []Message
	for round := range 6 {
		lost = append(lost, a.send(t, fmt.Sprint("lost", round)))
		b.recv(t, a.send(t, "x"), "x")
		a.recv(t, b.send(t, "y"), "y")
	}
	if n := len(b.s.sk.chains); n != 5 {
		t.Fatalf("%d chains, want 5", n)
	}
	if b.s.Skipped() != 5 {
		t.Fatalf("Skipped = %d, want 5", b.s.Skipped())
	}
	b.recvErr(t, lost[0], ErrHeader)
	for i := 1; i < 6; i++ {
		b.recv(t, lost[i], fmt.Sprint("lost", i))
	}
}

func TestExpiryTTL(t *testing.T) {
	a, b := newPair(t, "ttl", DefaultLimits())
	ttl := DefaultLimits().SkippedKeyTTL
	m0, m1 := a.send(t, "m0"), a.send(t, "m1")
	b.recvAt(t, t0, m1, "m1")
	m2 := a.send(t, "m2")

	c := b.clone("c1")
	c.recvAt(t, t0.Add(ttl), m0, "m0") // exactly TTL old: still kept

	c = b.clone("c2")
	c.s.Expire(t0.Add(ttl - time.Second))
	if c.s.Skipped() != 1 {
		t.Fatal("Expire deleted a fresh key")
	}
	c.s.Expire(t0.Add(ttl + time.Second))
	if c.s.Skipped() != 0 {
		t.Fatal("Expire kept an expired key")
	}
	c.recvErr(t, m0, ErrDuplicate)

	c = b.clone("c3")
	c.recvErrAt(t, t0.Add(ttl+time.Second), m0, testAD, ErrDuplicate) // expired key not used
	c.recvAt(t, t0.Add(ttl+time.Second), m2, "m2")                    // success runs expiry
	if c.s.Skipped() != 0 {
		t.Fatal("Decrypt did not expire")
	}

	t.Run("clock-backwards", func(t *testing.T) {
		a, b := newPair(t, "ttl-back", DefaultLimits())
		x0, x1 := a.send(t, "x0"), a.send(t, "x1")
		y0, y1 := a.send(t, "y0"), a.send(t, "y1")
		b.recvAt(t, t0, x1, "x1")                    // x0 stored at t0
		b.recvAt(t, t0.Add(-24*time.Hour), y1, "y1") // y0 stored a day earlier
		b.s.Expire(t0.Add(ttl).Add(-12 * time.Hour)) // y0 is older than TTL, x0 not
		if b.s.Skipped() != 1 {
			t.Fatalf("Skipped = %d, want 1", b.s.Skipped())
		}
		b.recvErr(t, y0, ErrDuplicate)
		b.recvAt(t, t0, x0, "x0")
	})
}

func TestExpiryMaxKeep(t *testing.T) {
	a, b := newPair(t, "maxkeep", DefaultLimits())
	m0, m1 := a.send(t, "m0"), a.send(t, "m1")
	b.recv(t, m1, "m1") // m0 stored by received message #1
	for range 2999 {
		b.recv(t, a.send(t, "x"), "x")
	}
	c := b.clone("keep")
	c.recv(t, m0, "m0") // 2999 later messages: kept
	b.recv(t, a.send(t, "x"), "x")
	if b.s.Skipped() != 0 {
		t.Fatal("key kept after 3000 later messages")
	}
	b.recvErr(t, m0, ErrDuplicate)
}

func TestMarshalRoundTrip(t *testing.T) {
	a, b := newPair(t, "marshal", DefaultLimits())
	if a.s.Skipped() != 0 {
		t.Fatal()
	}
	var lateA []Message
	b.recv(t, a.send(t, "a0"), "a0")
	lateA = append(lateA, a.send(t, "a1"))
	b.recv(t, a.send(t, "a2"), "a2")
	a.recv(t, b.send(t, "b0"), "b0")
	lateA = append(lateA, a.send(t, "a3"))
	b.recv(t, a.send(t, "a4"), "a4")
	lateB := b.send(t, "b1")
	a.recv(t, b.send(t, "b2"), "b2")
	if b.s.Skipped() != 2 || a.s.Skipped() != 1 {
		t.Fatalf("Skipped = %d/%d", a.s.Skipped(), b.s.Skipped())
	}
	for _, p := range []*peer{a, b} {
		enc := marshal(t, p.s)
		s, err := Unmarshal(enc, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(marshal(t, s), enc) {
			t.Fatal("re-marshal differs")
		}
		if s.CanSend() != p.s.CanSend() || s.Received() != p.s.Received() || s.Skipped() != p.s.Skipped() {
			t.Fatal("accessors differ")
		}
		p.s.Zero()
		p.s = s
	}
	b.recv(t, lateA[1], "a3")
	b.recv(t, lateA[0], "a1")
	a.recv(t, lateB, "b1")
	for i := range 10 {
		b.recv(t, a.send(t, fmt.Sprint(i)), fmt.Sprint(i))
		a.recv(t, b.send(t, fmt.Sprint(i)), fmt.Sprint(i))
	}
	// Clone is independent.
	c := a.s.Clone()
	before := marshal(t, c)
	a.recv(t, b.send(t, "z"), "z")
	if !bytes.Equal(marshal(t, c), before) {
		t.Fatal("Clone shares state")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	a, b := newPair(t, "unmarshal", DefaultLimits())
	a.send(t, "m0") // lost: Bob stores its key
	b.recv(t, a.send(t, "m1"), "m1")
	valid := marshal(t, b.s)
	for i := range len(valid) {
		if _, err := Unmarshal(valid[:i], DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := map[string][]byte{
		"trailing":      append(bytes.Clone(valid), 0),
		"magic":         mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":       mut(func(b []byte) []byte { b[3] = 2; return b }),
		"unknown flag":  mut(func(b []byte) []byte { b[4] |= 0x80; return b }),
		"no NHKs":       mut(func(b []byte) []byte { b[4] &^= flagNHKs; return b }),
		"no CKr":        mut(func(b []byte) []byte { b[4] &^= flagCKr; return b }),
		"chain count":   mut(func(b []byte) []byte { b[stateFixedLen-1] = 9; return b }),
		"key count":     mut(func(b []byte) []byte { b[stateFixedLen+keyLen+3] = 7; return b }),
		"zero keys":     mut(func(b []byte) []byte { b[stateFixedLen+keyLen+3] = 0; return b }),
		"seq too large": mut(func(b []byte) []byte { b[stateFixedLen+skChainHead+4+keyLen] = 1; return b }),
	}
	for name, enc := range cases {
		if _, err := Unmarshal(enc, DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	small := DefaultLimits()
	small.MaxSkippedChains = 1
	if _, err := Unmarshal(valid, small); err != nil {
		t.Fatalf("within limits: %v", err)
	}
	// Bob has two stored keys; under a limit of one the newer one stays.
	var big []byte
	{
		a, b := newPair(t, "unmarshal2", DefaultLimits())
		a.send(t, "lost")
		a.send(t, "lost")
		b.recv(t, a.send(t, "m"), "m")
		big = marshal(t, b.s)
	}
	small = DefaultLimits()
	small.MaxSkippedKeys = 1
	st, err := Unmarshal(big, small)
	if err != nil {
		t.Fatalf("a state saved under larger limits: %v", err)
	}
	if st.Skipped() != 1 {
		t.Fatalf("%d skipped keys kept, want 1 (the limit)", st.Skipped())
	}
}

func TestOtherSession(t *testing.T) {
	a1, _ := newPair(t, "session1", DefaultLimits())
	a2, b2 := newPair(t, "session2", DefaultLimits())
	b2.recv(t, a2.send(t, "mine"), "mine")
	b2.recvErr(t, a1.send(t, "not yours"), ErrHeader)
	a2.recv(t, b2.send(t, "reply"), "reply")
	a2.recvErr(t, a1.send(t, "not yours"), ErrHeader)
}

func TestInitErrors(t *testing.T) {
	r := seeded("init")
	sk := make([]byte, 32)
	pub := make([]byte, 32)
	pub[0] = 9
	if _, err := InitAlice(r, sk[:31], pub, DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Errorf("short SK: %v", err)
	}
	if _, err := InitAlice(r, sk, pub[:31], DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Errorf("short key: %v", err)
	}
	if _, err := InitAlice(r, sk, make([]byte, 32), DefaultLimits()); !errors.Is(err, ErrBadKey) {
		t.Errorf("zero key: %v", err)
	}
	if _, err := InitAlice(iotest.ErrReader(errors.New("no entropy")), sk, pub, DefaultLimits()); err == nil {
		t.Error("failing rand accepted")
	}
	if _, err := InitBob(sk[:1], make([]byte, 32), DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Errorf("Bob short SK: %v", err)
	}
	if _, err := InitBob(sk, make([]byte, 33), DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Errorf("Bob long key: %v", err)
	}
	priv, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if _, err := InitAlice(r, sk, priv.PublicKey().Bytes(), Limits{}); err != nil {
		t.Errorf("zero Limits: %v", err)
	}
}

func TestRandFailure(t *testing.T) {
	a, b := newPair(t, "randfail", DefaultLimits())
	bad := iotest.ErrReader(errors.New("no entropy"))
	before := marshal(t, a.s)
	if _, err := a.s.Encrypt(bad, []byte("x"), testAD); err == nil {
		t.Fatal("Encrypt with failing rand succeeded")
	}
	if !bytes.Equal(before, marshal(t, a.s)) {
		t.Fatal("failed Encrypt changed state")
	}
	m := a.send(t, "x")
	before = marshal(t, b.s)
	if _, err := b.s.Decrypt(bad, t0, m, testAD); err == nil {
		t.Fatal("DH ratchet with failing rand succeeded")
	}
	if !bytes.Equal(before, marshal(t, b.s)) {
		t.Fatal("failed Decrypt changed state")
	}
	if _, err := b.s.Decrypt(nil, t0, m, testAD); err == nil {
		t.Fatal("DH ratchet with nil rand succeeded")
	}
	if _, err := a.s.Encrypt(nil, nil, nil); err == nil {
		t.Fatal("Encrypt with nil rand succeeded")
	}
	if _, err := InitAlice(nil, make([]byte, 32), a.s.c.dhr[:], DefaultLimits()); err == nil {
		t.Fatal("InitAlice with nil rand succeeded")
	}
	if !bytes.Equal(before, marshal(t, b.s)) {
		t.Fatal("failed Decrypt changed state")
	}
	b.recv(t, m, "x")
}

func TestEncryptLimits(t *testing.T) {
	a, _ := newPair(t, "enclimits", DefaultLimits())
	if _, err := a.s.Encrypt(a.rand, nil, make([]byte, maxADLen+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long AD: %v", err)
	}
	if _, err := a.s.Encrypt(a.rand, nil, make([]byte, maxADLen)); err != nil {
		t.Fatalf("max AD: %v", err)
	}
	a.s.c.ns = math.MaxUint32
	if _, err := a.s.Encrypt(a.rand, nil, nil); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("exhausted chain: %v", err)
	}
}

func TestZero(t *testing.T) {
	a, b := newPair(t, "zero", DefaultLimits())
	a.send(t, "lost")
	b.recv(t, a.send(t, "m"), "m")
	m := a.send(t, "after")
	b.s.Zero()
	enc := marshal(t, b.s)
	if !bytes.Equal(enc[4:], make([]byte, len(enc)-4)) {
		t.Fatal("Zero left key material")
	}
	if b.s.CanSend() || b.s.Skipped() != 0 {
		t.Fatal("zeroed state still usable")
	}
	if _, err := b.s.Encrypt(b.rand, nil, nil); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("Encrypt after Zero: %v", err)
	}
	b.recvErr(t, m, ErrHeader)
}
