package x3dh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// Limits on a bundle.
const (
	// MaxOneTimePreKeys is the most one-time prekeys of each type (X25519
	// and ML-KEM) a bundle may carry.
	MaxOneTimePreKeys = 16
	// MaxBundleSize bounds an encoded bundle: a bundle at both
	// MaxOneTimePreKeys limits is about 29 KB.
	MaxBundleSize = 32 << 10
)

// PublicPreKey is the public half of a prekey as a bundle carries it.
type PublicPreKey struct {
	// ID is the nonzero prekey id.
	ID uint32
	// Public is EncodeEC or EncodeKEM of the key.
	Public []byte
	// Signature is Ed25519(signing, context || Public), with the
	// signed-prekey or the KEM-prekey context; nil for a one-time X25519
	// prekey, which is signed only by the bundle signature (any value there
	// is ignored).
	Signature []byte
}

// Bundle is a node's public key material (wirepb.Bundle): what an initiator
// needs to start an X3DH or PQXDH session with it. A bundle from elsewhere
// is only trusted after Verify; ParseBundle and BundleFromProto verify it,
// and Initiate verifies it again (once) before use.
//
// Each signature is over a context prefix of its own (encoding.go), and
// BundleSignature covers Issued and every key, so a bundle's parts cannot be
// recombined with an older bundle's.
type Bundle struct {
	// SigningKey is the Ed25519 public key that signs the keys below.
	SigningKey ed25519.PublicKey
	// IdentityKey is EncodeEC(IK), the X25519 identity key.
	IdentityKey []byte
	// IdentitySignature is Ed25519(signing, "strata-dr-identity-v1\x00" ||
	// IdentityKey).
	IdentitySignature []byte
	// SignedPreKey is the current signed X25519 prekey (SPK).
	SignedPreKey PublicPreKey
	// KEMPreKey is the signed last-resort ML-KEM-1024 prekey (PQSPK); nil
	// for an X3DH-only bundle.
	KEMPreKey *PublicPreKey
	// OneTimePreKeys are unsigned one-time X25519 prekeys (OPK), at most
	// MaxOneTimePreKeys.
	OneTimePreKeys []PublicPreKey
	// OneTimeKEMPreKeys are signed one-time ML-KEM-1024 prekeys (PQOPK), at
	// most MaxOneTimePreKeys.
	OneTimeKEMPreKeys []PublicPreKey
	// Issued is when the bundle was made, with one-second precision on the
	// wire; the zero time is sent as 0. BundleSignature signs it.
	Issued time.Time
	// BundleSignature is Ed25519(signing, "strata-dr-bundle-v1\x00" ||
	// transcript): see Transcript. SignBundle sets it.
	BundleSignature []byte
}

func publicOf(p *PreKeyPair, withSig bool) PublicPreKey {
	pp := PublicPreKey{ID: p.ID, Public: bytes.Clone(p.Public)}
	if withSig {
		pp.Signature = bytes.Clone(p.Signature)
	}
	return pp
}

// Bundle assembles the identity's bundle from its prekeys: spk (required),
// the last-resort KEM prekey kem (nil: X3DH only), one-time prekeys opks and
// one-time KEM prekeys pqopks (nil entries are skipped), issued at issued.
// The prekeys carry the signatures they were made with; SignBundle signs the
// rest. It returns nil for a nil or zeroed identity. It does not check
// limits: call Verify before publishing.
func (id *Identity) Bundle(spk *PreKeyPair, kem *KEMPreKeyPair, opks []*PreKeyPair, pqopks []*KEMPreKeyPair, issued time.Time) *Bundle {
	if !id.usable() {
		return nil
	}
	b := &Bundle{Issued: issued}
	if spk != nil {
		b.SignedPreKey = publicOf(spk, true)
	}
	if kem != nil {
		b.KEMPreKey = &PublicPreKey{ID: kem.ID, Public: bytes.Clone(kem.Public), Signature: bytes.Clone(kem.Signature)}
	}
	for _, o := range opks {
		if o != nil {
			b.OneTimePreKeys = append(b.OneTimePreKeys, publicOf(o, false))
		}
	}
	for _, k := range pqopks {
		if k != nil {
			b.OneTimeKEMPreKeys = append(b.OneTimeKEMPreKeys, PublicPreKey{ID: k.ID, Public: bytes.Clone(k.Public), Signature: bytes.Clone(k.Signature)})
		}
	}
	id.SignBundle(b)
	return b
}

