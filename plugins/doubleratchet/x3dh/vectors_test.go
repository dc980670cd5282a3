package x3dh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const vectorsPath = "testdata/vectors.json"

// vectorFile is testdata/vectors.json: Strata's own X3DH/PQXDH known answers.
type vectorFile struct {
	Comment []string     `json:"comment"`
	Cases   []vectorCase `json:"cases"`
}

// vectorCase is one key agreement. Inputs first (every private key, in hex),
// then what the initiator sends and derives. All byte strings are hex.
type vectorCase struct {
	Name string `json:"name"`
	// RandSeed seeds the math/rand/v2 ChaCha8 stream every input below was
	// drawn from, in the order of the fields.
	RandSeed             string `json:"rand_seed"`
	AliceSigningSeed     string `json:"alice_signing_seed"`
	AliceIdentityPrivate string `json:"alice_identity_private"`
	BobSigningSeed       string `json:"bob_signing_seed"`
	BobIdentityPrivate   string `json:"bob_identity_private"`
	SPKID                uint32 `json:"spk_id"`
	SPKPrivate           string `json:"spk_private"`
	OPKID                uint32 `json:"opk_id,omitempty"`
	OPKPrivate           string `json:"opk_private,omitempty"`
	KEMID                uint32 `json:"kem_id,omitempty"`
	KEMSeed              string `json:"kem_seed,omitempty"`
	PQOPKID              uint32 `json:"pqopk_id,omitempty"`
	PQOPKSeed            string `json:"pqopk_seed,omitempty"`
	EphemeralPrivate     string `json:"ephemeral_private"`
	EncapsulationSeed    string `json:"encapsulation_seed,omitempty"`

	BundleSHA256     string `json:"bundle_sha256"`
	AliceIdentityKey string `json:"alice_identity_key"`
	BobIdentityKey   string `json:"bob_identity_key"`
	SPKPublic        string `json:"spk_public"`
	BaseKey          string `json:"base_key"`
	UsedOPKID        uint32 `json:"used_opk_id"`
	UsedKEMID        uint32 `json:"used_kem_id"`
	KEMCiphertext    string `json:"kem_ciphertext,omitempty"`
	PostQuantum      bool   `json:"post_quantum"`
	SK               string `json:"sk"`
	AD               string `json:"ad"`
}

// recorder passes reads through and keeps what was read.
type recorder struct {
	r   io.Reader
	got []byte
}

func (c *recorder) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.got = append(c.got, p[:n]...)
	return n, err
}

func hx(b []byte) string { return hex.EncodeToString(b) }

// generateVector runs a scenario from a fixed ChaCha8 seed through the
// package's API and records inputs and outputs.
func generateVector(t *testing.T, sc scenario) vectorCase {
	t.Helper()
	seed := sha256.Sum256([]byte("strata x3dh vector: " + sc.name))
	r := rand.NewChaCha8(seed)
	p := newParty(t, r, sc)
	rec := &recorder{r: r}
	init, err := Initiate(rec, p.alice, p.bundle)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.alice.MarshalBinary()
	b, _ := p.bob.MarshalBinary()
	bundleSum := sha256.Sum256(enc)
	v := vectorCase{
		Name:                 sc.name,
		RandSeed:             hx(seed[:]),
		AliceSigningSeed:     hx(a[1:33]),
		AliceIdentityPrivate: hx(a[33:]),
		BobSigningSeed:       hx(b[1:33]),
		BobIdentityPrivate:   hx(b[33:]),
		SPKID:                p.spk.ID,
		SPKPrivate:           hx(p.spk.Private),
		EphemeralPrivate:     hx(rec.got[:32]),
		BundleSHA256:         hx(bundleSum[:]),
		AliceIdentityKey:     hx(p.alice.IdentityKey()),
		BobIdentityKey:       hx(p.bob.IdentityKey()),
		SPKPublic:            hx(p.spk.Public),
		BaseKey:              hx(init.Header.BaseKey),
		UsedOPKID:            init.Header.OneTimePrekeyId,
		UsedKEMID:            init.Header.KemPrekeyId,
		KEMCiphertext:        hx(init.Header.KemCiphertext),
		PostQuantum:          init.PostQuantum,
		SK:                   hx(init.SharedSecret),
		AD:                   hx(init.AssociatedData),
	}
	if len(rec.got) > 32 {
		v.EncapsulationSeed = hx(rec.got[32:])
	}
	if p.opk != nil {
		v.OPKID, v.OPKPrivate = p.opk.ID, hx(p.opk.Private)
	}
	if p.kem != nil {
		v.KEMID, v.KEMSeed = p.kem.ID, hx(p.kem.Seed)
	}
	if p.pqopk != nil {
		v.PQOPKID, v.PQOPKSeed = p.pqopk.ID, hx(p.pqopk.Seed)
	}
	return v
}

