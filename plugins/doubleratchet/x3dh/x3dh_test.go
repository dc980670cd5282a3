package x3dh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

func TestAgreement(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			p := newParty(t, testRand("agreement "+sc.name), sc)
			init, err := Initiate(nil, p.alice, p.bundle)
			if err != nil {
				t.Fatal(err)
			}
			if init.PostQuantum != sc.kem {
				t.Fatalf("PostQuantum = %v, want %v", init.PostQuantum, sc.kem)
			}
			if len(init.SharedSecret) != 32 {
				t.Fatalf("SK is %d bytes", len(init.SharedSecret))
			}
			if !bytes.Equal(init.RatchetKey, p.spk.Public[1:]) {
				t.Fatal("RatchetKey is not SPK_B")
			}
			h := init.Header
			if h.Message != nil {
				t.Fatal("Initiate set the message")
			}
			wantOPK, wantKEM := uint32(0), uint32(0)
			if sc.opk {
				wantOPK = opkID
			}
			if sc.oneTime {
				wantKEM = pqopkID
			} else if sc.kem {
				wantKEM = kemID
			}
			if h.SignedPrekeyId != spkID || h.OneTimePrekeyId != wantOPK || h.KemPrekeyId != wantKEM {
				t.Fatalf("header ids %d/%d/%d, want %d/%d/%d", h.SignedPrekeyId, h.OneTimePrekeyId, h.KemPrekeyId, spkID, wantOPK, wantKEM)
			}
			if sc.kem != (len(h.KemCiphertext) == 1568) || (!sc.kem && len(h.KemCiphertext) != 0) {
				t.Fatalf("kem_ciphertext is %d bytes", len(h.KemCiphertext))
			}
			wantAD := append(append([]byte{}, p.alice.IdentityKey()...), p.bob.IdentityKey()...)
			if k := p.responderKeys(sc).KEMPreKey; k != nil {
				wantAD = append(wantAD, k.Public...)
			}
			if !bytes.Equal(init.AssociatedData, wantAD) {
				t.Fatal("AD is not EncodeEC(IK_A) || EncodeEC(IK_B) [|| EncodeKEM(PQPK_B)]")
			}

			// The header travels on the wire: marshal it as the layer does.
			wire, err := proto.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			var got wirepb.PreKeyMessage
			if err := proto.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			sk, ad, err := Respond(p.bob, p.responderKeys(sc), p.alice.IdentityKey(), &got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sk, init.SharedSecret) {
				t.Fatal("SK differs between initiator and responder")
			}
			if !bytes.Equal(ad, init.AssociatedData) {
				t.Fatal("AD differs between initiator and responder")
			}

			// A second initiation draws a fresh ephemeral key: another SK.
			again, err := Initiate(nil, p.alice, p.bundle)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again.SharedSecret, init.SharedSecret) {
				t.Fatal("two initiations gave the same SK")
			}
		})
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	id, err := NewIdentity(testRand("identity"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := id.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 65 || b[0] != 1 {
		t.Fatalf("MarshalBinary: %d bytes, format %d", len(b), b[0])
	}
	id2, err := UnmarshalIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.SigningKey(), id2.SigningKey()) || !bytes.Equal(id.IdentityKey(), id2.IdentityKey()) {
		t.Fatal("public keys differ after round trip")
	}
	b2, _ := id2.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("private keys differ after round trip")
	}
	// The restored identity works: it signs a bundle that verifies, and
	// agrees with the original's peers.
	spk, err := id2.NewSignedPreKey(nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Bundle(spk, nil, nil, nil, time.Time{}).Verify(); err != nil {
		t.Fatal(err)
	}
	if len(id.IdentityKey()) != 33 || id.IdentityKey()[0] != TagX25519 {
		t.Fatal("IdentityKey is not EncodeEC")
	}
	if !ed25519.Verify(id.SigningKey(), append([]byte("strata-dr-identity-v1\x00"), id.IdentityKey()...), id.Bundle(spk, nil, nil, nil, time.Time{}).IdentitySignature) {
		t.Fatal("identity signature is not Ed25519 over the identity context and EncodeEC(IK)")
	}

	for _, bad := range [][]byte{nil, {}, b[:64], append(bytes.Clone(b), 0), append([]byte{2}, b[1:]...)} {
		if _, err := UnmarshalIdentity(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("UnmarshalIdentity(%d bytes) = %v, want ErrMalformed", len(bad), err)
		}
	}
}

