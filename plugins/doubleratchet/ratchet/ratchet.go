package ratchet

import (
	"crypto/ecdh"
	"fmt"
	"io"
	"math"
	"time"
)

// Message is one Double Ratchet message with an encrypted header.
type Message struct {
	// Header is HENCRYPT(HKs, HEADER(DHs, PN, Ns)): 24-byte nonce ‖ sealed
	// 41-byte header (81 bytes).
	Header []byte
	// Ciphertext is ENCRYPT(mk, plaintext, CONCAT(AD, Header)); 16 bytes
	// longer than the plaintext.
	Ciphertext []byte
}

// core is the fixed-size part of the state. It is a value type: Decrypt
// works on a copy and assigns it back on success.
type core struct {
	dhsPriv [keyLen]byte     // DHs private key
	dhsPub  [keyLen]byte     // DHs public key
	dhsKey  *ecdh.PrivateKey // DHs as a crypto/ecdh key (never mutated; shared by copies)
	dhr     [keyLen]byte     // DHr
	rk      [keyLen]byte     // RK
	cks     [keyLen]byte     // CKs
	ckr     [keyLen]byte     // CKr
	hks     [keyLen]byte     // HKs
	hkr     [keyLen]byte     // HKr
	nhks    [keyLen]byte     // NHKs
	nhkr    [keyLen]byte     // NHKr
	ns      uint32           // Ns
	nr      uint32           // Nr
	pn      uint32           // PN
	recv    uint64           // messages decrypted in this session

	hasDHr, hasCKs, hasCKr, hasHKs, hasHKr, hasNHKs, hasNHKr bool
}

// wipe overwrites every key in c.
func (c *core) wipe() {
	*c = core{}
}

// State is one Double Ratchet session (header-encryption variant). Create
// it with InitAlice or InitBob, or restore it with Unmarshal. A State is
// not safe for concurrent use.
type State struct {
	lim Limits
	c   core
	sk  skipped
}

// InitAlice is RatchetInitAliceHE for the initiator. sk is the 32-byte
// shared secret of the key agreement and bobRatchetPublic Bob's 32-byte
// X25519 signed prekey, his initial ratchet public key. rand supplies the
// 32 bytes of Alice's first ratchet private key. Alice can send at once.
func InitAlice(rand io.Reader, sk, bobRatchetPublic []byte, lim Limits) (*State, error) {
	if len(sk) != keyLen {
		return nil, fmt.Errorf("%w: shared secret is %d bytes, want %d", ErrMalformed, len(sk), keyLen)
	}
	if len(bobRatchetPublic) != keyLen {
		return nil, fmt.Errorf("%w: ratchet public key is %d bytes, want %d", ErrMalformed, len(bobRatchetPublic), keyLen)
	}
	hka, nhkb, err := headerKeys(sk)
	if err != nil {
		return nil, err
	}
	s := &State{lim: lim.normalized()}
	c := &s.c
	key, err := generateDH(rand)
	if err != nil {
		return nil, err
	}
	c.setDHs(key)
	copy(c.dhr[:], bobRatchetPublic)
	c.hasDHr = true
	out, err := dh(c.dhsKey, &c.dhr)
	if err != nil {
		c.wipe()
		return nil, fmt.Errorf("ratchet: InitAlice: %w", err)
	}
	c.rk, c.cks, c.nhks, err = kdfRKHE(sk, out)
	wipe(out)
	if err != nil {
		c.wipe()
		return nil, err
	}
	c.hasCKs, c.hasNHKs = true, true
	c.hks, c.hasHKs = hka, true
	c.nhkr, c.hasNHKr = nhkb, true
	return s, nil
}

