//go:build amd64 && !purego

package aez

import (
	"math/rand"
	"testing"
)

// TestAESNIMatchesGeneric checks the AESENC path against the portable
// rounds, and runs every vector file through the portable rounds as well.
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
}
