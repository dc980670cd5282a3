package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

// hexBytes is a []byte that encodes as a hex string in JSON.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type rkVector struct {
	RK            hexBytes `json:"rk"`
	DHOut         hexBytes `json:"dh_out"`
	RootKey       hexBytes `json:"root_key"`
	ChainKey      hexBytes `json:"chain_key"`
	NextHeaderKey hexBytes `json:"next_header_key"`
}

type ckStep struct {
	MessageKey   hexBytes `json:"message_key"`
	NextChainKey hexBytes `json:"next_chain_key"`
}

type ckVector struct {
	CK    hexBytes `json:"ck"`
	Steps []ckStep `json:"steps"`
}

type encVector struct {
	MK         hexBytes `json:"mk"`
	Plaintext  hexBytes `json:"plaintext"`
	AD         hexBytes `json:"ad"`
	Key        hexBytes `json:"key"`
	Nonce      hexBytes `json:"nonce"`
	Ciphertext hexBytes `json:"ciphertext"`
}

type hkVector struct {
	SK   hexBytes `json:"sk"`
	HKA  hexBytes `json:"shared_hka"`
	NHKB hexBytes `json:"shared_nhkb"`
}

type hdrVector struct {
	HK        hexBytes `json:"hk"`
	Nonce     hexBytes `json:"nonce"`
	AD        hexBytes `json:"ad"`
	DH        hexBytes `json:"dh"`
	PN        uint32   `json:"pn"`
	N         uint32   `json:"n"`
	Plaintext hexBytes `json:"plaintext"`
	Encrypted hexBytes `json:"encrypted"`
}

// step is one transcript event. send: From encrypts Plaintext as message
// ID, giving Header and Ciphertext. deliver: the other party decrypts
// message ID and must get its plaintext, or (Expect "duplicate") ErrDuplicate.
type step struct {
	Op         string   `json:"op"`
	From       string   `json:"from,omitempty"`
	ID         string   `json:"id"`
	Plaintext  string   `json:"plaintext,omitempty"`
	Expect     string   `json:"expect,omitempty"`
	Header     hexBytes `json:"header,omitempty"`
	Ciphertext hexBytes `json:"ciphertext,omitempty"`
}

type transcript struct {
	AliceSeed     string   `json:"alice_rand_seed"`
	BobSeed       string   `json:"bob_rand_seed"`
	SK            hexBytes `json:"sk"`
	BobSPKPrivate hexBytes `json:"bob_spk_private"`
	BobSPKPublic  hexBytes `json:"bob_spk_public"`
	AD            hexBytes `json:"ad"`
	NowUnix       int64    `json:"now_unix"`
	Steps         []step   `json:"steps"`
	AliceStateSHA hexBytes `json:"alice_final_state_sha256"`
	BobStateSHA   hexBytes `json:"bob_final_state_sha256"`
}

type vectors struct {
	Comment    string      `json:"comment"`
	KDFRKHE    []rkVector  `json:"kdf_rk_he"`
	KDFCK      ckVector    `json:"kdf_ck"`
	Encrypt    []encVector `json:"encrypt"`
	HeaderKeys []hkVector  `json:"header_keys"`
	Header     []hdrVector `json:"header_encrypt"`
	Transcript transcript  `json:"transcript"`
}

// bytesFrom returns n deterministic bytes for a label.
func bytesFrom(label string, n int) []byte {
	b := make([]byte, n)
	seeded(label).Read(b)
	return b
}

