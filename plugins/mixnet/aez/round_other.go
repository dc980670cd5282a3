//go:build !amd64 || purego

package aez

// encRounds applies len(keys) full AES rounds to x, one per round key. No
// assembly round exists for this build, so the portable rounds are used.
func encRounds(x *block, keys []block) {
	encRoundsGeneric(x, keys)
}