// InitBob is RatchetInitBobHE for the responder. sk is the 32-byte shared
// secret; bobRatchetPrivate is the 32-byte X25519 private key of Bob's
// signed prekey (its public key is derived). Bob cannot send until he has
// decrypted a message from Alice.
func InitBob(sk, bobRatchetPrivate []byte, lim Limits) (*State, error) {
	if len(sk) != keyLen {
		return nil, fmt.Errorf("%w: shared secret is %d bytes, want %d", ErrMalformed, len(sk), keyLen)
	}
	if len(bobRatchetPrivate) != keyLen {
		return nil, fmt.Errorf("%w: ratchet private key is %d bytes, want %d", ErrMalformed, len(bobRatchetPrivate), keyLen)
	}
	hka, nhkb, err := headerKeys(sk)
	if err != nil {
		return nil, err
	}
	key, err := ecdh.X25519().NewPrivateKey(bobRatchetPrivate)
	if err != nil {
		return nil, fmt.Errorf("%w: ratchet private key: %v", ErrBadKey, err)
	}
	s := &State{lim: lim.normalized()}
	c := &s.c
	c.setDHs(key)
	copy(c.rk[:], sk)
	c.nhks, c.hasNHKs = nhkb, true
	c.nhkr, c.hasNHKr = hka, true
	return s, nil
}

// setDHs makes key the sending ratchet key pair.
func (c *core) setDHs(key *ecdh.PrivateKey) {
	priv := key.Bytes()
	copy(c.dhsPriv[:], priv)
	wipe(priv)
	copy(c.dhsPub[:], key.PublicKey().Bytes())
	c.dhsKey = key
}

// CanSend reports whether the state has a sending chain (Bob: only after
// he has decrypted a message).
func (s *State) CanSend() bool { return s.c.hasCKs && s.c.hasHKs }

// Received reports whether at least one message from the peer has been
// decrypted.
func (s *State) Received() bool { return s.c.recv > 0 }

// Skipped returns the number of stored skipped message keys.
func (s *State) Skipped() int { return s.sk.count }

// Clone returns an independent deep copy of s.
func (s *State) Clone() *State {
	return &State{lim: s.lim, c: s.c, sk: s.sk.clone()}
}

// Zero overwrites every key held by s and leaves it unusable: it cannot
// send and opens no header. (Go cannot guarantee that copies made by the
// runtime or inside crypto/ecdh are wiped.)
func (s *State) Zero() {
	s.c.wipe()
	s.sk.wipe()
}

// Expire deletes the stored skipped keys that are older than
// SkippedKeyTTL at now, or that were stored MaxKeepMessages or more
// decrypted messages ago. Decrypt does the same after every success.
func (s *State) Expire(now time.Time) {
	s.sk.expire(now.Unix(), s.c.recv, &s.lim)
}

// Encrypt is RatchetEncryptHE: it seals plaintext with the next message key
// of the sending chain, under associated data ad (the agreement's AD, at
// most 65535 bytes), and encrypts the header under HKs with a random nonce
// read from rand. On error the state is unchanged.
func (s *State) Encrypt(rand io.Reader, plaintext, ad []byte) (Message, error) {
	c := &s.c
	if !c.hasCKs || !c.hasHKs {
		return Message{}, ErrNoSendingChain
	}
	if rand == nil {
		return Message{}, errNilRand
	}
	if c.ns == math.MaxUint32 {
		return Message{}, fmt.Errorf("%w: sending chain exhausted", ErrNoSendingChain)
	}
	if len(ad) > maxADLen {
		return Message{}, fmt.Errorf("%w: AD is %d bytes, at most %d", ErrMalformed, len(ad), maxADLen)
	}
	if len(plaintext) > maxPlaintext {
		return Message{}, fmt.Errorf("%w: plaintext too long", ErrMalformed)
	}
	buf := make([]byte, encHeaderLen, encHeaderLen+len(plaintext)+tagLen)
	if _, err := io.ReadFull(rand, buf[:headerNonceLen]); err != nil {
		return Message{}, fmt.Errorf("ratchet: header nonce: %w", err)
	}
	hdr := encodeHeader(&c.dhsPub, c.pn, c.ns)
	if err := hencrypt(buf, &c.hks, &hdr, ad); err != nil {
		return Message{}, err
	}
	encHdr := buf[:encHeaderLen:encHeaderLen]
	mk, next := kdfCK(&c.cks)
	defer wipe(mk[:])
	ct, err := encryptMessage(buf[encHeaderLen:], &mk, plaintext, concatAD(ad, encHdr))
	if err != nil {
		wipe(next[:])
		return Message{}, err
	}
	c.cks = next
	c.ns++
	return Message{Header: encHdr, Ciphertext: ct}, nil
}

