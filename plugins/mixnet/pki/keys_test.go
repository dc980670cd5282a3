package pki_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

func hexKey(t *testing.T, lo []byte) []byte {
	t.Helper()
	k := make([]byte, 32)
	copy(k, lo)
	return k
}

func TestCheckSphinxKey(t *testing.T) {
	p := bytes.Repeat([]byte{0xff}, 32)
	p[0], p[31] = 0xed, 0x7f
	pPlus1 := bytes.Clone(p)
	pPlus1[0] = 0xee
	pMinus1 := bytes.Clone(p)
	pMinus1[0] = 0xec
	order8a := []byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	order8b := []byte{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57}
	highBit := func(k []byte) []byte { k = bytes.Clone(k); k[31] |= 0x80; return k }
	good := make([]byte, 32)
	if _, err := rand.Read(good); err != nil {
		t.Fatal(err)
	}
	goodPub, err := curve25519.X25519(good, curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		key      []byte
		lowOrder bool // X25519 with it gives the all-zero secret
		ok       bool
	}{
		{"zero", hexKey(t, nil), true, false},
		{"one", hexKey(t, []byte{1}), true, false},
		{"order 8 a", order8a, true, false},
		{"order 8 b", order8b, true, false},
		{"p-1", pMinus1, true, false},
		{"p (= 0)", p, true, false},
		{"p+1 (= 1)", pPlus1, true, false},
		{"zero with top bit", highBit(hexKey(t, nil)), true, false},
		{"order 8 a with top bit", highBit(order8a), true, false},
		{"good key with top bit", highBit(goodPub), false, false},
		{"short", goodPub[:31], false, false},
		{"long", append(bytes.Clone(goodPub), 0), false, false},
		{"good", goodPub, false, true},
		{"basepoint", curve25519.Basepoint, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.CheckSphinxKey(tt.key)
			if tt.ok != (err == nil) {
				t.Fatalf("CheckSphinxKey = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, pki.ErrBadSphinxKey) {
				t.Fatalf("error %v is not ErrBadSphinxKey", err)
			}
			if len(tt.key) == 32 {
				// Cross-check the blocklist against x/crypto, which
				// refuses an all-zero shared secret.
				_, xerr := curve25519.X25519(good, tt.key)
				if (xerr != nil) != tt.lowOrder {
					t.Fatalf("X25519 error %v, want low order %v", xerr, tt.lowOrder)
				}
			}
		})
	}
}

func TestKeyChain(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	a, err := pki.NewKeyChain(secret, 100)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pki.NewKeyChain(secret, 100)
	seen := map[[32]byte]bool{}
	for e := uint64(100); e < 105; e++ {
		ka, err := a.Key(e)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := b.Key(e)
		if ka != kb {
			t.Fatalf("epoch %d: two chains from one secret disagree", e)
		}
		pub, err := curve25519.X25519(ka.Private[:], curve25519.Basepoint)
		if err != nil || !bytes.Equal(pub, ka.Public[:]) || ka.Epoch != e {
			t.Fatalf("epoch %d: public key does not match private (%v)", e, err)
		}
		if seen[ka.Public] {
			t.Fatalf("epoch %d: key repeats", e)
		}
		seen[ka.Public] = true
	}
	k102, _ := a.Key(102)
	if err := a.Advance(102); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Key(102); err != nil || got != k102 {
		t.Fatalf("after Advance(102), Key(102) changed or failed: %v", err)
	}
	if _, err := a.Key(101); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("Key(101) after Advance(102): %v, want ErrConfig (erased)", err)
	}
	if err := a.Advance(101); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("Advance backwards: %v, want ErrConfig", err)
	}
	if _, err := a.Key(102 + pki.MaxKeyChainAhead + 1); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("Key too far ahead: %v, want ErrConfig", err)
	}
	state, _ := a.MarshalBinary()
	var c pki.KeyChain
	if err := c.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Key(104); got != mustKey(t, b, 104) || c.Epoch() != 102 {
		t.Fatalf("restored chain derives other keys (epoch %d)", c.Epoch())
	}
	for _, bad := range [][]byte{state[:40], append(bytes.Clone(state), 0), append([]byte{9}, state[1:]...)} {
		if err := c.UnmarshalBinary(bad); err == nil {
			t.Fatalf("UnmarshalBinary(%x) accepted", bad)
		}
	}
	if _, err := pki.NewKeyChain(secret[:31], 0); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("31-byte secret: %v, want ErrConfig", err)
	}
	other, _ := pki.NewKeyChain(bytes.Repeat([]byte{8}, 32), 100)
	if mustKey(t, other, 100) == mustKey(t, b, 100) {
		t.Fatal("different secrets give the same key")
	}
}

func mustKey(t *testing.T, c *pki.KeyChain, e uint64) pki.SphinxKeyPair {
	t.Helper()
	k, err := c.Key(e)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRandomSphinxKey(t *testing.T) {
	k, err := pki.RandomSphinxKey(rand.Reader, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.CheckSphinxKey(k.Public[:]); err != nil || k.Epoch != 5 {
		t.Fatalf("random key unusable: %v", err)
	}
	// A source of zeros: whatever comes out must be usable.
	z, err := pki.RandomSphinxKey(bytes.NewReader(make([]byte, 1024)), 5)
	if err == nil && pki.CheckSphinxKey(z.Public[:]) != nil {
		t.Fatal("an unusable key was returned")
	}
	if _, err := pki.RandomSphinxKey(bytes.NewReader(nil), 5); err == nil {
		t.Fatal("an empty source gave a key")
	}
}