func TestBundleRoundTrip(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			p := newParty(t, testRand("bundle "+sc.name), sc)
			// More one-time keys than the scenario, to exercise order.
			opks := []*PreKeyPair{}
			for i := range 3 {
				o, err := NewOneTimePreKey(nil, uint32(10+i))
				if err != nil {
					t.Fatal(err)
				}
				opks = append(opks, o)
			}
			var pq []*KEMPreKeyPair
			if sc.oneTime {
				pq = append(pq, p.pqopk)
			}
			b := p.bob.Bundle(p.spk, p.kem, opks, pq, testIssued)
			enc, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseBundle(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Issued.Equal(b.Issued) {
				t.Fatalf("Issued %v, want %v", got.Issued, b.Issued)
			}
			got.Issued = b.Issued
			if !equalBundles(got, b) {
				t.Fatal("bundle differs after round trip")
			}
			if !got.SameIdentity(b) || !b.SameIdentity(got) {
				t.Fatal("SameIdentity false for the same bundle")
			}
			enc2, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, enc2) {
				t.Fatal("marshal is not deterministic across a round trip")
			}
			// BundleFromProto copies: changing the message afterwards does
			// not change the bundle.
			pm := b.Proto()
			fromProto, err := BundleFromProto(pm)
			if err != nil {
				t.Fatal(err)
			}
			pm.IdentityKey[1] ^= 1
			if !bytes.Equal(fromProto.IdentityKey, p.bob.IdentityKey()) {
				t.Fatal("BundleFromProto aliases the message")
			}
		})
	}

	// A zero Issued travels as 0 and comes back zero.
	p := newParty(t, testRand("bundle zero time"), scenarios[0])
	p.bundle.Issued = time.Time{}
	p.bob.SignBundle(p.bundle)
	enc, _ := p.bundle.Marshal()
	got, err := ParseBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Issued.IsZero() {
		t.Fatalf("zero Issued came back as %v", got.Issued)
	}

	other := newParty(t, testRand("bundle other"), scenarios[0])
	if p.bundle.SameIdentity(other.bundle) || p.bundle.SameIdentity(nil) {
		t.Fatal("SameIdentity true for different identities")
	}
}

func equalBundles(a, b *Bundle) bool {
	ea, err1 := a.Marshal()
	eb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb) && a.Issued.Equal(b.Issued)
}

// resign re-signs every signed key of b and the bundle with id, after a
// test has changed one, so that only the check the test aims at fails.
func resign(id *Identity, b *Bundle) {
	b.IdentitySignature = id.sign(ctxIdentity, b.IdentityKey)
	b.SignedPreKey.Signature = id.sign(ctxSignedPreKey, b.SignedPreKey.Public)
	if b.KEMPreKey != nil {
		b.KEMPreKey.Signature = id.sign(ctxKEMPreKey, b.KEMPreKey.Public)
	}
	for i := range b.OneTimeKEMPreKeys {
		b.OneTimeKEMPreKeys[i].Signature = id.sign(ctxKEMPreKey, b.OneTimeKEMPreKeys[i].Public)
	}
	resignBundle(id, b)
}

// resignBundle re-signs only the bundle signature.
func resignBundle(id *Identity, b *Bundle) {
	b.BundleSignature = id.sign(ctxBundle, b.Transcript())
}