// transcriptScript is the conversation recorded in the vectors: both
// directions, DH ratchet steps, skipped keys in the current and in older
// chains, a replay.
var transcriptScript = []step{
	{Op: "send", From: "alice", ID: "a0", Plaintext: "a0: hello Bob"},
	{Op: "send", From: "alice", ID: "a1", Plaintext: "a1"},
	{Op: "send", From: "alice", ID: "a2", Plaintext: "a2"},
	{Op: "deliver", ID: "a0"},
	{Op: "deliver", ID: "a2"},
	{Op: "send", From: "bob", ID: "b0", Plaintext: "b0: hello Alice"},
	{Op: "send", From: "bob", ID: "b1", Plaintext: "b1"},
	{Op: "deliver", ID: "b1"},
	{Op: "deliver", ID: "a1"},
	{Op: "send", From: "alice", ID: "a3", Plaintext: "a3"},
	{Op: "send", From: "alice", ID: "a4", Plaintext: "a4"},
	{Op: "deliver", ID: "a4"},
	{Op: "deliver", ID: "b0"},
	{Op: "send", From: "bob", ID: "b2", Plaintext: "b2"},
	{Op: "deliver", ID: "b2"},
	{Op: "deliver", ID: "a3"},
	{Op: "send", From: "alice", ID: "a5", Plaintext: "a5"},
	{Op: "deliver", ID: "a5"},
	{Op: "deliver", ID: "a5", Expect: "duplicate"},
	{Op: "send", From: "alice", ID: "a6", Plaintext: "a6: older chain, delivered late"},
	{Op: "send", From: "bob", ID: "b3", Plaintext: "b3"},
	{Op: "deliver", ID: "b3"},
	{Op: "send", From: "alice", ID: "a7", Plaintext: "a7"},
	{Op: "deliver", ID: "a7"},
	{Op: "deliver", ID: "a6"},
	{Op: "send", From: "bob", ID: "b4", Plaintext: ""},
	{Op: "deliver", ID: "b4"},
}

func generateVectors(t *testing.T) *vectors {
	v := &vectors{Comment: "Strata's own known-answer vectors for plugins/doubleratchet/ratchet; see README.md. Regenerate: go test -run TestVectors -update"}
	for i := range 3 {
		in := rkVector{RK: bytesFrom(fmt.Sprint("vectors/rk/", i), 32), DHOut: bytesFrom(fmt.Sprint("vectors/dh/", i), 32)}
		rk, ck, nhk, err := kdfRKHE(in.RK, in.DHOut)
		if err != nil {
			t.Fatal(err)
		}
		in.RootKey, in.ChainKey, in.NextHeaderKey = rk[:], ck[:], nhk[:]
		v.KDFRKHE = append(v.KDFRKHE, in)
	}
	ck := [32]byte(bytesFrom("vectors/ck", 32))
	v.KDFCK.CK = bytes.Clone(ck[:])
	for range 5 {
		mk, next := kdfCK(&ck)
		v.KDFCK.Steps = append(v.KDFCK.Steps, ckStep{MessageKey: bytes.Clone(mk[:]), NextChainKey: bytes.Clone(next[:])})
		ck = next
	}
	for i, ptLen := range []int{0, 1, 64, 200} {
		mk := [32]byte(bytesFrom(fmt.Sprint("vectors/mk/", i), 32))
		e := encVector{MK: mk[:], Plaintext: bytesFrom(fmt.Sprint("vectors/pt/", i), ptLen), AD: bytesFrom(fmt.Sprint("vectors/ad/", i), 2*i)}
		key, nonce, err := messageKeyNonce(&mk)
		if err != nil {
			t.Fatal(err)
		}
		e.Key, e.Nonce = key[:], nonce[:]
		if e.Ciphertext, err = encryptMessage(nil, &mk, e.Plaintext, e.AD); err != nil {
			t.Fatal(err)
		}
		v.Encrypt = append(v.Encrypt, e)
	}
	for i := range 2 {
		sk := bytesFrom(fmt.Sprint("vectors/sk/", i), 32)
		hka, nhkb, err := headerKeys(sk)
		if err != nil {
			t.Fatal(err)
		}
		v.HeaderKeys = append(v.HeaderKeys, hkVector{SK: sk, HKA: hka[:], NHKB: nhkb[:]})
	}
	for i := range 2 {
		h := hdrVector{
			HK:    bytesFrom(fmt.Sprint("vectors/hk/", i), 32),
			Nonce: bytesFrom(fmt.Sprint("vectors/hnonce/", i), 24),
			AD:    bytesFrom(fmt.Sprint("vectors/had/", i), 3*i),
			DH:    bytesFrom(fmt.Sprint("vectors/hdh/", i), 32),
			PN:    uint32(7 * i), N: uint32(0x01020304 * i),
		}
		hdr := encodeHeader((*[32]byte)(h.DH), h.PN, h.N)
		h.Plaintext = hdr[:]
		buf := make([]byte, encHeaderLen)
		copy(buf, h.Nonce)
		if err := hencrypt(buf, (*[32]byte)(h.HK), &hdr, h.AD); err != nil {
			t.Fatal(err)
		}
		h.Encrypted = buf
		v.Header = append(v.Header, h)
	}
	tr := transcript{AliceSeed: "vectors/transcript/alice", BobSeed: "vectors/transcript/bob",
		SK: bytesFrom("vectors/transcript/sk", 32), BobSPKPrivate: bytesFrom("vectors/transcript/spk", 32),
		AD: []byte("Strata test AD: EncodeEC(IK_A) || EncodeEC(IK_B)"), NowUnix: 1793534400}
	priv, err := ecdh.X25519().NewPrivateKey(tr.BobSPKPrivate)
	if err != nil {
		t.Fatal(err)
	}
	tr.BobSPKPublic = priv.PublicKey().Bytes()
	tr.Steps = append(tr.Steps, transcriptScript...)
	runTranscript(t, &tr, true)
	v.Transcript = tr
	return v
}

