// Package aez implements AEZ v5 (Hoang, Krovetz and Rogaway, "AEZ v5:
// Authenticated Encryption by Enciphering", 2017) as Katzenpost uses it:
// Extract (BLAKE2b-384 key derivation), the AES4/AES10 tweakable blockcipher
// E, AEZ-hash, AEZ-prf, AEZ-core (inputs of 32 bytes or more), AEZ-tiny
// (shorter inputs), and the Encrypt/Decrypt authenticated encryption with an
// arbitrary tag length tau in bytes. With tau = 0 and no associated data it
// is the length-preserving wide-block cipher Katzenpost's Sphinx applies to
// the packet payload.
//
// Katzenpost's payload SPRP is Encrypt(key48, iv16, nil, 0, payload) and
// Decrypt with the same arguments. Keys, nonces and associated-data strings
// may have any length; tau is any non-negative byte count.
//
// It does not implement: the earlier AEZ versions (v1-v4), which differ;
// an incremental or streaming interface (whole messages only); a
// crypto/cipher.AEAD wrapper; the Sphinx packet format itself; or key
// reuse across calls (each call re-derives the key schedule, which costs a
// BLAKE2b only for keys that are not 48 bytes). Buffers holding key
// material are not wiped.
//
// AEZ needs single AES rounds with its own round keys, which crypto/aes
// does not expose (it offers only whole AES with the standard key schedule).
// On amd64 with AES-NI the rounds therefore run as AESENC instructions from
// assembly (round_amd64.s); elsewhere, or with the purego build tag, a
// table-free constant-time Go round is used (round.go), which is far
// slower. AEZ-core's two passes go through the pairs of blocks eight pairs
// per assembly call, the eight pairs' AESENCs interleaved (their blocks
// are independent of each other), and AEZ-hash and AEZ-prf encipher eight
// blocks per call the same way; the assembly's loads and stores depend
// only on the message length. Everything else has no branch or memory
// index that depends on secret data; Decrypt checks the expanded zero tag
// in constant time.
package aez

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/blake2b"
)

// KeySize is the size of an extracted AEZ key (I ‖ J ‖ L). Keys of this
// length are used as they are; keys of any other length go through Extract.
const KeySize = 48

const blockSize = 16

// ErrOpen is returned by Decrypt when the ciphertext does not authenticate.
var ErrOpen = errors.New("aez: message authentication failed")

type block = [blockSize]byte

// Extract returns the 48-byte AEZ key for a user key of any length: the key
// itself when it is already 48 bytes, otherwise BLAKE2b with a 48-byte
// digest of the key, as AEZ v5 specifies.
func Extract(key []byte) [KeySize]byte {
	var out [KeySize]byte
	if len(key) == KeySize {
		copy(out[:], key)
		return out
	}
	h, err := blake2b.New(KeySize, nil)
	if err != nil {
		panic("aez: blake2b: " + err.Error()) // unreachable: size and key are fixed and valid
	}
	h.Write(key)
	copy(out[:], h.Sum(nil))
	return out
}

// state is an extracted key with the values E derives from it.
type state struct {
	i, j, l block
	lmul    [8]block // 0·L .. 7·L

	aes4Keys  [4]block  // J, I, L, 0
	aes10Keys [10]block // I, J, L, I, J, L, I, J, L, I
}

func newState(extracted *[KeySize]byte) *state {
	s := new(state)
	s.init(extracted)
	return s
}

// init sets s up for an extracted key. Encrypt and Decrypt keep the state
// on the stack this way.
func (s *state) init(extracted *[KeySize]byte) {
	copy(s.i[:], extracted[0:16])
	copy(s.j[:], extracted[16:32])
	copy(s.l[:], extracted[32:48])
	s.lmul[0] = block{}
	s.lmul[1] = s.l
	for n := 2; n < 8; n += 2 { // 2n·L = 2·(n·L), (2n+1)·L = 2n·L ⊕ L
		s.lmul[n] = s.lmul[n/2]
		double(&s.lmul[n])
		s.lmul[n+1] = xorBlocks(&s.lmul[n], &s.l)
	}
	s.aes4Keys = [4]block{s.j, s.i, s.l, {}}
	for r := range s.aes10Keys {
		s.aes10Keys[r] = [3]block{s.i, s.j, s.l}[r%3]
	}
}

// double multiplies b by x in GF(2^128) (AEZ's "2·b"), in constant time.
func double(b *block) {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	carry := hi >> 63
	binary.BigEndian.PutUint64(b[:8], hi<<1|lo>>63)
	binary.BigEndian.PutUint64(b[8:], lo<<1^carry*0x87)
}

// mulBlock returns n·b in GF(2^128). n is public (a tweak index).
func mulBlock(n uint, b *block) block {
	var r block
	t := *b
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			xorInto(r[:], t[:])
		}
		double(&t)
	}
	return r
}

// aes4 is AES4 with round keys (0, J, I, L, 0): four full rounds.
func (s *state) aes4(x *block) {
	encRounds(x, s.aes4Keys[:])
}

// aes10 is AES10 with round keys (0, I, J, L, I, J, L, I, J, L, I): ten full
// rounds, each including MixColumns.
func (s *state) aes10(x *block) {
	encRounds(x, s.aes10Keys[:])
}

// e is E^{j,i}(x) for a single block: for j >= 0
// AES4(x ⊕ j·J ⊕ 2^ceil(i/8)·I ⊕ (i mod 8)·L), for j = -1 AES10(x ⊕ i·L).
// j and i are public.
func (s *state) e(j int, i uint, x *block) block {
	y := *x
	if j < 0 {
		d := mulBlock(i, &s.l)
		xorInto(y[:], d[:])
		s.aes10(&y)
		return y
	}
	jj := mulBlock(uint(j), &s.j)
	ipow := s.i
	for n := (i + 7) / 8; n > 0; n-- {
		double(&ipow)
	}
	xorInto(y[:], jj[:])
	xorInto(y[:], ipow[:])
	xorInto(y[:], s.lmul[i%8][:])
	s.aes4(&y)
	return y
}