// SignBundle makes b the identity's: it sets the signing key, the identity
// key and its signature, and signs the bundle (BundleSignature) over b's
// current issue time and keys. Call it again after changing any of them. It
// does nothing for a nil or zeroed identity.
func (id *Identity) SignBundle(b *Bundle) {
	if !id.usable() || b == nil {
		return
	}
	b.SigningKey = id.SigningKey()
	b.IdentityKey = id.IdentityKey()
	b.IdentitySignature = id.sign(ctxIdentity, b.IdentityKey)
	b.BundleSignature = id.sign(ctxBundle, b.Transcript())
}

// Transcript returns what BundleSignature signs after its context prefix,
// integers big-endian: issued_unix (int64, 0 for the zero time) ||
// IdentityKey || SignedPreKey.ID (uint32) || SignedPreKey.Public || (0x01 ||
// KEMPreKey.ID (uint32) || KEMPreKey.Public, or 0x00 without one) || the
// number of one-time prekeys (uint32) || each one's ID (uint32) || Public ||
// the number of one-time KEM prekeys (uint32) || each one's ID (uint32) ||
// Public. Once Verify's structural checks pass every key has a fixed length,
// so two different bundles never have the same transcript.
func (b *Bundle) Transcript() []byte {
	n := 8 + len(b.IdentityKey) + 4 + len(b.SignedPreKey.Public) + 1 + 4 + 4
	if b.KEMPreKey != nil {
		n += 4 + len(b.KEMPreKey.Public)
	}
	for _, o := range b.OneTimePreKeys {
		n += 4 + len(o.Public)
	}
	for _, k := range b.OneTimeKEMPreKeys {
		n += 4 + len(k.Public)
	}
	t := make([]byte, 0, n)
	t = binary.BigEndian.AppendUint64(t, uint64(issuedUnix(b.Issued)))
	t = append(t, b.IdentityKey...)
	t = binary.BigEndian.AppendUint32(t, b.SignedPreKey.ID)
	t = append(t, b.SignedPreKey.Public...)
	if b.KEMPreKey != nil {
		t = append(t, 1)
		t = binary.BigEndian.AppendUint32(t, b.KEMPreKey.ID)
		t = append(t, b.KEMPreKey.Public...)
	} else {
		t = append(t, 0)
	}
	t = binary.BigEndian.AppendUint32(t, uint32(len(b.OneTimePreKeys)))
	for _, o := range b.OneTimePreKeys {
		t = binary.BigEndian.AppendUint32(t, o.ID)
		t = append(t, o.Public...)
	}
	t = binary.BigEndian.AppendUint32(t, uint32(len(b.OneTimeKEMPreKeys)))
	for _, k := range b.OneTimeKEMPreKeys {
		t = binary.BigEndian.AppendUint32(t, k.ID)
		t = append(t, k.Public...)
	}
	return t
}

// issuedUnix is the wire form of an issue time: Unix seconds, 0 for the
// zero time.
func issuedUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Proto returns the wire form of b (version BundleVersion). The message
// shares its byte slices with b. A nil bundle gives nil.
func (b *Bundle) Proto() *wirepb.Bundle {
	if b == nil {
		return nil
	}
	p := &wirepb.Bundle{
		Version:           BundleVersion,
		SigningKey:        b.SigningKey,
		IdentityKey:       b.IdentityKey,
		IdentitySignature: b.IdentitySignature,
		SignedPrekey: &wirepb.SignedPreKey{
			Id:        b.SignedPreKey.ID,
			PublicKey: b.SignedPreKey.Public,
			Signature: b.SignedPreKey.Signature,
		},
	}
	if b.KEMPreKey != nil {
		p.KemPrekey = &wirepb.SignedPreKey{Id: b.KEMPreKey.ID, PublicKey: b.KEMPreKey.Public, Signature: b.KEMPreKey.Signature}
	}
	if len(b.OneTimePreKeys) > 0 {
		p.OneTimePrekeys = make([]*wirepb.PreKey, len(b.OneTimePreKeys))
		for i, o := range b.OneTimePreKeys {
			p.OneTimePrekeys[i] = &wirepb.PreKey{Id: o.ID, PublicKey: o.Public}
		}
	}
	if len(b.OneTimeKEMPreKeys) > 0 {
		p.OneTimeKemPrekeys = make([]*wirepb.SignedPreKey, len(b.OneTimeKEMPreKeys))
		for i, k := range b.OneTimeKEMPreKeys {
			p.OneTimeKemPrekeys[i] = &wirepb.SignedPreKey{Id: k.ID, PublicKey: k.Public, Signature: k.Signature}
		}
	}
	p.IssuedUnix = issuedUnix(b.Issued)
	p.BundleSignature = b.BundleSignature
	return p
}

