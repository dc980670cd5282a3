//go:build amd64 && !purego

package aez

import (
	"bytes"
	"math/rand"
	"testing"
)

// fastRounds reports whether the AES rounds run as AESENC.
func fastRounds() bool { return useAESNI }

// TestAESNIMatchesGeneric checks the AESENC path against the portable
// rounds, and runs every vector file and the multi-block comparisons
// through the portable rounds as well.
func TestAESNIMatchesGeneric(t *testing.T) {
	if !useAESNI {
		t.Log("CPU has no AES-NI: only the portable rounds run here")
	}
	rng := rand.New(rand.NewSource(5))
	for trial := 0; trial < 500; trial++ {
		var x block
		keys := make([]block, 1+rng.Intn(10))
		rng.Read(x[:])
		for n := range keys {
			rng.Read(keys[n][:])
		}
		want := x
		encRoundsGeneric(&want, keys)
		got := x
		encRounds(&got, keys)
		if got != want {
			t.Fatalf("trial %d: encRounds = %x, generic = %x", trial, got, want)
		}
	}

	saved := useAESNI
	useAESNI = false
	defer func() { useAESNI = saved }()
	t.Run("portable", TestVectors)
	t.Run("portable-multiblock", TestMultiBlockMatchesSerial)
	t.Run("portable-hash-prf", TestMultiBlockHashPRF)
	t.Run("portable-rounds8", TestEncRounds8)
}

// TestCorePassAsm checks the assembly passes against the portable ones for
// groups of one to eight pairs with arbitrary (not AEZ-shaped) inputs, and
// that they touch nothing outside the group.
func TestCorePassAsm(t *testing.T) {
	if !useAESNI {
		t.Skip("CPU has no AES-NI")
	}
	rng := rand.New(rand.NewSource(9))
	rnd := func(b []byte) { rng.Read(b) }
	for trial := 0; trial < 400; trial++ {
		n := 1 + trial%8
		var lo1, lo2 [8]block
		var ik block
		var keys [4]block
		for p := range lo1 {
			rnd(lo1[p][:])
			rnd(lo2[p][:])
		}
		rnd(ik[:])
		for k := range keys {
			rnd(keys[k][:])
		}
		// The group sits between two guard blocks of 32 bytes.
		buf := make([]byte, 32*n+64)
		rnd(buf)
		var acc block
		rnd(acc[:])

		gotBuf, gotAcc := bytes.Clone(buf), acc
		wantBuf, wantAcc := bytes.Clone(buf), acc
		corePass1(gotBuf[32:32+32*n], &lo1, &ik, &keys, &gotAcc)
		corePass1Generic(wantBuf[32:32+32*n], &lo1, &ik, &keys, &wantAcc)
		if !bytes.Equal(gotBuf, wantBuf) || gotAcc != wantAcc {
			t.Fatalf("pass 1, %d pairs: assembly %x %x, portable %x %x", n, gotBuf, gotAcc, wantBuf, wantAcc)
		}
		corePass2(gotBuf[32:32+32*n], &lo1, &lo2, &ik, &keys, &gotAcc)
		corePass2Generic(wantBuf[32:32+32*n], &lo1, &lo2, &ik, &keys, &wantAcc)
		if !bytes.Equal(gotBuf, wantBuf) || gotAcc != wantAcc {
			t.Fatalf("pass 2, %d pairs: assembly %x %x, portable %x %x", n, gotBuf, gotAcc, wantBuf, wantAcc)
		}
	}
}