// stage is a run of skipped keys computed during a Decrypt, stored only if
// the message opens.
type stage struct {
	hk   [keyLen]byte
	keys []skKey
}

// Decrypt is RatchetDecryptHE: it opens m under associated data ad. now
// stamps any skipped keys it stores and drives expiry; rand supplies the
// new ratchet private key when the message starts a new receiving chain.
// On error the state is unchanged (see the package errors).
func (s *State) Decrypt(rand io.Reader, now time.Time, m Message, ad []byte) ([]byte, error) {
	if len(m.Header) != encHeaderLen {
		return nil, fmt.Errorf("%w: header is %d bytes, want %d", ErrMalformed, len(m.Header), encHeaderLen)
	}
	if len(m.Ciphertext) < tagLen {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, at least %d", ErrMalformed, len(m.Ciphertext), tagLen)
	}
	if len(ad) > maxADLen {
		return nil, fmt.Errorf("%w: AD is %d bytes, at most %d", ErrMalformed, len(ad), maxADLen)
	}
	nowSec := now.Unix()
	c := &s.c
	// Current receiving chain: a message of it, or a skipped one of it.
	if c.hasHKr {
		if h, ok := hdecrypt(&c.hkr, m.Header, ad); ok {
			if pt, done, err := s.trySkipped(&c.hkr, h.n, nowSec, m, ad); done {
				return pt, err
			}
			if h.n < c.nr {
				return nil, fmt.Errorf("%w: message %d of the current chain", ErrDuplicate, h.n)
			}
			return s.decryptChain(rand, nowSec, h, false, m, ad)
		}
	}
	// Next header key: the peer has ratcheted.
	if c.hasNHKr {
		if h, ok := hdecrypt(&c.nhkr, m.Header, ad); ok {
			return s.decryptChain(rand, nowSec, h, true, m, ad)
		}
	}
	// Older chains with stored skipped keys: one trial per header key.
	for _, ch := range s.sk.chains {
		if c.hasHKr && ch.hk == c.hkr {
			continue // tried above
		}
		if h, ok := hdecrypt(&ch.hk, m.Header, ad); ok {
			hk := ch.hk
			if pt, done, err := s.trySkipped(&hk, h.n, nowSec, m, ad); done {
				return pt, err
			}
			return nil, fmt.Errorf("%w: message %d of an old chain", ErrDuplicate, h.n)
		}
	}
	return nil, ErrHeader
}

// trySkipped decrypts m with the stored skipped key (hk, n) if there is
// one; done is false if there is none. On success it deletes the key.
func (s *State) trySkipped(hk *[keyLen]byte, n uint32, nowSec int64, m Message, ad []byte) (pt []byte, done bool, err error) {
	ci := -1
	for i, ch := range s.sk.chains {
		if ch.hk == *hk {
			ci = i
			break
		}
	}
	if ci < 0 {
		return nil, false, nil
	}
	ch := s.sk.chains[ci]
	ki, ok := ch.index(n)
	if !ok {
		return nil, false, nil
	}
	k := &ch.keys[ki]
	if expired(k, ttlCutoff(nowSec, &s.lim), s.c.recv, &s.lim) {
		return nil, true, fmt.Errorf("%w: skipped key of message %d has expired", ErrDuplicate, n)
	}
	pt, err = decryptMessage(&k.mk, m.Ciphertext, concatAD(ad, m.Header))
	if err != nil {
		return nil, true, err
	}
	// Commit: nothing can fail from here on.
	s.sk.remove(ci, ki)
	s.c.recv++
	s.sk.expire(nowSec, s.c.recv, &s.lim)
	return pt, true, nil
}