// Marshal returns the deterministic protobuf encoding of b.Proto().
func (b *Bundle) Marshal() ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrMalformed)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(b.Proto())
	if err != nil {
		return nil, fmt.Errorf("x3dh: marshal bundle: %w", err)
	}
	return out, nil
}

// ParseBundle decodes a wirepb.Bundle of at most MaxBundleSize bytes and
// verifies it (BundleFromProto). It never panics.
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle is %d bytes, limit %d", ErrMalformed, len(b), MaxBundleSize)
	}
	var p wirepb.Bundle
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	return BundleFromProto(&p)
}

// BundleFromProto converts the wire form (copying every byte slice), checks
// its version (ErrVersion) and Verifies it.
func BundleFromProto(p *wirepb.Bundle) (*Bundle, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrMalformed)
	}
	if v := p.GetVersion(); v != BundleVersion {
		if v == 1 {
			return nil, fmt.Errorf("%w: bundle version 1, want %d (version 1 signs without context prefixes and leaves the issue time unsigned; the contact must upgrade its doubleratchet layer)", ErrVersion, BundleVersion)
		}
		return nil, fmt.Errorf("%w: bundle version %d, want %d", ErrVersion, v, BundleVersion)
	}
	if p.GetSignedPrekey() == nil {
		return nil, fmt.Errorf("%w: bundle has no signed prekey", ErrMalformed)
	}
	if n, m := len(p.GetOneTimePrekeys()), len(p.GetOneTimeKemPrekeys()); n > MaxOneTimePreKeys || m > MaxOneTimePreKeys {
		return nil, fmt.Errorf("%w: bundle has %d one-time and %d one-time KEM prekeys, limit %d each", ErrMalformed, n, m, MaxOneTimePreKeys)
	}
	signed := func(s *wirepb.SignedPreKey) PublicPreKey {
		return PublicPreKey{ID: s.GetId(), Public: bytes.Clone(s.GetPublicKey()), Signature: bytes.Clone(s.GetSignature())}
	}
	b := &Bundle{
		SigningKey:        bytes.Clone(p.GetSigningKey()),
		IdentityKey:       bytes.Clone(p.GetIdentityKey()),
		IdentitySignature: bytes.Clone(p.GetIdentitySignature()),
		SignedPreKey:      signed(p.GetSignedPrekey()),
		BundleSignature:   bytes.Clone(p.GetBundleSignature()),
	}
	if k := p.GetKemPrekey(); k != nil {
		s := signed(k)
		b.KEMPreKey = &s
	}
	for _, o := range p.GetOneTimePrekeys() {
		if o == nil {
			return nil, fmt.Errorf("%w: nil one-time prekey", ErrMalformed)
		}
		b.OneTimePreKeys = append(b.OneTimePreKeys, PublicPreKey{ID: o.GetId(), Public: bytes.Clone(o.GetPublicKey())})
	}
	for _, k := range p.GetOneTimeKemPrekeys() {
		if k == nil {
			return nil, fmt.Errorf("%w: nil one-time KEM prekey", ErrMalformed)
		}
		b.OneTimeKEMPreKeys = append(b.OneTimeKEMPreKeys, signed(k))
	}
	if s := p.GetIssuedUnix(); s != 0 {
		b.Issued = time.Unix(s, 0).UTC()
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	return b, nil
}