// hashString folds one string into sum with tweak j: full blocks under
// E^{j,1}, E^{j,2}, ... (eight at a time, through encRounds8); a final
// partial (or the only, empty) block padded with 10* under E^{j,0}.
func (s *state) hashString(sum *block, j int, x []byte) {
	full := len(x) / blockSize
	jj := mulBlock(uint(j), &s.j)
	ik := s.i
	for k := 0; k < full; k += 8 {
		// Blocks i = k+1 .. k+8: offset j·J ⊕ 2^(k/8+1)·I ⊕ (i mod 8)·L.
		double(&ik)
		r := min(8, full-k)
		var in [8]block
		for p := 0; p < r; p++ {
			in[p] = load(x[blockSize*(k+p) : blockSize*(k+p+1)])
			xorInto(in[p][:], jj[:])
			xorInto(in[p][:], ik[:])
			xorInto(in[p][:], s.lmul[(p+1)%8][:])
		}
		encRounds8(&in, r, s.aes4Keys[:])
		for p := 0; p < r; p++ {
			xorInto(sum[:], in[p][:])
		}
	}
	if rest := x[blockSize*full:]; len(rest) > 0 || full == 0 {
		b := pad10(rest)
		y := s.e(j, 0, &b)
		xorInto(sum[:], y[:])
	}
}

// hash is AEZ-hash over the tweak (tauBits, nonce, ad...): tauBits as a
// 128-bit big-endian block under E^{3,1}, the nonce with j = 4 and the i-th
// AD string with j = 5+i.
func (s *state) hash(tauBits uint64, nonce []byte, ad [][]byte) block {
	var tb block
	binary.BigEndian.PutUint64(tb[8:], tauBits)
	sum := s.e(3, 1, &tb)
	s.hashString(&sum, 4, nonce)
	for k, a := range ad {
		s.hashString(&sum, 5+k, a)
	}
	return sum
}

// prf is AEZ-prf: the first len(out) bytes of
// E^{-1,3}(Δ ⊕ [0]) ‖ E^{-1,3}(Δ ⊕ [1]) ‖ ..., counters as 128-bit
// big-endian (whose upper 64 bits stay zero for any slice length), eight
// blocks at a time through encRounds8. E^{-1,3}(x) = AES10(x ⊕ 3·L).
func (s *state) prf(delta *block, out []byte) {
	base := xorBlocks(delta, &s.lmul[3])
	var ctr uint64
	for off := 0; off < len(out); off += 8 * blockSize {
		r := min(8, (len(out)-off+blockSize-1)/blockSize)
		var in [8]block
		for p := 0; p < r; p++ {
			in[p] = base
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], ctr)
			xorInto(in[p][8:], c[:])
			ctr++
		}
		encRounds8(&in, r, s.aes10Keys[:])
		for p := 0; p < r; p++ {
			copy(out[off+blockSize*p:], in[p][:])
		}
	}
}

// encipher applies AEZ's enciphering (d = 0) or deciphering (d = 1) to buf in
// place: AEZ-tiny below 32 bytes, AEZ-core from 32 bytes on.
func (s *state) encipher(delta *block, buf []byte, d uint) {
	switch {
	case len(buf) == 0:
	case len(buf) < 32:
		s.tiny(delta, buf, d)
	default:
		s.core(delta, buf, d)
	}
}

// Encrypt returns the AEZ v5 encryption of plaintext under key (any length;
// see Extract), nonce and the associated-data strings ad, with tau bytes of
// ciphertext expansion. The result is len(plaintext)+tau bytes. With tau = 0
// it is a length-preserving tweakable wide-block cipher. Encrypt panics if
// tau is negative.
func Encrypt(key, nonce []byte, ad [][]byte, tau int, plaintext []byte) []byte {
	if tau < 0 {
		panic("aez: negative tau")
	}
	k := Extract(key)
	var s state
	s.init(&k)
	delta := s.hash(uint64(tau)*8, nonce, ad)
	out := make([]byte, len(plaintext)+tau)
	if len(plaintext) == 0 {
		s.prf(&delta, out)
		return out
	}
	copy(out, plaintext)
	s.encipher(&delta, out, 0)
	return out
}

// Decrypt reverses Encrypt. It returns ErrOpen if the ciphertext is shorter
// than tau, tau is negative, or the tau bytes of expansion do not come out as
// the value Encrypt put there (checked in constant time). With tau = 0 every
// ciphertext decrypts.
func Decrypt(key, nonce []byte, ad [][]byte, tau int, ciphertext []byte) ([]byte, error) {
	if tau < 0 || len(ciphertext) < tau {
		return nil, ErrOpen
	}
	k := Extract(key)
	var s state
	s.init(&k)
	delta := s.hash(uint64(tau)*8, nonce, ad)
	if len(ciphertext) == tau {
		want := make([]byte, tau)
		s.prf(&delta, want)
		if subtle.ConstantTimeCompare(want, ciphertext) != 1 {
			return nil, ErrOpen
		}
		return []byte{}, nil
	}
	out := make([]byte, len(ciphertext))
	copy(out, ciphertext)
	s.encipher(&delta, out, 1)
	var acc byte
	for _, b := range out[len(out)-tau:] {
		acc |= b
	}
	if subtle.ConstantTimeByteEq(acc, 0) != 1 {
		return nil, ErrOpen
	}
	return out[:len(out)-tau], nil
}
