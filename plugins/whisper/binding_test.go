package whisper

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

func TestAddressBinding(t *testing.T) {
	victim, _ := crypto.GenerateKey()
	squatter, _ := crypto.GenerateKey()
	victimAddr := encodeContact(&victim.PublicKey)
	squatterAddr := encodeContact(&squatter.PublicKey)
	alice := bytes.Repeat([]byte{0xa1}, 32)
	mallory := bytes.Repeat([]byte{0x66}, 32)

	good, err := bindAddress(victim, alice, victimAddr)
	if err != nil {
		t.Fatal(err)
	}
	// What a squatter can make: its own key's signature over the victim's
	// address, or the victim's binding replayed for its own identity.
	forged, _ := bindAddress(squatter, mallory, victimAddr)
	flipped := bytes.Clone(good)
	flipped[10] ^= 1
	highS := bytes.Clone(good)
	// (r, n−s, v^1) recovers the same key but is the malleable twin.
	s := new(big.Int).SetBytes(highS[32:64])
	s.Sub(crypto.S256().Params().N, s)
	s.FillBytes(highS[32:64])
	highS[64] ^= 1

	for _, tc := range []struct {
		name              string
		identity, addr, b []byte
		ok                bool
	}{
		{"own binding", alice, victimAddr, good, true},
		{"replayed for another identity", mallory, victimAddr, good, false},
		{"signed by another key", mallory, victimAddr, forged, false},
		{"bound to another address", alice, squatterAddr, good, false},
		{"altered", alice, victimAddr, flipped, false},
		{"malleable twin", alice, victimAddr, highS, false},
		{"empty", alice, victimAddr, nil, false},
		{"shared address", alice, encodeShared(NameTopic("x"), bytes.Repeat([]byte{1}, 32)), good, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBinding(tc.identity, tc.addr, tc.b)
			if (err == nil) != tc.ok {
				t.Fatalf("checkBinding: %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, errUnbound) && !errors.Is(err, ErrBadAddress) {
				t.Fatalf("error %v is neither errUnbound nor ErrBadAddress", err)
			}
		})
	}
}

// FuzzCheckBinding: any identity, address and binding bytes give an error
// or a yes, never a panic.
func FuzzCheckBinding(f *testing.F) {
	k, _ := crypto.GenerateKey()
	addr := encodeContact(&k.PublicKey)
	b, _ := bindAddress(k, []byte("id"), addr)
	f.Add([]byte("id"), addr, b)
	f.Add([]byte{}, []byte{1, 1}, []byte{0})
	f.Fuzz(func(t *testing.T, id, addr, b []byte) {
		_ = checkBinding(id, addr, b)
	})
}
