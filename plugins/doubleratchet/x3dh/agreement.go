package x3dh

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"

	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// HKDF info strings of the two protocols (X3DH §2.1, PQXDH §2.2).
const (
	infoX3DH  = "Strata_X3DH_X25519_SHA-256"
	infoPQXDH = "Strata_PQXDH_X25519_SHA-256_ML-KEM-1024"
)

// zeroSalt is the HKDF salt: hash-length zero bytes.
var zeroSalt [sha256.Size]byte

// ikmMax is the largest key-derivation input: F || DH1..DH4 || SS.
const ikmMax = 6 * ssSize

// Offsets of the parts of the key-derivation input.
const (
	offDH1 = ssSize * (iota + 1)
	offDH2
	offDH3
	offRest // DH4 if an OPK is used, then SS if PQXDH
)

// newIKM returns an IKM buffer whose first 32 bytes are F = 0xFF×32.
func newIKM() *[ikmMax]byte {
	var ikm [ikmMax]byte
	for i := range ssSize {
		ikm[i] = 0xff
	}
	return &ikm
}

// slot returns ikm[off:off+32] as an array pointer.
func slot(ikm *[ikmMax]byte, off int) *[ssSize]byte {
	return (*[ssSize]byte)(ikm[off : off+ssSize])
}

// kdf is X3DH §2.2 KDF with this profile: 32 bytes of HKDF-SHA256 with a
// zero salt over ikm = F || KM.
func kdf(ikm []byte, pq bool) ([]byte, error) {
	info := infoX3DH
	if pq {
		info = infoPQXDH
	}
	sk, err := hkdf.Key(sha256.New, ikm, zeroSalt[:], info, ssSize)
	if err != nil {
		return nil, fmt.Errorf("x3dh: hkdf: %w", err)
	}
	return sk, nil
}

// associatedData returns EncodeEC(IK_A) || EncodeEC(IK_B) [|| EncodeKEM(PQPK_B)].
func associatedData(ikA, ikB, kemB []byte) []byte {
	ad := make([]byte, 0, len(ikA)+len(ikB)+len(kemB))
	ad = append(ad, ikA...)
	ad = append(ad, ikB...)
	return append(ad, kemB...)
}

// Initiation is the initiator's result of Initiate.
type Initiation struct {
	// SharedSecret is SK, 32 bytes; the caller zeroes it after use.
	SharedSecret []byte
	// AssociatedData is AD: EncodeEC(IK_A) || EncodeEC(IK_B), followed for
	// PQXDH by EncodeKEM(PQPK_B).
	AssociatedData []byte
	// RatchetKey is the raw 32-byte SPK_B public key: the responder's
	// initial ratchet key for the Double Ratchet's RatchetInitAlice.
	RatchetKey []byte
	// Header has identity_key, base_key, the prekey ids and kem_ciphertext
	// set; its message field is left nil for the caller.
	Header *wirepb.PreKeyMessage
	// PostQuantum is true for PQXDH, false for X3DH.
	PostQuantum bool
}

// Initiate runs the initiator's side of X3DH, or of PQXDH when peer offers
// an ML-KEM prekey (its first one-time KEM prekey, else its last-resort
// one). It uses peer's first one-time X25519 prekey if there is one.
//
// It first verifies peer (every signature; it aborts on any failure), so a
// bundle need not be verified again by the caller. Checking that peer is the
// contact's pinned identity (SameIdentity) is the caller's job. It draws from
// rand (nil: crypto/rand.Reader) the 32-byte ephemeral private key EK_A and
// then, for PQXDH, the 32-byte ML-KEM encapsulation randomness.
func Initiate(rand io.Reader, self *Identity, peer *Bundle) (*Initiation, error) {
	return initiate(rand, self, peer, true)
}

// InitiateClassic is Initiate for an initiator that does not use PQXDH: it
// verifies peer completely, ML-KEM prekeys included, and then runs X3DH,
// ignoring them. (Removing them from the bundle instead would break its
// bundle signature.)
func InitiateClassic(rand io.Reader, self *Identity, peer *Bundle) (*Initiation, error) {
	return initiate(rand, self, peer, false)
}

