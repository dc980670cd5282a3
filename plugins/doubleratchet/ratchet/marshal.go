package ratchet

import (
	"crypto/ecdh"
	"encoding/binary"
	"fmt"
	"math"
)

// State encoding, version 1 (all integers big-endian):
//
//	"SDR" 0x01                      magic and version
//	flags          1 byte           bit 0 DHr, 1 CKs, 2 CKr, 3 HKs, 4 HKr, 5 NHKs, 6 NHKr set
//	DHs private, DHr, RK, CKs, CKr, HKs, HKr, NHKs, NHKr   9 × 32 bytes (zero when unset)
//	Ns, Nr, PN     3 × uint32
//	received       uint64           messages decrypted in the session
//	chains         uint32           skipped-key chains, oldest first
//	per chain:     HK (32) ‖ count uint32 ‖ count × (N uint32 ‖ MK (32) ‖ seq uint64 ‖ stored uint64)
//
// seq is the session's received count when the key was stored, stored the
// Unix seconds (two's complement). The DHs public key is derived from the
// private key.
const (
	stateMagic    = "SDR"
	stateVersion  = 1
	stateFixedLen = 4 + 1 + 9*keyLen + 3*4 + 8 + 4
	skChainHead   = keyLen + 4
	skKeyLen      = 4 + keyLen + 8 + 8
)

const (
	flagDHr = 1 << iota
	flagCKs
	flagCKr
	flagHKs
	flagHKr
	flagNHKs
	flagNHKr
	flagsKnown = 1<<iota - 1
)

// MarshalBinary returns the versioned encoding of the complete state,
// including the stored skipped keys with their sequence numbers and
// timestamps. The output contains every secret key of the session: encrypt
// it at rest. It never fails; the error is for encoding.BinaryMarshaler.
func (s *State) MarshalBinary() ([]byte, error) {
	c := &s.c
	n := stateFixedLen
	for _, ch := range s.sk.chains {
		n += skChainHead + len(ch.keys)*skKeyLen
	}
	b := make([]byte, 0, n)
	b = append(b, stateMagic...)
	b = append(b, stateVersion)
	var flags byte
	for i, set := range []bool{c.hasDHr, c.hasCKs, c.hasCKr, c.hasHKs, c.hasHKr, c.hasNHKs, c.hasNHKr} {
		if set {
			flags |= 1 << i
		}
	}
	b = append(b, flags)
	for _, k := range []*[keyLen]byte{&c.dhsPriv, &c.dhr, &c.rk, &c.cks, &c.ckr, &c.hks, &c.hkr, &c.nhks, &c.nhkr} {
		b = append(b, k[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, c.ns)
	b = binary.BigEndian.AppendUint32(b, c.nr)
	b = binary.BigEndian.AppendUint32(b, c.pn)
	b = binary.BigEndian.AppendUint64(b, c.recv)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.sk.chains)))
	for _, ch := range s.sk.chains {
		b = append(b, ch.hk[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(ch.keys)))
		for i := range ch.keys {
			k := &ch.keys[i]
			b = binary.BigEndian.AppendUint32(b, k.n)
			b = append(b, k.mk[:]...)
			b = binary.BigEndian.AppendUint64(b, k.recv)
			b = binary.BigEndian.AppendUint64(b, uint64(k.t))
		}
	}
	return b, nil
}

