package boxlayer

import (
	"bytes"
	"errors"
	"testing"
)

// testKeys returns two private keys, their public keys and two identities.
func testKeys(t testing.TB) (privA, pubA, privB, pubB, idA, idB []byte) {
	t.Helper()
	privA, privB = bytes.Repeat([]byte{1}, keySize), bytes.Repeat([]byte{2}, keySize)
	var err error
	if pubA, err = publicKey(privA); err != nil {
		t.Fatal(err)
	}
	if pubB, err = publicKey(privB); err != nil {
		t.Fatal(err)
	}
	return privA, pubA, privB, pubB, bytes.Repeat([]byte{0xa}, identitySize), bytes.Repeat([]byte{0xb}, identitySize)
}

func TestDeriveKeyAgrees(t *testing.T) {
	privA, pubA, privB, pubB, idA, idB := testKeys(t)
	kA, err := deriveKey(privA, pubB, idA, idB)
	if err != nil {
		t.Fatal(err)
	}
	kB, err := deriveKey(privB, pubA, idB, idA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kA, kB) || len(kA) != keySize {
		t.Fatalf("the two sides derived different keys: %x and %x", kA, kB)
	}
	other, err := deriveKey(privA, pubB, idA, bytes.Repeat([]byte{0xc}, identitySize))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(kA, other) {
		t.Fatal("the key does not depend on the identities")
	}
}

func TestDeriveKeyRefusesLowOrderPoint(t *testing.T) {
	privA, _, _, _, idA, idB := testKeys(t)
	if _, err := deriveKey(privA, make([]byte, keySize), idA, idB); err == nil {
		t.Fatal("the all-zero public key was accepted")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, keySize)
	var nonce [nonceSize]byte
	nonce[3] = 9
	ad := associatedData([]byte("sender"), []byte("recipient"), []byte("conv"))
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("message "), 1000)} {
		wire, err := seal(key, nonce, pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) != Overhead+len(pt) || wire[0] != wireVersion || !bytes.Equal(wire[1:headerSize], nonce[:]) {
			t.Fatalf("wire form %x does not follow version || nonce || ciphertext", wire[:headerSize])
		}
		gotNonce, got, err := open(key, wire, ad)
		if err != nil {
			t.Fatal(err)
		}
		if gotNonce != nonce || !bytes.Equal(got, pt) {
			t.Fatalf("opened %q with nonce %x, want %q with %x", got, gotNonce, pt, nonce)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	key := bytes.Repeat([]byte{7}, keySize)
	var nonce [nonceSize]byte
	ad := associatedData([]byte("a"), []byte("b"), []byte("conv"))
	wire, err := seal(key, nonce, []byte("a secret message"), ad)
	if err != nil {
		t.Fatal(err)
	}
	flipped := func(i int) []byte {
		c := bytes.Clone(wire)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name string
		key  []byte
		wire []byte
		ad   []byte
		want error
	}{
		{"empty", key, nil, ad, ErrTooShort},
		{"header only", key, wire[:headerSize], ad, ErrTooShort},
		{"one byte short of a tag", key, wire[:Overhead-1], ad, ErrTooShort},
		{"truncated", key, wire[:len(wire)-1], ad, ErrAuth},
		{"version", key, flipped(0), ad, ErrVersion},
		{"nonce", key, flipped(1), ad, ErrAuth},
		{"ciphertext", key, flipped(headerSize), ad, ErrAuth},
		{"tag", key, flipped(len(wire) - 1), ad, ErrAuth},
		{"other key", bytes.Repeat([]byte{8}, keySize), wire, ad, ErrAuth},
		{"reversed direction", key, wire, associatedData([]byte("b"), []byte("a"), []byte("conv")), ErrAuth},
		{"other conversation", key, wire, associatedData([]byte("a"), []byte("b"), []byte("conw")), ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, pt, err := open(tt.key, tt.wire, tt.ad); !errors.Is(err, tt.want) || pt != nil {
				t.Fatalf("open: %q, %v; want %v", pt, err, tt.want)
			}
		})
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	var e envelope
	for i := range e.nonce {
		e.nonce[i] = byte(i)
	}
	e.ciphertext = bytes.Repeat([]byte{0xee}, 40)
	wire := appendEnvelope(nil, e)
	got, err := decodeEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	if got.nonce != e.nonce || !bytes.Equal(got.ciphertext, e.ciphertext) {
		t.Fatalf("decoded %+v, want %+v", got, e)
	}
}

// FuzzDecode checks that the wire decoder never panics, and that whatever
// it accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	key := bytes.Repeat([]byte{7}, keySize)
	wire, err := seal(key, [nonceSize]byte{1}, []byte("seed"), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{nil, {1}, {2}, wire, wire[:Overhead-1], bytes.Repeat([]byte{1}, Overhead)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrTooShort) && !errors.Is(err, ErrVersion) {
				t.Fatalf("decode error %v is neither ErrTooShort nor ErrVersion", err)
			}
			return
		}
		if again := appendEnvelope(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode gave %x, want %x", again, b)
		}
	})
}

// FuzzOpen checks that open never panics and opens nothing but the one
// genuine seed.
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{7}, keySize)
	ad := associatedData([]byte("a"), []byte("b"), []byte("conv"))
	plaintext := []byte("the only message that opens")
	genuine, err := seal(key, [nonceSize]byte{1, 2, 3}, plaintext, ad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:len(genuine)-1])
	f.Add(append(bytes.Clone(genuine), 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, pt, err := open(key, b, ad)
		if err == nil && (!bytes.Equal(b, genuine) || !bytes.Equal(pt, plaintext)) {
			t.Fatalf("%x opened to %q", b, pt)
		}
	})
}