func TestBundleRejections(t *testing.T) {
	full := scenario{name: "full", opk: true, kem: true, oneTime: true}
	base := newParty(t, testRand("rejections"), full)
	extraKEM, err := base.bob.NewKEMPreKey(testRand("rejections extra"), 99)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) { b[len(b)-1] ^= 0x01 }

	cases := []struct {
		name   string
		mutate func(b *Bundle)
		want   error
	}{
		{"bad identity signature", func(b *Bundle) { flip(b.IdentitySignature) }, ErrBadSignature},
		{"identity signature by another key", func(b *Bundle) {
			other, _ := NewIdentity(testRand("other signer"))
			b.IdentitySignature = other.sign(ctxIdentity, b.IdentityKey)
		}, ErrBadSignature},
		// Signature domain separation: a signature valid in one context
		// verifies in no other.
		{"SPK is the identity key, signed under the identity context", func(b *Bundle) {
			b.SignedPreKey.Public = bytes.Clone(b.IdentityKey)
			b.SignedPreKey.Signature = bytes.Clone(b.IdentitySignature)
			resignBundle(base.bob, b)
		}, ErrBadSignature},
		{"identity key is the SPK, signed under the SPK context", func(b *Bundle) {
			b.IdentityKey = bytes.Clone(b.SignedPreKey.Public)
			b.IdentitySignature = bytes.Clone(b.SignedPreKey.Signature)
			resignBundle(base.bob, b)
		}, ErrBadSignature},
		{"identity signature without context (version 1)", func(b *Bundle) {
			b.IdentitySignature = ed25519.Sign(base.bob.signing, b.IdentityKey)
		}, ErrBadSignature},
		{"SPK signature without context (version 1)", func(b *Bundle) {
			b.SignedPreKey.Signature = ed25519.Sign(base.bob.signing, b.SignedPreKey.Public)
		}, ErrBadSignature},
		{"KEM prekey signed under the SPK context", func(b *Bundle) {
			b.KEMPreKey.Signature = base.bob.sign(ctxSignedPreKey, b.KEMPreKey.Public)
			resignBundle(base.bob, b)
		}, ErrBadSignature},
		{"bundle signature under the identity context", func(b *Bundle) {
			b.BundleSignature = base.bob.sign(ctxIdentity, b.Transcript())
		}, ErrBadSignature},
		// The bundle signature binds the issue time and the keys together.
		{"issue time changed", func(b *Bundle) { b.Issued = b.Issued.Add(time.Second) }, ErrBadSignature},
		{"no bundle signature", func(b *Bundle) { b.BundleSignature = nil }, ErrBadSignature},
		{"SPK of another bundle, with its own signature", func(b *Bundle) {
			older, _ := base.bob.NewSignedPreKey(testRand("older spk"), 9)
			b.SignedPreKey = publicOf(older, true)
		}, ErrBadSignature},
		{"one-time prekey replaced", func(b *Bundle) {
			o, _ := NewOneTimePreKey(testRand("opk swap"), b.OneTimePreKeys[0].ID)
			b.OneTimePreKeys[0].Public = o.Public
		}, ErrBadSignature},
		{"one-time KEM prekey dropped", func(b *Bundle) { b.OneTimeKEMPreKeys = nil }, ErrBadSignature},
		{"last-resort KEM prekey dropped", func(b *Bundle) { b.KEMPreKey = nil }, ErrBadSignature},
		{"one-time KEM prekey moved to the last-resort slot", func(b *Bundle) {
			b.KEMPreKey = &b.OneTimeKEMPreKeys[0]
			b.OneTimeKEMPreKeys = nil
		}, ErrBadSignature},
		{"bad SPK signature", func(b *Bundle) { flip(b.SignedPreKey.Signature) }, ErrBadSignature},
		{"SPK replaced, old signature", func(b *Bundle) {
			o, _ := NewOneTimePreKey(testRand("spk swap"), 1)
			b.SignedPreKey.Public = o.Public
		}, ErrBadSignature},
		{"missing SPK signature", func(b *Bundle) { b.SignedPreKey.Signature = nil }, ErrBadSignature},
		{"bad KEM prekey signature", func(b *Bundle) { flip(b.KEMPreKey.Signature) }, ErrBadSignature},
		{"KEM prekey replaced, old signature", func(b *Bundle) { b.KEMPreKey.Public = extraKEM.Public }, ErrBadSignature},
		{"bad one-time KEM signature", func(b *Bundle) { flip(b.OneTimeKEMPreKeys[0].Signature) }, ErrBadSignature},
		{"wrong identity key tag", func(b *Bundle) { b.IdentityKey[0] = TagMLKEM1024; resign(base.bob, b) }, ErrMalformed},
		{"wrong SPK tag", func(b *Bundle) { b.SignedPreKey.Public[0] = 0x06; resign(base.bob, b) }, ErrMalformed},
		{"wrong KEM tag", func(b *Bundle) { b.KEMPreKey.Public[0] = 0x08; resign(base.bob, b) }, ErrMalformed},
		{"wrong OPK tag", func(b *Bundle) { b.OneTimePreKeys[0].Public[0] = 0 }, ErrMalformed},
		{"identity key too short", func(b *Bundle) { b.IdentityKey = b.IdentityKey[:32]; resign(base.bob, b) }, ErrMalformed},
		{"SPK without tag (raw 32 bytes)", func(b *Bundle) { b.SignedPreKey.Public = b.SignedPreKey.Public[1:]; resign(base.bob, b) }, ErrMalformed},
		{"OPK too long", func(b *Bundle) { b.OneTimePreKeys[0].Public = append(b.OneTimePreKeys[0].Public, 0) }, ErrMalformed},
		{"signing key too short", func(b *Bundle) { b.SigningKey = b.SigningKey[:31] }, ErrMalformed},
		{"KEM key too short", func(b *Bundle) { b.KEMPreKey.Public = b.KEMPreKey.Public[:1568]; resign(base.bob, b) }, ErrMalformed},
		{"KEM key too long", func(b *Bundle) { b.KEMPreKey.Public = append(b.KEMPreKey.Public, 0); resign(base.bob, b) }, ErrMalformed},
		{"one-time KEM key of ML-KEM-768 length", func(b *Bundle) {
			b.OneTimeKEMPreKeys[0].Public = b.OneTimeKEMPreKeys[0].Public[:1+1184]
			resign(base.bob, b)
		}, ErrMalformed},
		{"KEM key coefficient ≥ q", func(b *Bundle) {
			b.KEMPreKey.Public[1], b.KEMPreKey.Public[2] = 0xff, 0x0f // c0 = 4095
			resign(base.bob, b)
		}, ErrBadKey},
		{"non-canonical SPK (u = p)", func(b *Bundle) {
			u := make([]byte, 33)
			u[0] = TagX25519
			u[1] = 0xed
			for i := 2; i < 32; i++ {
				u[i] = 0xff
			}
			u[32] = 0x7f
			b.SignedPreKey.Public = u
			resign(base.bob, b)
		}, ErrBadKey},
		{"SPK with top bit set", func(b *Bundle) { b.SignedPreKey.Public[32] |= 0x80; resign(base.bob, b) }, ErrBadKey},
		{"zero SPK id", func(b *Bundle) { b.SignedPreKey.ID = 0 }, ErrMalformed},
		{"zero OPK id", func(b *Bundle) { b.OneTimePreKeys[0].ID = 0 }, ErrMalformed},
		{"repeated OPK id", func(b *Bundle) {
			b.OneTimePreKeys = append(b.OneTimePreKeys, b.OneTimePreKeys[0])
		}, ErrMalformed},
		{"one-time KEM id equals last-resort id", func(b *Bundle) { b.OneTimeKEMPreKeys[0].ID = b.KEMPreKey.ID }, ErrMalformed},
		{"too many one-time prekeys", func(b *Bundle) {
			for i := range MaxOneTimePreKeys {
				o, _ := NewOneTimePreKey(nil, uint32(100+i))
				b.OneTimePreKeys = append(b.OneTimePreKeys, publicOf(o, false))
			}
		}, ErrMalformed},
		{"too many one-time KEM prekeys", func(b *Bundle) {
			for i := range MaxOneTimePreKeys {
				b.OneTimeKEMPreKeys = append(b.OneTimeKEMPreKeys, PublicPreKey{ID: uint32(100 + i), Public: extraKEM.Public, Signature: extraKEM.Signature})
			}
		}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := cloneBundle(t, base.bundle)
			c.mutate(b)
			if err := b.Verify(); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			// Initiate refuses it too, before drawing any randomness.
			if _, err := Initiate(failReader{}, base.alice, b); !errors.Is(err, c.want) {
				t.Fatalf("Initiate = %v, want %v", err, c.want)
			}
			// And so does the wire path, where the wire can carry it.
			enc, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseBundle(enc); !errors.Is(err, c.want) {
				t.Fatalf("ParseBundle = %v, want %v", err, c.want)
			}
		})
	}

	good, err := base.bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	wire := []struct {
		name string
		enc  func() []byte
		want error
	}{
		{"unknown version", func() []byte {
			p := base.bundle.Proto()
			p.Version = 3
			b, _ := proto.Marshal(p)
			return b
		}, ErrVersion},
		{"version 0 (absent)", func() []byte {
			p := base.bundle.Proto()
			p.Version = 0
			b, _ := proto.Marshal(p)
			return b
		}, ErrVersion},
		{"no signed prekey", func() []byte {
			p := base.bundle.Proto()
			p.SignedPrekey = nil
			b, _ := proto.Marshal(p)
			return b
		}, ErrMalformed},
		{"truncated by one byte", func() []byte { return good[:len(good)-1] }, ErrMalformed},
		{"truncated to half", func() []byte { return good[:len(good)/2] }, ErrMalformed},
		{"truncated to 10 bytes", func() []byte { return good[:10] }, ErrMalformed},
		{"empty", func() []byte { return nil }, ErrVersion},
		{"not protobuf", func() []byte { return []byte{0xff, 0xff, 0xff} }, ErrMalformed},
		{"oversized", func() []byte { return append(bytes.Clone(good), make([]byte, MaxBundleSize)...) }, ErrMalformed},
	}
	for _, c := range wire {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseBundle(c.enc()); !errors.Is(err, c.want) {
				t.Fatalf("ParseBundle = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := BundleFromProto(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("BundleFromProto(nil) = %v", err)
	}
	if err := (*Bundle)(nil).Verify(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nil Verify = %v", err)
	}
}

// failReader fails every read: a call that reads randomness shows.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no randomness expected") }

func cloneBundle(t *testing.T, b *Bundle) *Bundle {
	t.Helper()
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMaxBundle(t *testing.T) {
	r := testRand("max bundle")
	id, _ := NewIdentity(r)
	spk, _ := id.NewSignedPreKey(r, ^uint32(0))
	kem, _ := id.NewKEMPreKey(r, ^uint32(0))
	var opks []*PreKeyPair
	var pqs []*KEMPreKeyPair
	for i := range MaxOneTimePreKeys {
		o, _ := NewOneTimePreKey(r, ^uint32(0)-uint32(i))
		k, _ := id.NewKEMPreKey(r, ^uint32(0)-1-uint32(i))
		opks, pqs = append(opks, o), append(pqs, k)
	}
	b := id.Bundle(spk, kem, opks, pqs, time.Unix(-1<<62, 0))
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest bundle: %d bytes (limit %d)", len(enc), MaxBundleSize)
	if len(enc) > MaxBundleSize {
		t.Fatalf("a bundle at the limits is %d bytes, over MaxBundleSize %d", len(enc), MaxBundleSize)
	}
	if _, err := ParseBundle(enc); err != nil {
		t.Fatal(err)
	}
}

func TestRespondRejections(t *testing.T) {
	pqs := scenario{name: "pq", opk: true, kem: true}
	p := newParty(t, testRand("respond rejections"), pqs)
	init, err := Initiate(testRand("respond rejections initiate"), p.alice, p.bundle)
	if err != nil {
		t.Fatal(err)
	}
	x3 := newParty(t, testRand("respond rejections x3dh"), scenarios[0])
	x3init, err := Initiate(nil, x3.alice, x3.bundle)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := NewIdentity(testRand("mallory"))
	zeroPoint := make([]byte, 33)
	zeroPoint[0] = TagX25519
	onePoint := bytes.Clone(zeroPoint)
	onePoint[1] = 1
	// An order-8 point of Curve25519 (RFC 7748 §6.1 / libsodium blacklist).
	order8, _ := hex.DecodeString("05e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")

	pq := func() *wirepb.PreKeyMessage { return proto.Clone(init.Header).(*wirepb.PreKeyMessage) }
	keys := p.responderKeys(pqs)
	cases := []struct {
		name   string
		self   *Identity
		keys   ResponderKeys
		pinned []byte
		hdr    *wirepb.PreKeyMessage
		want   error
	}{
		{"identity mismatch", p.bob, keys, mallory.IdentityKey(), pq(), ErrIdentityMismatch},
		{"pinned key missing", p.bob, keys, nil, pq(), ErrIdentityMismatch},
		{"header identity of another node", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.IdentityKey = mallory.IdentityKey()
			return h
		}(), ErrIdentityMismatch},
		{"header identity malformed", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.IdentityKey = h.IdentityKey[1:]
			return h
		}(), ErrMalformed},
		{"CT too short", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.KemCiphertext = h.KemCiphertext[:1567]
			return h
		}(), ErrMalformed},
		{"CT too long", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.KemCiphertext = append(h.KemCiphertext, 0)
			return h
		}(), ErrMalformed},
		{"CT missing", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.KemCiphertext = nil
			return h
		}(), ErrMalformed},
		{"all-zero base key", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.BaseKey = zeroPoint
			return h
		}(), ErrBadKey},
		{"base key u = 1 (order 4)", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.BaseKey = onePoint
			return h
		}(), ErrBadKey},
		{"order-8 base key", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.BaseKey = order8
			return h
		}(), ErrBadKey},
		{"base key wrong tag", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.BaseKey = append([]byte{0x0A}, h.BaseKey[1:]...)
			return h
		}(), ErrMalformed},
		{"base key missing", p.bob, keys, p.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := pq()
			h.BaseKey = nil
			return h
		}(), ErrMalformed},
		{"PQ header, no KEM key", p.bob, ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: p.opk}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"KEM key, X3DH header", x3.bob, ResponderKeys{SignedPreKey: x3.spk, KEMPreKey: p.kem}, x3.alice.IdentityKey(), x3init.Header, ErrMalformed},
		{"X3DH header carrying a CT", x3.bob, ResponderKeys{SignedPreKey: x3.spk}, x3.alice.IdentityKey(), func() *wirepb.PreKeyMessage {
			h := proto.Clone(x3init.Header).(*wirepb.PreKeyMessage)
			h.KemCiphertext = make([]byte, 1568)
			return h
		}(), ErrMalformed},
		{"wrong SPK id", p.bob, ResponderKeys{SignedPreKey: &PreKeyPair{ID: 9, Private: p.spk.Private, Public: p.spk.Public}, OneTimePreKey: p.opk, KEMPreKey: p.kem}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"no SPK", p.bob, ResponderKeys{OneTimePreKey: p.opk, KEMPreKey: p.kem}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"OPK named, none given", p.bob, ResponderKeys{SignedPreKey: p.spk, KEMPreKey: p.kem}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"OPK given, none named", x3.bob, ResponderKeys{SignedPreKey: x3.spk, OneTimePreKey: p.opk}, x3.alice.IdentityKey(), x3init.Header, ErrMalformed},
		{"wrong OPK id", p.bob, ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: &PreKeyPair{ID: 77, Private: p.opk.Private}, KEMPreKey: p.kem}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"wrong KEM id", p.bob, ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: p.opk, KEMPreKey: &KEMPreKeyPair{ID: 77, Seed: p.kem.Seed, Public: p.kem.Public}}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"short KEM seed", p.bob, ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: p.opk, KEMPreKey: &KEMPreKeyPair{ID: kemID, Seed: p.kem.Seed[:32], Public: p.kem.Public}}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"short SPK private", p.bob, ResponderKeys{SignedPreKey: &PreKeyPair{ID: spkID, Private: p.spk.Private[:31]}, OneTimePreKey: p.opk, KEMPreKey: p.kem}, p.alice.IdentityKey(), pq(), ErrMalformed},
		{"nil header", p.bob, keys, p.alice.IdentityKey(), nil, ErrMalformed},
		{"nil identity", nil, keys, p.alice.IdentityKey(), pq(), ErrBadKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sk, ad, err := Respond(c.self, c.keys, c.pinned, c.hdr)
			if !errors.Is(err, c.want) {
				t.Fatalf("Respond = %v, want %v", err, c.want)
			}
			if sk != nil || ad != nil {
				t.Fatal("Respond returned keys with an error")
			}
		})
	}

	// The unmodified header agrees, so the failures above are the mutations'.
	sk, _, err := Respond(p.bob, keys, p.alice.IdentityKey(), pq())
	if err != nil || !bytes.Equal(sk, init.SharedSecret) {
		t.Fatalf("control: %v", err)
	}
}

