//go:build amd64 && !purego

package aez

import "golang.org/x/sys/cpu"

// useAESNI selects the AESENC instruction for the AES rounds when the CPU
// has it. Tests switch it off to exercise the portable rounds too.
var useAESNI = cpu.X86.HasAES

// aesencAsm applies n AESENC rounds to x with the n round keys at keys
// (contiguous). It is in round_amd64.s.
//
//go:noescape
func aesencAsm(x *block, keys *block, n int)

// aesenc8Asm applies n AESENC rounds to each of the eight blocks at x, with
// the n round keys at keys, the eight blocks interleaved.
//
//go:noescape
func aesenc8Asm(x *[8]block, keys *block, n int)

// corePass1Asm is corePass1 over the n pairs at pairs (1 <= n <= 8).
//
//go:noescape
func corePass1Asm(pairs *byte, n int, lo *[8]block, ik *block, keys *[4]block, x *block)

// corePass2Asm is corePass2 over the n pairs at pairs (1 <= n <= 8).
//
//go:noescape
func corePass2Asm(pairs *byte, n int, lo1 *[8]block, lo2 *[8]block, ik *block, keys *[4]block, y *block)

// encRounds applies len(keys) full AES rounds to x, one per round key.
func encRounds(x *block, keys []block) {
	if useAESNI {
		aesencAsm(x, &keys[0], len(keys))
		return
	}
	encRoundsGeneric(x, keys)
}

// encRounds8 applies len(keys) full AES rounds to the first n (<= 8)
// blocks of x. The others are scratch: the assembly enciphers all eight
// (it costs about as much as one), the portable rounds leave them alone.
func encRounds8(x *[8]block, n int, keys []block) {
	if useAESNI && len(keys) > 0 {
		aesenc8Asm(x, &keys[0], len(keys))
		return
	}
	encRounds8Generic(x, n, keys)
}

// groupPairs returns the number of pairs in pairs, which must be a whole
// number of them, one to eight: the assembly trusts it.
func groupPairs(pairs []byte) int {
	n := len(pairs) / 32
	if n < 1 || n > 8 || len(pairs) != 32*n {
		panic("aez: internal error: a group of pairs is not 1..8 pairs")
	}
	return n
}

// corePass1 is AEZ-core's first pass over one group of up to eight pairs;
// see corePass1Generic.
func corePass1(pairs []byte, lo *[8]block, ik *block, keys *[4]block, x *block) {
	if useAESNI {
		corePass1Asm(&pairs[0], groupPairs(pairs), lo, ik, keys, x)
		return
	}
	corePass1Generic(pairs, lo, ik, keys, x)
}

// corePass2 is AEZ-core's second pass over one group of up to eight pairs;
// see corePass2Generic.
func corePass2(pairs []byte, lo1, lo2 *[8]block, ik *block, keys *[4]block, y *block) {
	if useAESNI {
		corePass2Asm(&pairs[0], groupPairs(pairs), lo1, lo2, ik, keys, y)
		return
	}
	corePass2Generic(pairs, lo1, lo2, ik, keys, y)
}