func initiate(rand io.Reader, self *Identity, peer *Bundle, pq bool) (*Initiation, error) {
	if err := self.check(); err != nil {
		return nil, err
	}
	if err := peer.Verify(); err != nil {
		return nil, fmt.Errorf("x3dh: peer bundle: %w", err)
	}
	// Verify has checked every encoding, so these cannot fail.
	ikB, err := decodeEC(peer.IdentityKey, "identity key")
	if err != nil {
		return nil, err
	}
	spkB, err := decodeEC(peer.SignedPreKey.Public, "signed prekey")
	if err != nil {
		return nil, err
	}
	var opk *PublicPreKey
	if len(peer.OneTimePreKeys) > 0 {
		opk = &peer.OneTimePreKeys[0]
	}
	kem := peer.KEMPreKey
	if len(peer.OneTimeKEMPreKeys) > 0 {
		kem = &peer.OneTimeKEMPreKeys[0]
	}
	if !pq {
		kem = nil
	}

	var ek, encSeed [32]byte
	ikm := newIKM()
	defer func() {
		clear(ek[:])
		clear(encSeed[:])
		clear(ikm[:])
	}()

	if err := readRand(rand, ek[:]); err != nil {
		return nil, err
	}
	ekPub := publicKey(&ek)
	hdr := &wirepb.PreKeyMessage{
		IdentityKey:    encodeEC(&self.dhPub),
		BaseKey:        encodeEC(&ekPub),
		SignedPrekeyId: peer.SignedPreKey.ID,
	}

	if err := dh(slot(ikm, offDH1), &self.dh, &spkB); err != nil {
		return nil, fmt.Errorf("DH1 (IK_A, SPK_B): %w", err)
	}
	if err := dh(slot(ikm, offDH2), &ek, &ikB); err != nil {
		return nil, fmt.Errorf("DH2 (EK_A, IK_B): %w", err)
	}
	if err := dh(slot(ikm, offDH3), &ek, &spkB); err != nil {
		return nil, fmt.Errorf("DH3 (EK_A, SPK_B): %w", err)
	}
	n := offRest
	if opk != nil {
		opkB, err := decodeEC(opk.Public, "one-time prekey")
		if err != nil {
			return nil, err
		}
		if err := dh(slot(ikm, n), &ek, &opkB); err != nil {
			return nil, fmt.Errorf("DH4 (EK_A, OPK_B): %w", err)
		}
		hdr.OneTimePrekeyId = opk.ID
		n += ssSize
	}
	var kemB []byte
	if kem != nil {
		var pk mlkem1024.PublicKey
		if err := pk.Unpack(kem.Public[1:]); err != nil {
			return nil, fmt.Errorf("%w: KEM prekey %d: %v", ErrBadKey, kem.ID, err)
		}
		if err := readRand(rand, encSeed[:]); err != nil {
			return nil, err
		}
		hdr.KemPrekeyId = kem.ID
		hdr.KemCiphertext = make([]byte, kemCTSize)
		pk.EncapsulateTo(hdr.KemCiphertext, slot(ikm, n)[:], encSeed[:])
		n += ssSize
		kemB = kem.Public
	}

	sk, err := kdf(ikm[:n], kem != nil)
	if err != nil {
		return nil, err
	}
	return &Initiation{
		SharedSecret:   sk,
		AssociatedData: associatedData(hdr.IdentityKey, peer.IdentityKey, kemB),
		RatchetKey:     bytes.Clone(spkB[:]),
		Header:         hdr,
		PostQuantum:    kem != nil,
	}, nil
}

// ResponderKeys are the responder's private prekeys that a PreKeyMessage
// names, looked up by the caller by the header's ids.
type ResponderKeys struct {
	// SignedPreKey is the signed prekey named by signed_prekey_id; required.
	SignedPreKey *PreKeyPair
	// OneTimePreKey is the one-time prekey named by one_time_prekey_id; nil
	// when the header names none.
	OneTimePreKey *PreKeyPair
	// KEMPreKey is the ML-KEM prekey (last-resort or one-time) named by
	// kem_prekey_id; nil for X3DH.
	KEMPreKey *KEMPreKeyPair
}

func checkECPair(p *PreKeyPair, what string) error {
	if len(p.Private) != ecKeySize {
		return fmt.Errorf("%w: %s private key is %d bytes, want %d", ErrMalformed, what, len(p.Private), ecKeySize)
	}
	return nil
}

