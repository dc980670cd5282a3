package aez

import (
	"bytes"
	"math/rand"
	"testing"
)

// multiBlockLengths are the message lengths the multi-block code is
// compared at: every length up to 1100 (AEZ-tiny, AEZ-core with no pair,
// and up to four groups of eight pairs with every fragment length), and up
// to 4096 the lengths next to every multiple of 16 plus some at random.
// short keeps the lengths up to 300 and the ones next to multiples of 256
// (group boundaries), for the portable rounds, which are slow.
func multiBlockLengths(rng *rand.Rand, short bool) []int {
	var ns []int
	limit := 1100
	if short {
		limit = 300
	}
	for n := 0; n <= limit; n++ {
		ns = append(ns, n)
	}
	step := 16
	if short {
		step = 256
	}
	for b := (limit/step + 1) * step; b <= 4096; b += step {
		ns = append(ns, b-1, b, b+1)
	}
	if !short {
		for range 100 {
			ns = append(ns, 1101+rng.Intn(4096-1101))
		}
	}
	return ns
}

// encipherSerial is encipher with the serial AEZ-core.
func (s *state) encipherSerial(delta *block, buf []byte, d uint) {
	switch {
	case len(buf) == 0:
	case len(buf) < 32:
		s.tiny(delta, buf, d)
	default:
		s.coreSerial(delta, buf, d)
	}
}

func randomState(rng *rand.Rand) (*state, block) {
	var k [KeySize]byte
	var delta block
	rng.Read(k[:])
	rng.Read(delta[:])
	return newState(&k), delta
}

// TestMultiBlockMatchesSerial compares the grouped AEZ-core (and through
// it encipher) with the serial one in serial_test.go on random keys, Δs
// and messages of many lengths, in both directions, and checks that
// deciphering undoes enciphering.
func TestMultiBlockMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for _, n := range multiBlockLengths(rng, testing.Short() || !fastRounds()) {
		s, delta := randomState(rng)
		msg := make([]byte, n)
		rng.Read(msg)
		for d := uint(0); d <= 1; d++ {
			got := bytes.Clone(msg)
			s.encipher(&delta, got, d)
			want := bytes.Clone(msg)
			s.encipherSerial(&delta, want, d)
			if !bytes.Equal(got, want) {
				t.Fatalf("len %d d=%d: grouped %x, serial %x", n, d, got, want)
			}
			s.encipher(&delta, got, 1-d)
			if !bytes.Equal(got, msg) {
				t.Fatalf("len %d d=%d: the inverse direction does not restore the input", n, d)
			}
		}
	}
}

// TestMultiBlockHashPRF compares AEZ-hash and AEZ-prf, which go eight
// blocks at a time, with their serial forms.
func TestMultiBlockHashPRF(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for n := 0; n <= 300; n++ {
		s, delta := randomState(rng)
		nonce := make([]byte, n)
		rng.Read(nonce)
		ad := make([][]byte, rng.Intn(4))
		for i := range ad {
			ad[i] = make([]byte, rng.Intn(300))
			rng.Read(ad[i])
		}
		tau := rng.Uint64()
		if got, want := s.hash(tau, nonce, ad), s.hashSerial(tau, nonce, ad); got != want {
			t.Fatalf("hash, nonce of %d bytes: grouped %x, serial %x", n, got, want)
		}
		got, want := make([]byte, n), make([]byte, n)
		s.prf(&delta, got)
		s.prfSerial(&delta, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("prf of %d bytes: grouped %x, serial %x", n, got, want)
		}
	}
}

// TestEncRounds8 checks the eight-block rounds against the one-block ones
// on the blocks in use.
func TestEncRounds8(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for trial := 0; trial < 200; trial++ {
		var x [8]block
		n := 1 + trial%8
		keys := make([]block, rng.Intn(12))
		for p := range x {
			rng.Read(x[p][:])
		}
		for k := range keys {
			rng.Read(keys[k][:])
		}
		want := x
		for p := range want[:n] {
			encRoundsGeneric(&want[p], keys)
		}
		encRounds8(&x, n, keys)
		for p := range n {
			if x[p] != want[p] {
				t.Fatalf("trial %d (%d rounds, %d blocks): block %d = %x, want %x", trial, len(keys), n, p, x[p], want[p])
			}
		}
	}
}