// Unmarshal decodes a state written by MarshalBinary, for use with limits
// lim. It validates every length, count and invariant and returns
// ErrMalformed for anything else. A state saved under larger limits than
// lim keeps the newest skipped keys that fit (so lowering max_skipped_keys
// never strands a session). It never panics.
func Unmarshal(b []byte, lim Limits) (*State, error) {
	lim = lim.normalized()
	bad := func(what string) (*State, error) {
		return nil, fmt.Errorf("%w: state: %s", ErrMalformed, what)
	}
	if len(b) < stateFixedLen {
		return bad("too short")
	}
	if string(b[:3]) != stateMagic || b[3] != stateVersion {
		return bad("unknown magic or version")
	}
	flags := b[4]
	if flags&^flagsKnown != 0 {
		return bad("unknown flags")
	}
	s := &State{lim: lim}
	c := &s.c
	c.hasDHr = flags&flagDHr != 0
	c.hasCKs = flags&flagCKs != 0
	c.hasCKr = flags&flagCKr != 0
	c.hasHKs = flags&flagHKs != 0
	c.hasHKr = flags&flagHKr != 0
	c.hasNHKs = flags&flagNHKs != 0
	c.hasNHKr = flags&flagNHKr != 0
	p := b[5:]
	keys := []struct {
		k   *[keyLen]byte
		set bool
	}{
		{&c.dhsPriv, true}, {&c.dhr, c.hasDHr}, {&c.rk, true}, {&c.cks, c.hasCKs}, {&c.ckr, c.hasCKr},
		{&c.hks, c.hasHKs}, {&c.hkr, c.hasHKr}, {&c.nhks, c.hasNHKs}, {&c.nhkr, c.hasNHKr},
	}
	for _, k := range keys {
		copy(k.k[:], p[:keyLen])
		p = p[keyLen:]
		if !k.set && *k.k != ([keyLen]byte{}) {
			s.Zero()
			return bad("unset key is not zero")
		}
	}
	c.ns = binary.BigEndian.Uint32(p)
	c.nr = binary.BigEndian.Uint32(p[4:])
	c.pn = binary.BigEndian.Uint32(p[8:])
	c.recv = binary.BigEndian.Uint64(p[12:])
	nChains64 := uint64(binary.BigEndian.Uint32(p[20:]))
	p = p[24:]
	fail := func(what string) (*State, error) {
		s.Zero()
		return bad(what)
	}
	switch {
	case !c.hasNHKs || !c.hasNHKr:
		return fail("next header keys missing")
	case c.hasCKs != c.hasHKs:
		return fail("sending chain and header key disagree")
	case c.hasCKr != c.hasHKr:
		return fail("receiving chain and header key disagree")
	case c.hasCKr != (c.recv > 0):
		return fail("receiving chain and received count disagree")
	case c.hasCKr && !c.hasDHr:
		return fail("receiving chain without ratchet key")
	case nChains64*skChainHead > uint64(len(p)):
		return fail("truncated chains")
	}
	nChains := int(nChains64)
	key, err := ecdh.X25519().NewPrivateKey(c.dhsPriv[:])
	if err != nil {
		return fail("bad ratchet private key")
	}
	c.dhsKey = key
	copy(c.dhsPub[:], key.PublicKey().Bytes())

	var lastRecv uint64
	s.sk.minTime = math.MaxInt64
	for i := range nChains {
		if len(p) < skChainHead {
			return fail("truncated chain")
		}
		ch := &skChain{}
		copy(ch.hk[:], p[:keyLen])
		count := binary.BigEndian.Uint32(p[keyLen:])
		p = p[skChainHead:]
		switch {
		case count == 0:
			return fail("empty chain")
		case uint64(len(p)) < uint64(count)*skKeyLen:
			return fail("truncated chain")
		case s.sk.find(&ch.hk) != nil:
			return fail("duplicate chain header key")
		case ch.hk == c.nhkr:
			return fail("chain under the next header key")
		case c.hasHKr && ch.hk == c.hkr && i != nChains-1:
			return fail("current chain is not the newest")
		}
		ch.keys = make([]skKey, count)
		for j := range ch.keys {
			k := &ch.keys[j]
			k.n = binary.BigEndian.Uint32(p)
			copy(k.mk[:], p[4:4+keyLen])
			k.recv = binary.BigEndian.Uint64(p[4+keyLen:])
			k.t = int64(binary.BigEndian.Uint64(p[4+keyLen+8:]))
			p = p[skKeyLen:]
			switch {
			case j > 0 && k.n <= ch.keys[j-1].n:
				s.sk.chains = append(s.sk.chains, ch)
				return fail("chain keys out of order")
			case k.recv < lastRecv || k.recv > c.recv:
				s.sk.chains = append(s.sk.chains, ch)
				return fail("key sequence out of order")
			case c.hasHKr && ch.hk == c.hkr && k.n >= c.nr:
				s.sk.chains = append(s.sk.chains, ch)
				return fail("skipped key not behind the chain")
			}
			lastRecv = k.recv
		}
		s.sk.chains = append(s.sk.chains, ch)
		s.sk.count += int(count)
		for j := range ch.keys {
			s.sk.minTime = min(s.sk.minTime, ch.keys[j].t)
		}
	}
	if s.sk.count == 0 {
		s.sk.minTime = 0
	}
	if len(p) != 0 {
		return fail("trailing bytes")
	}
	// A state saved under larger limits keeps its newest skipped keys.
	s.sk.enforce(&lim)
	return s, nil
}
