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

// encRounds applies len(keys) full AES rounds to x, one per round key.
func encRounds(x *block, keys []block) {
	if useAESNI {
		aesencAsm(x, &keys[0], len(keys))
		return
	}
	encRoundsGeneric(x, keys)
}