// TestTamperedCiphertext: ML-KEM's implicit rejection turns a tampered
// ciphertext into a pseudorandom shared secret, not an error; SK differs and
// the first message will not decrypt.
func TestTamperedCiphertext(t *testing.T) {
	sc := scenario{name: "pq", kem: true}
	p := newParty(t, testRand("tampered"), sc)
	init, err := Initiate(nil, p.alice, p.bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int{0, 700, 1567} {
		h := proto.Clone(init.Header).(*wirepb.PreKeyMessage)
		h.KemCiphertext[pos] ^= 0x01
		sk, ad, err := Respond(p.bob, p.responderKeys(sc), p.alice.IdentityKey(), h)
		if err != nil {
			t.Fatalf("byte %d: %v", pos, err)
		}
		if bytes.Equal(sk, init.SharedSecret) {
			t.Fatalf("byte %d: tampered CT gave the initiator's SK", pos)
		}
		if !bytes.Equal(ad, init.AssociatedData) {
			t.Fatal("AD changed")
		}
	}
	// A header naming a different SPK id than the key given is refused;
	// the right key with a wrong base key gives another SK.
	h := proto.Clone(init.Header).(*wirepb.PreKeyMessage)
	other, _ := NewOneTimePreKey(nil, 1)
	h.BaseKey = other.Public
	sk, _, err := Respond(p.bob, p.responderKeys(sc), p.alice.IdentityKey(), h)
	if err != nil || bytes.Equal(sk, init.SharedSecret) {
		t.Fatalf("substituted base key: err %v, same SK %v", err, bytes.Equal(sk, init.SharedSecret))
	}
}

// TestInitiateLowOrderBundle: a bundle whose keys are low-order points
// verifies (the signatures are good) but Initiate refuses the DH.
func TestInitiateLowOrderBundle(t *testing.T) {
	zero := make([]byte, 33)
	zero[0] = TagX25519
	for _, field := range []string{"identity", "spk", "opk"} {
		t.Run(field, func(t *testing.T) {
			p := newParty(t, testRand("low order "+field), scenario{opk: true})
			b := p.bundle
			switch field {
			case "identity":
				b.IdentityKey = bytes.Clone(zero)
			case "spk":
				b.SignedPreKey.Public = bytes.Clone(zero)
			case "opk":
				b.OneTimePreKeys[0].Public = bytes.Clone(zero)
			}
			resign(p.bob, b)
			if err := b.Verify(); err != nil {
				t.Fatal(err)
			}
			if _, err := Initiate(nil, p.alice, b); !errors.Is(err, ErrBadKey) {
				t.Fatalf("Initiate = %v, want ErrBadKey", err)
			}
		})
	}
}

func TestInitiateRandomness(t *testing.T) {
	p := newParty(t, testRand("randomness"), scenario{kem: true})
	if _, err := Initiate(failReader{}, p.alice, p.bundle); err == nil {
		t.Fatal("Initiate succeeded without randomness")
	}
	// 32 bytes are enough for EK but not for the encapsulation seed.
	if _, err := Initiate(bytes.NewReader(make([]byte, 32)), p.alice, p.bundle); err == nil {
		t.Fatal("PQXDH Initiate succeeded with 32 bytes of randomness")
	}
	if _, err := Initiate(bytes.NewReader(make([]byte, 64)), p.alice, p.bundle); err != nil {
		t.Fatal(err)
	}
	if _, err := NewIdentity(bytes.NewReader(make([]byte, 63))); err == nil {
		t.Fatal("NewIdentity succeeded with 63 bytes")
	}
	if _, err := p.bob.NewKEMPreKey(bytes.NewReader(make([]byte, 63)), 5); err == nil {
		t.Fatal("NewKEMPreKey succeeded with 63 bytes")
	}
}

func TestZeroAndNil(t *testing.T) {
	p := newParty(t, testRand("zero"), scenario{opk: true, kem: true})
	init, err := Initiate(nil, p.alice, p.bundle)
	if err != nil {
		t.Fatal(err)
	}
	keys := p.responderKeys(scenario{opk: true, kem: true})

	if _, err := NewOneTimePreKey(nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("id 0: %v", err)
	}
	if _, err := p.bob.NewSignedPreKey(nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("id 0: %v", err)
	}
	if _, err := p.bob.NewKEMPreKey(nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("id 0: %v", err)
	}

	p.spk.Zero()
	p.kem.Zero()
	if !bytes.Equal(p.spk.Private, make([]byte, 32)) || !bytes.Equal(p.kem.Seed, make([]byte, 64)) {
		t.Fatal("prekey Zero left key material")
	}
	if sk, _, err := Respond(p.bob, keys, p.alice.IdentityKey(), init.Header); err == nil && bytes.Equal(sk, init.SharedSecret) {
		t.Fatal("zeroed prekeys still agree")
	}

	p.alice.Zero()
	if !strings.Contains(fmt.Sprint(p.alice), "zeroed") {
		t.Fatal("zeroed identity formats as live")
	}
	if p.alice.IdentityKey() != nil || p.alice.SigningKey() != nil {
		t.Fatal("zeroed identity still has keys")
	}
	if _, err := p.alice.MarshalBinary(); !errors.Is(err, ErrBadKey) {
		t.Fatalf("MarshalBinary after Zero: %v", err)
	}
	if _, err := Initiate(nil, p.alice, p.bundle); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Initiate after Zero: %v", err)
	}
	if p.alice.Bundle(p.spk, nil, nil, nil, time.Time{}) != nil {
		t.Fatal("zeroed identity made a bundle")
	}

	// Nil receivers and arguments do not panic.
	var nilID *Identity
	nilID.Zero()
	(*PreKeyPair)(nil).Zero()
	(*KEMPreKeyPair)(nil).Zero()
	if nilID.SigningKey() != nil || nilID.IdentityKey() != nil || nilID.Bundle(nil, nil, nil, nil, time.Time{}) != nil {
		t.Fatal("nil identity returned keys")
	}
	if _, err := nilID.NewSignedPreKey(nil, 1); err == nil {
		t.Fatal("nil identity made a prekey")
	}
	if _, err := Initiate(nil, p.bob, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Initiate(nil bundle) = %v", err)
	}
	if (*Bundle)(nil).Proto() != nil {
		t.Fatal("nil bundle has a proto")
	}
	if _, err := (*Bundle)(nil).Marshal(); err == nil {
		t.Fatal("nil bundle marshalled")
	}
	// A bundle built without an SPK does not verify.
	if err := p.bob.Bundle(nil, nil, nil, nil, time.Time{}).Verify(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bundle without SPK: %v", err)
	}
}