// Respond runs the responder's side of X3DH or PQXDH for a PreKeyMessage
// header and returns SK and AD, equal to the initiator's. self is the
// responder's identity, keys the prekeys the header's ids name, and
// initiatorIdentityKey the contact's pinned EncodeEC(IK_A).
//
// It checks, in order: that the header's keys are well-formed EncodeEC
// (ErrMalformed, or ErrBadKey if non-canonical); that identity_key equals
// initiatorIdentityKey in constant time (ErrIdentityMismatch); that the
// header's ids match keys, with a one-time prekey given exactly when
// one_time_prekey_id is nonzero and a KEM prekey exactly when kem_prekey_id
// is nonzero (ErrMalformed); that kem_ciphertext is 1568 bytes for PQXDH and
// empty for X3DH (ErrMalformed); and that no DH output is all zero
// (ErrBadKey). A tampered ML-KEM ciphertext is not detected here: ML-KEM's
// implicit rejection yields a different SK, and the first message fails to
// decrypt. Respond does not decode anything beyond hdr's own fields, and it
// does not zero or delete the prekeys: that is the caller's, after the first
// message decrypts.
func Respond(self *Identity, keys ResponderKeys, initiatorIdentityKey []byte, hdr *wirepb.PreKeyMessage) (sk, ad []byte, err error) {
	if err := self.check(); err != nil {
		return nil, nil, err
	}
	if hdr == nil {
		return nil, nil, fmt.Errorf("%w: nil prekey message", ErrMalformed)
	}
	ikA, err := decodeEC(hdr.GetIdentityKey(), "initiator identity key")
	if err != nil {
		return nil, nil, err
	}
	ekA, err := decodeEC(hdr.GetBaseKey(), "base key")
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(hdr.GetIdentityKey(), initiatorIdentityKey) != 1 {
		return nil, nil, fmt.Errorf("%w: prekey message identity is not the pinned one", ErrIdentityMismatch)
	}

	spk := keys.SignedPreKey
	if spk == nil {
		return nil, nil, fmt.Errorf("%w: no signed prekey given", ErrMalformed)
	}
	if err := checkECPair(spk, "signed prekey"); err != nil {
		return nil, nil, err
	}
	if id := hdr.GetSignedPrekeyId(); id != spk.ID {
		return nil, nil, fmt.Errorf("%w: header names signed prekey %d, given %d", ErrMalformed, id, spk.ID)
	}
	opk := keys.OneTimePreKey
	switch id := hdr.GetOneTimePrekeyId(); {
	case id == 0 && opk != nil:
		return nil, nil, fmt.Errorf("%w: one-time prekey %d given, header names none", ErrMalformed, opk.ID)
	case id != 0 && opk == nil:
		return nil, nil, fmt.Errorf("%w: header names one-time prekey %d, none given", ErrMalformed, id)
	case opk != nil && id != opk.ID:
		return nil, nil, fmt.Errorf("%w: header names one-time prekey %d, given %d", ErrMalformed, id, opk.ID)
	}
	if opk != nil {
		if err := checkECPair(opk, "one-time prekey"); err != nil {
			return nil, nil, err
		}
	}
	kem := keys.KEMPreKey
	ct := hdr.GetKemCiphertext()
	switch id := hdr.GetKemPrekeyId(); {
	case id == 0 && kem != nil:
		return nil, nil, fmt.Errorf("%w: KEM prekey %d given, header is X3DH", ErrMalformed, kem.ID)
	case id != 0 && kem == nil:
		return nil, nil, fmt.Errorf("%w: PQXDH header names KEM prekey %d, none given", ErrMalformed, id)
	case kem != nil && id != kem.ID:
		return nil, nil, fmt.Errorf("%w: header names KEM prekey %d, given %d", ErrMalformed, id, kem.ID)
	}
	if kem != nil {
		if len(ct) != kemCTSize {
			return nil, nil, fmt.Errorf("%w: KEM ciphertext is %d bytes, want %d", ErrMalformed, len(ct), kemCTSize)
		}
		if len(kem.Seed) != kemSeedSize {
			return nil, nil, fmt.Errorf("%w: KEM prekey seed is %d bytes, want %d", ErrMalformed, len(kem.Seed), kemSeedSize)
		}
		if len(kem.Public) != kemEncodedSize || kem.Public[0] != TagMLKEM1024 {
			return nil, nil, fmt.Errorf("%w: KEM prekey public key is not EncodeKEM", ErrMalformed)
		}
	} else if len(ct) != 0 {
		return nil, nil, fmt.Errorf("%w: X3DH header carries a KEM ciphertext", ErrMalformed)
	}

	ikm := newIKM()
	defer clear(ikm[:])
	if err := dh(slot(ikm, offDH1), (*[ecKeySize]byte)(spk.Private), &ikA); err != nil {
		return nil, nil, fmt.Errorf("DH1 (SPK_B, IK_A): %w", err)
	}
	if err := dh(slot(ikm, offDH2), &self.dh, &ekA); err != nil {
		return nil, nil, fmt.Errorf("DH2 (IK_B, EK_A): %w", err)
	}
	if err := dh(slot(ikm, offDH3), (*[ecKeySize]byte)(spk.Private), &ekA); err != nil {
		return nil, nil, fmt.Errorf("DH3 (SPK_B, EK_A): %w", err)
	}
	n := offRest
	if opk != nil {
		if err := dh(slot(ikm, n), (*[ecKeySize]byte)(opk.Private), &ekA); err != nil {
			return nil, nil, fmt.Errorf("DH4 (OPK_B, EK_A): %w", err)
		}
		n += ssSize
	}
	var kemB []byte
	if kem != nil {
		_, dk := mlkem1024.NewKeyFromSeed(kem.Seed)
		dk.DecapsulateTo(slot(ikm, n)[:], ct)
		n += ssSize
		kemB = kem.Public
	}
	sk, err = kdf(ikm[:n], kem != nil)
	if err != nil {
		return nil, nil, err
	}
	return sk, associatedData(hdr.GetIdentityKey(), encodeEC(&self.dhPub), kemB), nil
}