// runTranscript plays tr. With fill it records each send's output and the
// final state hashes; otherwise it checks them.
func runTranscript(t *testing.T, tr *transcript, fill bool) {
	t.Helper()
	ar, br := seeded(tr.AliceSeed), seeded(tr.BobSeed)
	alice, err := InitAlice(ar, tr.SK, tr.BobSPKPublic, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	bob, err := InitBob(tr.SK, tr.BobSPKPrivate, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(tr.NowUnix, 0)
	type sent struct {
		m    Message
		pt   string
		from string
	}
	msgs := map[string]sent{}
	for i := range tr.Steps {
		st := &tr.Steps[i]
		switch st.Op {
		case "send":
			s, r := alice, ar
			if st.From == "bob" {
				s, r = bob, br
			}
			m, err := s.Encrypt(r, []byte(st.Plaintext), tr.AD)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if fill {
				st.Header, st.Ciphertext = m.Header, m.Ciphertext
			} else if !bytes.Equal(m.Header, st.Header) || !bytes.Equal(m.Ciphertext, st.Ciphertext) {
				t.Fatalf("step %d (%s): output differs from the vector", i, st.ID)
			}
			// Deliver what the file says, so a decoder bug cannot hide behind a matching encoder.
			msgs[st.ID] = sent{Message{bytes.Clone(st.Header), bytes.Clone(st.Ciphertext)}, st.Plaintext, st.From}
		case "deliver":
			m, ok := msgs[st.ID]
			if !ok {
				t.Fatalf("step %d: unknown message %q", i, st.ID)
			}
			s, r := bob, br
			if m.from == "bob" {
				s, r = alice, ar
			}
			pt, err := s.Decrypt(r, now, m.m, tr.AD)
			switch st.Expect {
			case "duplicate":
				if !errors.Is(err, ErrDuplicate) {
					t.Fatalf("step %d (%s): %v, want ErrDuplicate", i, st.ID, err)
				}
			default:
				if err != nil || string(pt) != m.pt {
					t.Fatalf("step %d (%s): Decrypt = %q, %v", i, st.ID, pt, err)
				}
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.Op)
		}
	}
	ah, bh := sha256.Sum256(marshal(t, alice)), sha256.Sum256(marshal(t, bob))
	if fill {
		tr.AliceStateSHA, tr.BobStateSHA = ah[:], bh[:]
	} else if !bytes.Equal(ah[:], tr.AliceStateSHA) || !bytes.Equal(bh[:], tr.BobStateSHA) {
		t.Fatal("final state encodings differ from the vector")
	}
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	if *update {
		v := generateVectors(t)
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.FromSlash(vectorsFile), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(vectorsFile))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// --- Independent reference computations (stdlib calls only; they share no
// code with the package under test). ---

func refHMAC(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// refHKDF is RFC 5869 written out with HMAC-SHA256.
func refHKDF(salt, ikm []byte, info string, n int) []byte {
	if salt == nil {
		salt = make([]byte, 32)
	}
	prk := refHMAC(salt, ikm)
	var okm, prev []byte
	for i := byte(1); len(okm) < n; i++ {
		prev = refHMAC(prk, append(append(bytes.Clone(prev), info...), i))
		okm = append(okm, prev...)
	}
	return okm[:n]
}

func refHeader(dh []byte, pn, n uint32) []byte {
	b := append([]byte{1}, dh...)
	b = binary.BigEndian.AppendUint32(b, pn)
	return binary.BigEndian.AppendUint32(b, n)
}

func refHencrypt(t *testing.T, hk, nonce, hdr, ad []byte) []byte {
	x, err := chacha20poly1305.NewX(hk)
	if err != nil {
		t.Fatal(err)
	}
	return x.Seal(bytes.Clone(nonce), nonce, hdr, ad)
}

func refEncrypt(t *testing.T, mk, pt, ad []byte) []byte {
	okm := refHKDF(make([]byte, 32), mk, "Strata_DR_MessageKeys", 44)
	c, err := chacha20poly1305.New(okm[:32])
	if err != nil {
		t.Fatal(err)
	}
	return c.Seal(nil, okm[32:44], pt, ad)
}

func refConcat(ad, encHdr []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(ad)))
	return append(append(b, ad...), encHdr...)
}

func refDH(t *testing.T, priv, pub []byte) []byte {
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.ECDH(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func refPub(t *testing.T, priv []byte) []byte {
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

func eq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

func TestVectors(t *testing.T) {
	v := loadVectors(t)
	t.Run("KDF_RK_HE", func(t *testing.T) {
		if len(v.KDFRKHE) == 0 {
			t.Fatal("no vectors")
		}
		for _, x := range v.KDFRKHE {
			rk, ck, nhk, err := kdfRKHE(x.RK, x.DHOut)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "root key", rk[:], x.RootKey)
			eq(t, "chain key", ck[:], x.ChainKey)
			eq(t, "next header key", nhk[:], x.NextHeaderKey)
			ref := refHKDF(x.RK, x.DHOut, "Strata_DR_RootKDF", 96)
			eq(t, "reference KDF_RK_HE", ref, append(append(bytes.Clone(x.RootKey), x.ChainKey...), x.NextHeaderKey...))
		}
	})
	t.Run("KDF_CK", func(t *testing.T) {
		ck := [32]byte(v.KDFCK.CK)
		refCK := bytes.Clone(v.KDFCK.CK)
		if len(v.KDFCK.Steps) < 3 {
			t.Fatal("too few steps")
		}
		for i, s := range v.KDFCK.Steps {
			mk, next := kdfCK(&ck)
			eq(t, fmt.Sprint("message key ", i), mk[:], s.MessageKey)
			eq(t, fmt.Sprint("chain key ", i), next[:], s.NextChainKey)
			h := hmac.New(sha256.New, refCK)
			h.Write([]byte{1})
			eq(t, fmt.Sprint("reference message key ", i), h.Sum(nil), s.MessageKey)
			h = hmac.New(sha256.New, refCK)
			h.Write([]byte{2})
			refCK = h.Sum(nil)
			eq(t, fmt.Sprint("reference chain key ", i), refCK, s.NextChainKey)
			ck = next
		}
	})
	t.Run("ENCRYPT", func(t *testing.T) {
		for i, e := range v.Encrypt {
			mk := [32]byte(e.MK)
			key, nonce, err := messageKeyNonce(&mk)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "key", key[:], e.Key)
			eq(t, "nonce", nonce[:], e.Nonce)
			ct, err := encryptMessage(nil, &mk, e.Plaintext, e.AD)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, fmt.Sprint("ciphertext ", i), ct, e.Ciphertext)
			eq(t, "reference key ‖ nonce", refHKDF(make([]byte, 32), e.MK, "Strata_DR_MessageKeys", 44), append(bytes.Clone(e.Key), e.Nonce...))
			eq(t, "reference ciphertext", refEncrypt(t, e.MK, e.Plaintext, e.AD), e.Ciphertext)
			pt, err := decryptMessage(&mk, e.Ciphertext, e.AD)
			if err != nil || !bytes.Equal(pt, e.Plaintext) {
				t.Errorf("DECRYPT = %x, %v", pt, err)
			}
		}
	})
	t.Run("HeaderKeys", func(t *testing.T) {
		for _, h := range v.HeaderKeys {
			hka, nhkb, err := headerKeys(h.SK)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "hka", hka[:], h.HKA)
			eq(t, "nhkb", nhkb[:], h.NHKB)
			eq(t, "reference", refHKDF(make([]byte, 32), h.SK, "Strata_DR_HeaderKeys", 64), append(bytes.Clone(h.HKA), h.NHKB...))
		}
	})
	t.Run("HENCRYPT", func(t *testing.T) {
		for _, h := range v.Header {
			hdr := encodeHeader((*[32]byte)(h.DH), h.PN, h.N)
			eq(t, "header plaintext", hdr[:], h.Plaintext)
			eq(t, "reference header plaintext", refHeader(h.DH, h.PN, h.N), h.Plaintext)
			buf := make([]byte, encHeaderLen)
			copy(buf, h.Nonce)
			if err := hencrypt(buf, (*[32]byte)(h.HK), &hdr, h.AD); err != nil {
				t.Fatal(err)
			}
			eq(t, "encrypted header", buf, h.Encrypted)
			eq(t, "reference encrypted header", refHencrypt(t, h.HK, h.Nonce, h.Plaintext, h.AD), h.Encrypted)
			got, ok := hdecrypt((*[32]byte)(h.HK), h.Encrypted, h.AD)
			if !ok || got.pn != h.PN || got.n != h.N || !bytes.Equal(got.dh[:], h.DH) {
				t.Error("HDECRYPT does not invert HENCRYPT")
			}
		}
	})
	t.Run("Transcript", func(t *testing.T) {
		tr := v.Transcript
		if len(tr.Steps) != len(transcriptScript) {
			t.Fatalf("%d steps in the file, %d in the script", len(tr.Steps), len(transcriptScript))
		}
		runTranscript(t, &tr, false)
		checkTranscriptByHand(t, &tr)
	})
}

// checkTranscriptByHand recomputes the transcript's a0, a1 and b0 from the
// seeds and the spec with the reference functions above.
func checkTranscriptByHand(t *testing.T, tr *transcript) {
	find := func(id string) step {
		for _, s := range tr.Steps {
			if s.Op == "send" && s.ID == id {
				return s
			}
		}
		t.Fatalf("no send %s", id)
		return step{}
	}
	// Randomness in call order: Alice: init key (32), a0 nonce (24), a1
	// nonce (24), …; Bob: ratchet key when opening a0 (32), b0 nonce (24).
	aliceRand := bytesFrom(tr.AliceSeed, 32+24+24)
	bobRand := bytesFrom(tr.BobSeed, 32+24)
	hk := refHKDF(make([]byte, 32), tr.SK, "Strata_DR_HeaderKeys", 64)
	hka, nhkb := hk[:32], hk[32:]

	// Alice: RatchetInitAliceHE.
	aPriv := aliceRand[:32]
	aPub := refPub(t, aPriv)
	okm := refHKDF(tr.SK, refDH(t, aPriv, tr.BobSPKPublic), "Strata_DR_RootKDF", 96)
	aliceCKs := okm[32:64]
	// a0: N = 0, PN = 0, under HKs = hka.
	a0 := find("a0")
	encHdr := refHencrypt(t, hka, aliceRand[32:56], refHeader(aPub, 0, 0), tr.AD)
	eq(t, "a0 header by hand", encHdr, a0.Header)
	mk0 := refHMAC(aliceCKs, []byte{1})
	eq(t, "a0 ciphertext by hand", refEncrypt(t, mk0, []byte(a0.Plaintext), refConcat(tr.AD, encHdr)), a0.Ciphertext)
	// a1: next chain key.
	a1 := find("a1")
	ck1 := refHMAC(aliceCKs, []byte{2})
	encHdr = refHencrypt(t, hka, aliceRand[56:80], refHeader(aPub, 0, 1), tr.AD)
	eq(t, "a1 header by hand", encHdr, a1.Header)
	eq(t, "a1 ciphertext by hand", refEncrypt(t, refHMAC(ck1, []byte{1}), []byte(a1.Plaintext), refConcat(tr.AD, encHdr)), a1.Ciphertext)

	// Bob: RatchetInitBobHE (RK = SK), then DHRatchetHE on a0.
	okmR := refHKDF(tr.SK, refDH(t, tr.BobSPKPrivate, aPub), "Strata_DR_RootKDF", 96)
	eq(t, "Bob's receiving chain = Alice's sending chain", okmR[32:64], aliceCKs)
	bPriv := bobRand[:32]
	bPub := refPub(t, bPriv)
	okmS := refHKDF(okmR[:32], refDH(t, bPriv, aPub), "Strata_DR_RootKDF", 96)
	bobCKs := okmS[32:64]
	// b0: HKs = NHKs = nhkb, PN = 0 (Bob had sent nothing), N = 0.
	b0 := find("b0")
	encHdr = refHencrypt(t, nhkb, bobRand[32:56], refHeader(bPub, 0, 0), tr.AD)
	eq(t, "b0 header by hand", encHdr, b0.Header)
	eq(t, "b0 ciphertext by hand", refEncrypt(t, refHMAC(bobCKs, []byte{1}), []byte(b0.Plaintext), refConcat(tr.AD, encHdr)), b0.Ciphertext)
}