func TestFormatRedacts(t *testing.T) {
	r := testRand("format")
	id, _ := NewIdentity(r)
	spk, _ := id.NewSignedPreKey(r, 1)
	kem, _ := id.NewKEMPreKey(r, 2)
	raw, _ := id.MarshalBinary()
	secrets := []string{hex.EncodeToString(raw[1:33]), hex.EncodeToString(raw[33:]), hex.EncodeToString(spk.Private), hex.EncodeToString(kem.Seed)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s", "%d", "%q"} {
		out := fmt.Sprintf(verb+verb+verb+verb+verb+verb, id, *id, spk, *spk, kem, *kem)
		for _, s := range secrets {
			if strings.Contains(out, s) || strings.Contains(strings.ToLower(out), s[:16]) {
				t.Fatalf("%s leaks a private key: %s", verb, out)
			}
		}
		if !strings.Contains(out, "REDACTED") {
			t.Fatalf("%s: %s", verb, out)
		}
	}
}

func TestCanonicalU(t *testing.T) {
	p := [32]byte{0xed}
	for i := 1; i < 31; i++ {
		p[i] = 0xff
	}
	p[31] = 0x7f
	for _, c := range []struct {
		name string
		edit func(k *[32]byte)
		want bool
	}{
		{"p", func(*[32]byte) {}, false},
		{"p-1", func(k *[32]byte) { k[0] = 0xec }, true},
		{"p+1", func(k *[32]byte) { k[0] = 0xee }, false},
		{"2^255-1", func(k *[32]byte) { k[0] = 0xff }, false},
		{"middle byte below 0xff", func(k *[32]byte) { k[0], k[15] = 0xff, 0xfe }, true},
		{"top bit", func(k *[32]byte) { *k = [32]byte{31: 0x80} }, false},
		{"zero", func(k *[32]byte) { *k = [32]byte{} }, true},
	} {
		k := p
		c.edit(&k)
		if got := canonicalU(&k); got != c.want {
			t.Errorf("%s: canonicalU = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestBundleSignaturesByHand checks every signature of a bundle version 2
// with crypto/ed25519 over the context prefixes and the transcript written
// out here, independently of the package's own encoding, and that a
// version 1 bundle is refused with an error naming its version.
func TestBundleSignaturesByHand(t *testing.T) {
	p := newParty(t, testRand("signatures by hand"), scenario{opk: true, kem: true, oneTime: true})
	b := p.bundle
	pub := ed25519.PublicKey(p.bob.SigningKey())
	check := func(what, context string, msg, sig []byte) {
		t.Helper()
		if !ed25519.Verify(pub, append([]byte(context), msg...), sig) {
			t.Errorf("%s: not Ed25519 over %q || message", what, context)
		}
		if ed25519.Verify(pub, msg, sig) {
			t.Errorf("%s: verifies without its context", what)
		}
	}
	check("identity signature", "strata-dr-identity-v1\x00", b.IdentityKey, b.IdentitySignature)
	check("signed prekey", "strata-dr-spk-v1\x00", b.SignedPreKey.Public, b.SignedPreKey.Signature)
	check("last-resort KEM prekey", "strata-dr-kem-v1\x00", b.KEMPreKey.Public, b.KEMPreKey.Signature)
	check("one-time KEM prekey", "strata-dr-kem-v1\x00", b.OneTimeKEMPreKeys[0].Public, b.OneTimeKEMPreKeys[0].Signature)

	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	issued := testIssued.Unix()
	var tr []byte
	for i := 7; i >= 0; i-- {
		tr = append(tr, byte(issued>>(8*i)))
	}
	tr = append(tr, p.bob.IdentityKey()...)
	tr = append(append(tr, u32(spkID)...), p.spk.Public...)
	tr = append(append(append(tr, 1), u32(kemID)...), p.kem.Public...)
	tr = append(append(append(tr, u32(1)...), u32(opkID)...), p.opk.Public...)
	tr = append(append(append(tr, u32(1)...), u32(pqopkID)...), p.pqopk.Public...)
	if !bytes.Equal(tr, b.Transcript()) {
		t.Fatal("Transcript differs from the one written out by hand")
	}
	check("bundle signature", "strata-dr-bundle-v1\x00", tr, b.BundleSignature)

	// A version 1 bundle is refused, and the error names the version.
	pm := b.Proto()
	if pm.GetVersion() != 2 {
		t.Fatalf("bundle version %d, want 2", pm.GetVersion())
	}
	pm.Version = 1
	old, _ := proto.Marshal(pm)
	_, err := ParseBundle(old)
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "bundle version 1") {
		t.Fatalf("ParseBundle(version 1) = %v, want ErrVersion naming version 1", err)
	}
}

// TestInitiateClassic: an initiator without post-quantum runs X3DH with a
// bundle that offers ML-KEM prekeys, after verifying all of it.
func TestInitiateClassic(t *testing.T) {
	sc := scenario{opk: true, kem: true, oneTime: true}
	p := newParty(t, testRand("classic"), sc)
	init, err := InitiateClassic(nil, p.alice, p.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if init.PostQuantum || init.Header.GetKemPrekeyId() != 0 || len(init.Header.GetKemCiphertext()) != 0 {
		t.Fatal("InitiateClassic used an ML-KEM prekey")
	}
	keys := p.responderKeys(sc)
	keys.KEMPreKey = nil
	sk, ad, err := Respond(p.bob, keys, p.alice.IdentityKey(), init.Header)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk, init.SharedSecret) || !bytes.Equal(ad, init.AssociatedData) {
		t.Fatal("responder and initiator disagree")
	}
	// It verifies the ML-KEM prekeys it does not use.
	bad := cloneBundle(t, p.bundle)
	bad.OneTimeKEMPreKeys[0].Signature[0] ^= 1
	if _, err := InitiateClassic(failReader{}, p.alice, bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("InitiateClassic with a bad KEM signature = %v, want ErrBadSignature", err)
	}
}

// TestSignedPreKeyIsIdentityKey is the attack the context prefixes stop: a
// bundle whose signed prekey is the identity key, carrying the identity
// signature as the prekey's, with everything else validly signed. Under one
// shared encoding both checks passed; now the prekey's signature fails, and
// the bundle is refused on every path.
func TestSignedPreKeyIsIdentityKey(t *testing.T) {
	p := newParty(t, testRand("spk is ik"), scenario{kem: true})
	b := cloneBundle(t, p.bundle)
	b.SignedPreKey.Public = bytes.Clone(b.IdentityKey)
	b.SignedPreKey.Signature = bytes.Clone(b.IdentitySignature)
	resignBundle(p.bob, b)
	err := b.Verify()
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "signed prekey") {
		t.Fatalf("Verify = %v, want ErrBadSignature on the signed prekey", err)
	}
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBundle(enc); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ParseBundle = %v, want ErrBadSignature", err)
	}
	if _, err := Initiate(failReader{}, p.alice, b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Initiate = %v, want ErrBadSignature", err)
	}
	// The same bundle with the prekey signed as a prekey verifies: only the
	// context made the difference.
	b.SignedPreKey.Signature = p.bob.SignPreKey(b.SignedPreKey.Public)
	if err := b.Verify(); err != nil {
		t.Fatalf("with a prekey signature: %v", err)
	}
}