// Verify checks a bundle completely: the signing key's length; every key's
// encoding (tag, length, canonical X25519 value, ML-KEM modulus check); the
// limits (at most MaxOneTimePreKeys one-time keys of each type, which with
// the fixed key sizes bounds the bundle's size); nonzero prekey ids, unique
// among the one-time X25519 keys and among all ML-KEM keys (last-resort and
// one-time share the header's kem_prekey_id); and every signature, each
// under its own context: the identity signature, the SPK's, the last-resort
// KEM prekey's, each one-time KEM prekey's, and the bundle signature over
// the issue time and all keys. All structural checks run before the first
// signature is verified. The version is a property of the wire form and is
// checked by BundleFromProto: a Bundle value is always BundleVersion.
func (b *Bundle) Verify() error {
	if b == nil {
		return fmt.Errorf("%w: nil bundle", ErrMalformed)
	}
	if len(b.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signing key is %d bytes, want %d", ErrMalformed, len(b.SigningKey), ed25519.PublicKeySize)
	}
	if n, m := len(b.OneTimePreKeys), len(b.OneTimeKEMPreKeys); n > MaxOneTimePreKeys || m > MaxOneTimePreKeys {
		return fmt.Errorf("%w: bundle has %d one-time and %d one-time KEM prekeys, limit %d each", ErrMalformed, n, m, MaxOneTimePreKeys)
	}
	if _, err := decodeEC(b.IdentityKey, "identity key"); err != nil {
		return err
	}
	if err := checkID(b.SignedPreKey.ID); err != nil {
		return fmt.Errorf("signed prekey: %w", err)
	}
	if _, err := decodeEC(b.SignedPreKey.Public, "signed prekey"); err != nil {
		return err
	}
	if b.KEMPreKey != nil {
		if err := checkID(b.KEMPreKey.ID); err != nil {
			return fmt.Errorf("KEM prekey: %w", err)
		}
		if err := checkKEM(b.KEMPreKey.Public, "KEM prekey"); err != nil {
			return err
		}
	}
	for i := range b.OneTimePreKeys {
		o := &b.OneTimePreKeys[i]
		if err := checkID(o.ID); err != nil {
			return fmt.Errorf("one-time prekey %d: %w", i, err)
		}
		for j := range i {
			if b.OneTimePreKeys[j].ID == o.ID {
				return fmt.Errorf("%w: one-time prekey id %d repeated", ErrMalformed, o.ID)
			}
		}
		if _, err := decodeEC(o.Public, fmt.Sprintf("one-time prekey %d", o.ID)); err != nil {
			return err
		}
	}
	for i := range b.OneTimeKEMPreKeys {
		k := &b.OneTimeKEMPreKeys[i]
		if err := checkID(k.ID); err != nil {
			return fmt.Errorf("one-time KEM prekey %d: %w", i, err)
		}
		if b.KEMPreKey != nil && b.KEMPreKey.ID == k.ID {
			return fmt.Errorf("%w: one-time KEM prekey id %d is the last-resort key's", ErrMalformed, k.ID)
		}
		for j := range i {
			if b.OneTimeKEMPreKeys[j].ID == k.ID {
				return fmt.Errorf("%w: one-time KEM prekey id %d repeated", ErrMalformed, k.ID)
			}
		}
		if err := checkKEM(k.Public, fmt.Sprintf("one-time KEM prekey %d", k.ID)); err != nil {
			return err
		}
	}

	if !verify(b.SigningKey, ctxIdentity, b.IdentityKey, b.IdentitySignature) {
		return fmt.Errorf("%w: identity signature", ErrBadSignature)
	}
	if !verify(b.SigningKey, ctxSignedPreKey, b.SignedPreKey.Public, b.SignedPreKey.Signature) {
		return fmt.Errorf("%w: signed prekey %d", ErrBadSignature, b.SignedPreKey.ID)
	}
	if b.KEMPreKey != nil && !verify(b.SigningKey, ctxKEMPreKey, b.KEMPreKey.Public, b.KEMPreKey.Signature) {
		return fmt.Errorf("%w: KEM prekey %d", ErrBadSignature, b.KEMPreKey.ID)
	}
	for i := range b.OneTimeKEMPreKeys {
		k := &b.OneTimeKEMPreKeys[i]
		if !verify(b.SigningKey, ctxKEMPreKey, k.Public, k.Signature) {
			return fmt.Errorf("%w: one-time KEM prekey %d", ErrBadSignature, k.ID)
		}
	}
	if !verify(b.SigningKey, ctxBundle, b.Transcript(), b.BundleSignature) {
		return fmt.Errorf("%w: bundle signature (issue time and keys)", ErrBadSignature)
	}
	return nil
}

// SameIdentity reports, in constant time, whether b and o carry the same
// signing key and the same identity key. Nil bundles, and bundles without
// keys, are never the same.
func (b *Bundle) SameIdentity(o *Bundle) bool {
	if b == nil || o == nil || len(b.SigningKey) == 0 || len(b.IdentityKey) == 0 {
		return false
	}
	s := subtle.ConstantTimeCompare(b.SigningKey, o.SigningKey)
	i := subtle.ConstantTimeCompare(b.IdentityKey, o.IdentityKey)
	return s&i == 1
}