var vectorComment = []string{
	"Strata X3DH (rev. 1) / PQXDH (rev. 3) known answers for the profile in package x3dh's doc.",
	"Strata's own vectors: no published X3DH/PQXDH vector files exist (shared/testdata/doubleratchet/README.md).",
	"Regenerate with: go test ./plugins/doubleratchet/x3dh/ -run TestVectors -update (see testdata/README.md).",
	"Hex throughout. EncodeEC = 05||32 bytes, EncodeKEM = 0a||1568 bytes; ML-KEM private keys are 64-byte FIPS 203 seeds.",
}

func TestVectors(t *testing.T) {
	var got vectorFile
	got.Comment = vectorComment
	for _, sc := range scenarios {
		got.Cases = append(got.Cases, generateVector(t, sc))
	}
	if *update {
		out, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.FromSlash(vectorsPath), append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
	}
	raw, err := os.ReadFile(filepath.FromSlash(vectorsPath))
	if err != nil {
		t.Fatal(err)
	}
	var want vectorFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Cases) != len(scenarios) {
		t.Fatalf("%s has %d cases, want %d", vectorsPath, len(want.Cases), len(scenarios))
	}
	for i, w := range want.Cases {
		t.Run(w.Name, func(t *testing.T) {
			// 1. The implementation reproduces the file from the seed.
			g := got.Cases[i]
			gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
			for f := range gv.NumField() {
				if !reflect.DeepEqual(gv.Field(f).Interface(), wv.Field(f).Interface()) {
					t.Errorf("%s: got %v, file has %v", gv.Type().Field(f).Name, gv.Field(f).Interface(), wv.Field(f).Interface())
				}
			}
			// 2. The file's SK and AD follow from its private keys by the
			// profile, computed here with the standard library only.
			handCheck(t, w)
			// 3. The responder derives them from the file's keys and header.
			respondFromVector(t, w)
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handCheck recomputes SK and AD from the vector's private keys with
// crypto/ecdh, crypto/mlkem (+ mlkemtest for derandomized encapsulation) and
// crypto/hkdf: an implementation independent of the package's (circl).
func handCheck(t *testing.T, v vectorCase) {
	t.Helper()
	x := ecdh.X25519()
	priv := func(s string) *ecdh.PrivateKey {
		t.Helper()
		k, err := x.NewPrivateKey(unhex(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ecdhOut := func(k *ecdh.PrivateKey, pub *ecdh.PublicKey) []byte {
		t.Helper()
		out, err := k.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	encEC := func(p *ecdh.PublicKey) []byte { return append([]byte{0x05}, p.Bytes()...) }

	ikA, ikB, spk, ek := priv(v.AliceIdentityPrivate), priv(v.BobIdentityPrivate), priv(v.SPKPrivate), priv(v.EphemeralPrivate)
	if hx(encEC(ek.PublicKey())) != v.BaseKey {
		t.Error("base_key is not EncodeEC(X25519(ephemeral_private))")
	}
	if hx(encEC(spk.PublicKey())) != v.SPKPublic || hx(encEC(ikA.PublicKey())) != v.AliceIdentityKey || hx(encEC(ikB.PublicKey())) != v.BobIdentityKey {
		t.Error("public keys do not match the private keys")
	}

	ikm := bytes.Repeat([]byte{0xff}, 32)
	ikm = append(ikm, ecdhOut(ikA, spk.PublicKey())...) // DH1 = DH(IK_A, SPK_B)
	ikm = append(ikm, ecdhOut(ek, ikB.PublicKey())...)  // DH2 = DH(EK_A, IK_B)
	ikm = append(ikm, ecdhOut(ek, spk.PublicKey())...)  // DH3 = DH(EK_A, SPK_B)
	if v.UsedOPKID != 0 {
		if v.UsedOPKID != v.OPKID {
			t.Fatalf("used OPK %d, vector has OPK %d", v.UsedOPKID, v.OPKID)
		}
		ikm = append(ikm, ecdhOut(ek, priv(v.OPKPrivate).PublicKey())...) // DH4 = DH(EK_A, OPK_B)
	}
	ad := append(encEC(ikA.PublicKey()), encEC(ikB.PublicKey())...)
	info := "Strata_X3DH_X25519_SHA-256"
	if v.PostQuantum {
		info = "Strata_PQXDH_X25519_SHA-256_ML-KEM-1024"
		seed := v.KEMSeed
		if v.PQOPKSeed != "" {
			seed = v.PQOPKSeed // a one-time KEM prekey is preferred
			if v.UsedKEMID != v.PQOPKID {
				t.Fatalf("used KEM prekey %d, want the one-time one %d", v.UsedKEMID, v.PQOPKID)
			}
		} else if v.UsedKEMID != v.KEMID {
			t.Fatalf("used KEM prekey %d, want the last-resort one %d", v.UsedKEMID, v.KEMID)
		}
		dk, err := mlkem.NewDecapsulationKey1024(unhex(t, seed))
		if err != nil {
			t.Fatal(err)
		}
		ss, ct, err := mlkemtest.Encapsulate1024(dk.EncapsulationKey(), unhex(t, v.EncapsulationSeed))
		if err != nil {
			t.Fatal(err)
		}
		if hx(ct) != v.KEMCiphertext {
			t.Error("kem_ciphertext is not ML-KEM-1024.Encaps(PQPK_B, encapsulation_seed) per crypto/mlkem")
		}
		ss2, err := dk.Decapsulate(unhex(t, v.KEMCiphertext))
		if err != nil || !bytes.Equal(ss, ss2) {
			t.Fatalf("decapsulation: %v", err)
		}
		ikm = append(ikm, ss...)
		ad = append(ad, 0x0a)
		ad = append(ad, dk.EncapsulationKey().Bytes()...)
	} else if v.KEMCiphertext != "" || v.UsedKEMID != 0 {
		t.Fatal("X3DH vector with a KEM ciphertext")
	}
	sk, err := hkdf.Key(sha256.New, ikm, make([]byte, 32), info, 32)
	if err != nil {
		t.Fatal(err)
	}
	if hx(sk) != v.SK {
		t.Errorf("hand-computed SK %x, file has %s", sk, v.SK)
	}
	if hx(ad) != v.AD {
		t.Errorf("hand-computed AD differs from the file's")
	}
}

// respondFromVector runs Respond on keys and a header built from the file.
func respondFromVector(t *testing.T, v vectorCase) {
	t.Helper()
	bob, err := UnmarshalIdentity(append(append([]byte{1}, unhex(t, v.BobSigningSeed)...), unhex(t, v.BobIdentityPrivate)...))
	if err != nil {
		t.Fatal(err)
	}
	keys := ResponderKeys{SignedPreKey: &PreKeyPair{ID: v.SPKID, Private: unhex(t, v.SPKPrivate)}}
	if v.UsedOPKID != 0 {
		keys.OneTimePreKey = &PreKeyPair{ID: v.OPKID, Private: unhex(t, v.OPKPrivate)}
	}
	if v.UsedKEMID != 0 {
		seed := v.KEMSeed
		if v.UsedKEMID == v.PQOPKID {
			seed = v.PQOPKSeed
		}
		dk, err := mlkem.NewDecapsulationKey1024(unhex(t, seed))
		if err != nil {
			t.Fatal(err)
		}
		keys.KEMPreKey = &KEMPreKeyPair{ID: v.UsedKEMID, Seed: unhex(t, seed), Public: append([]byte{0x0a}, dk.EncapsulationKey().Bytes()...)}
	}
	hdr := &wirepb.PreKeyMessage{
		IdentityKey:     unhex(t, v.AliceIdentityKey),
		BaseKey:         unhex(t, v.BaseKey),
		SignedPrekeyId:  v.SPKID,
		OneTimePrekeyId: v.UsedOPKID,
		KemPrekeyId:     v.UsedKEMID,
		KemCiphertext:   unhex(t, v.KEMCiphertext),
	}
	sk, ad, err := Respond(bob, keys, unhex(t, v.AliceIdentityKey), hdr)
	if err != nil {
		t.Fatal(err)
	}
	if hx(sk) != v.SK || hx(ad) != v.AD {
		t.Error("Respond on the file's keys does not give the file's SK and AD")
	}
}

// TestX25519RFC7748 checks the package's X25519 (circl) against RFC 7748
// §6.1, and the standard library against the same values.
func TestX25519RFC7748(t *testing.T) {
	raw, err := os.ReadFile(filepath.FromSlash("testdata/rfc7748.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		AlicePrivate string `json:"alice_private"`
		AlicePublic  string `json:"alice_public"`
		BobPrivate   string `json:"bob_private"`
		BobPublic    string `json:"bob_public"`
		Shared       string `json:"shared"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	arr := func(s string) *[32]byte { return (*[32]byte)(unhex(t, s)) }
	a, b := arr(v.AlicePrivate), arr(v.BobPrivate)
	if pa, pb := publicKey(a), publicKey(b); hx(pa[:]) != v.AlicePublic || hx(pb[:]) != v.BobPublic {
		t.Fatalf("public keys %x %x", pa, pb)
	}
	var k1, k2 [32]byte
	if err := dh(&k1, a, arr(v.BobPublic)); err != nil {
		t.Fatal(err)
	}
	if err := dh(&k2, b, arr(v.AlicePublic)); err != nil {
		t.Fatal(err)
	}
	if hx(k1[:]) != v.Shared || hx(k2[:]) != v.Shared {
		t.Fatalf("shared %x %x, want %s", k1, k2, v.Shared)
	}
	std, _ := ecdh.X25519().NewPrivateKey(a[:])
	bp, _ := ecdh.X25519().NewPublicKey(unhex(t, v.BobPublic))
	if s, err := std.ECDH(bp); err != nil || hx(s) != v.Shared {
		t.Fatalf("crypto/ecdh: %x %v", s, err)
	}
	// The all-zero output is refused and the output wiped.
	var zero, out [32]byte
	out[0] = 1
	if err := dh(&out, a, &zero); err == nil || out != zero {
		t.Fatal("dh accepted the all-zero point")
	}
}
