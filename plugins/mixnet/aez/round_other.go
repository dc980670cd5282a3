//go:build !amd64 || purego

package aez

// No assembly round exists for this build, so the portable rounds are used
// throughout.

// encRounds applies len(keys) full AES rounds to x, one per round key.
func encRounds(x *block, keys []block) {
	encRoundsGeneric(x, keys)
}

// encRounds8 applies len(keys) full AES rounds to the first n (<= 8)
// blocks of x; the others are scratch.
func encRounds8(x *[8]block, n int, keys []block) {
	encRounds8Generic(x, n, keys)
}

// corePass1 is AEZ-core's first pass over one group of up to eight pairs.
func corePass1(pairs []byte, lo *[8]block, ik *block, keys *[4]block, x *block) {
	corePass1Generic(pairs, lo, ik, keys, x)
}

// corePass2 is AEZ-core's second pass over one group of up to eight pairs.
func corePass2(pairs []byte, lo1, lo2 *[8]block, ik *block, keys *[4]block, y *block) {
	corePass2Generic(pairs, lo1, lo2, ik, keys, y)
}