// decryptChain handles a message of the current receiving chain, or (if
// ratchet) the first message seen of the peer's next chain: it skips and
// stages keys up to PN (old chain) and N, performs the DH ratchet, derives
// the message key and opens m, all on a copy of the fixed state. Only when
// m opens are the copy and the staged keys committed.
func (s *State) decryptChain(rand io.Reader, nowSec int64, h header, ratchet bool, m Message, ad []byte) (pt []byte, err error) {
	nc := s.c
	nc.recv++
	var stages [2]stage
	defer func() {
		if err != nil {
			nc.wipe()
			wipeKeys(stages[0].keys)
			wipeKeys(stages[1].keys)
		}
	}()
	if ratchet {
		stages[0].hk = nc.hkr
		if stages[0].keys, err = s.skip(&nc, h.pn, nowSec); err != nil {
			return nil, err
		}
		if err = dhRatchet(rand, &nc, &h); err != nil {
			return nil, err
		}
	}
	stages[1].hk = nc.hkr
	if stages[1].keys, err = s.skip(&nc, h.n, nowSec); err != nil {
		return nil, err
	}
	if nc.nr == math.MaxUint32 {
		return nil, fmt.Errorf("%w: message number out of range", ErrMalformed)
	}
	mk, next := kdfCK(&nc.ckr)
	defer wipe(mk[:])
	nc.ckr = next
	wipe(next[:])
	nc.nr++
	pt, err = decryptMessage(&mk, m.Ciphertext, concatAD(ad, m.Header))
	if err != nil {
		return nil, err
	}
	// Commit: nothing can fail from here on.
	s.c = nc
	s.sk.add(&stages[0].hk, stages[0].keys)
	s.sk.add(&stages[1].hk, stages[1].keys)
	wipeKeys(stages[0].keys)
	wipeKeys(stages[1].keys)
	s.sk.enforce(&s.lim)
	s.sk.expire(nowSec, s.c.recv, &s.lim)
	return pt, nil
}

// skip is SkipMessageKeysHE(until) on nc: it advances the receiving chain
// to until and returns the skipped keys (stamped with nc.recv and nowSec)
// instead of storing them.
func (s *State) skip(nc *core, until uint32, nowSec int64) ([]skKey, error) {
	if uint64(nc.nr)+uint64(s.lim.MaxSkip) < uint64(until) {
		return nil, fmt.Errorf("%w: %d keys to skip, at most %d", ErrTooFarAhead, uint64(until)-uint64(nc.nr), s.lim.MaxSkip)
	}
	if !nc.hasCKr || nc.nr >= until {
		return nil, nil
	}
	// Only the newest MaxSkippedKeys can survive eviction at commit: the
	// older ones only advance the chain.
	store := min(uint64(until-nc.nr), uint64(s.lim.MaxSkippedKeys))
	storeFrom := until - uint32(store)
	keys := make([]skKey, 0, store)
	for nc.nr < until {
		mk, next := kdfCK(&nc.ckr)
		nc.ckr = next
		if nc.nr >= storeFrom {
			keys = append(keys, skKey{n: nc.nr, mk: mk, recv: nc.recv, t: nowSec})
		}
		wipe(mk[:])
		wipe(next[:])
		nc.nr++
	}
	return keys, nil
}

// dhRatchet is DHRatchetHE on nc.
func dhRatchet(rand io.Reader, nc *core, h *header) error {
	nc.pn = nc.ns
	nc.ns = 0
	nc.nr = 0
	nc.hks, nc.hasHKs = nc.nhks, nc.hasNHKs
	nc.hkr, nc.hasHKr = nc.nhkr, nc.hasNHKr
	nc.dhr, nc.hasDHr = h.dh, true
	out, err := dh(nc.dhsKey, &nc.dhr)
	if err != nil {
		return fmt.Errorf("ratchet: DH ratchet: %w", err)
	}
	nc.rk, nc.ckr, nc.nhkr, err = kdfRKHE(nc.rk[:], out)
	wipe(out)
	if err != nil {
		return err
	}
	nc.hasCKr = true
	key, err := generateDH(rand)
	if err != nil {
		return err
	}
	nc.setDHs(key)
	out, err = dh(nc.dhsKey, &nc.dhr)
	if err != nil {
		return fmt.Errorf("ratchet: DH ratchet: %w", err)
	}
	nc.rk, nc.cks, nc.nhks, err = kdfRKHE(nc.rk[:], out)
	wipe(out)
	if err != nil {
		return err
	}
	nc.hasCKs = true
	return nil
}
