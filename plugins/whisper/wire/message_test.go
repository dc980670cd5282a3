package wire

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
)

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func samePub(a, b *ecdsa.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(crypto.FromECDSAPub(a), crypto.FromECDSAPub(b))
}

func TestRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 0)
	symKey := bytes.Repeat([]byte{0x42}, 32)
	recipient := genKey(t)
	signer := genKey(t)
	sizes := []int{0, 1, 100, 189, 190, 191, 253, 254, 255, 256, 300, 70000}
	if testing.Short() {
		sizes = []int{0, 1, 189, 190, 254, 255, 300}
	}
	for _, asym := range []bool{false, true} {
		for _, signed := range []bool{false, true} {
			for _, size := range sizes {
				for _, explicitPad := range []bool{false, true} {
					name := fmt.Sprintf("asym=%v/signed=%v/size=%d/pad=%v", asym, signed, size, explicitPad)
					t.Run(name, func(t *testing.T) {
						payload := bytes.Repeat([]byte{byte(size)}, size)
						p := &MessageParams{TTL: 30, Topic: TopicType{1, 2, 3, 4}, Payload: payload, WorkTime: 5}
						if size <= 300 {
							p.PoW = DefaultMinimumPoW
						}
						if asym {
							p.Dst = &recipient.PublicKey
						} else {
							p.KeySym = symKey
						}
						if signed {
							p.Src = signer
						}
						if explicitPad {
							p.Padding = []byte("explicit padding")
						}
						msg, err := NewSentMessage(p)
						if err != nil {
							t.Fatal(err)
						}
						plainLen := len(msg.Raw)
						if signed {
							plainLen += signatureLength
						}
						if !explicitPad && plainLen%padSizeLimit != 0 {
							t.Fatalf("plaintext length %d not a multiple of %d", plainLen, padSizeLimit)
						}
						env, err := msg.Wrap(p, now)
						if err != nil {
							t.Fatal(err)
						}
						if env.Expiry != uint32(now.Unix())+30 || env.TTL != 30 {
							t.Fatalf("expiry %d ttl %d", env.Expiry, env.TTL)
						}
						overhead := aesNonceLength + 16
						if asym {
							overhead = 113
						}
						if len(env.Data) != plainLen+overhead {
							t.Fatalf("data %d bytes, want %d", len(env.Data), plainLen+overhead)
						}
						if p.PoW > 0 && env.PoW() < p.PoW {
							t.Fatalf("PoW %v < %v", env.PoW(), p.PoW)
						}
						if err := env.Validate(now, DefaultMaxMessageSize, p.PoW); err != nil {
							t.Fatal(err)
						}
						dec, err := DecodeEnvelope(env.Encode())
						if err != nil {
							t.Fatal(err)
						}
						var rm *ReceivedMessage
						if asym {
							rm, err = OpenAsymmetric(dec, recipient)
						} else {
							rm, err = OpenSymmetric(dec, symKey)
						}
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(rm.Payload, payload) {
							t.Fatalf("payload mismatch: %d vs %d bytes", len(rm.Payload), len(payload))
						}
						if explicitPad && !bytes.Equal(rm.Padding, p.Padding) {
							t.Fatalf("padding %q", rm.Padding)
						}
						if signed != (rm.Src != nil) || (signed && !samePub(rm.Src, &signer.PublicKey)) {
							t.Fatalf("signer mismatch")
						}
						if signed && (len(rm.Signature) != 65 || rm.Signature[64] > 1) {
							t.Fatalf("signature %x", rm.Signature)
						}
						if rm.Topic != p.Topic || rm.TTL != 30 || rm.Sent != uint32(now.Unix()) || rm.EnvelopeHash != env.Hash() || rm.PoW != env.PoW() {
							t.Fatalf("metadata %+v", rm)
						}
					})
				}
			}
		}
	}
}

func TestWrapDefaultsAndErrors(t *testing.T) {
	now := time.Unix(1700000000, 0)
	p := &MessageParams{KeySym: bytes.Repeat([]byte{1}, 32), Payload: []byte("x")}
	msg, _ := NewSentMessage(p)
	env, err := msg.Wrap(p, now)
	if err != nil || env.TTL != DefaultTTL || p.TTL != 0 {
		t.Fatalf("default TTL: %v %+v", err, env)
	}
	bad := []struct {
		name string
		p    MessageParams
		want error
	}{
		{"no key", MessageParams{Payload: []byte("x")}, ErrNoKey},
		{"short sym key", MessageParams{KeySym: make([]byte, 16)}, ErrInvalidKey},
		{"zero sym key", MessageParams{KeySym: make([]byte, 32)}, ErrInvalidKey},
		{"zero pub", MessageParams{Dst: &ecdsa.PublicKey{}}, ErrInvalidKey},
		{"bad signer", MessageParams{KeySym: bytes.Repeat([]byte{1}, 32), Src: &ecdsa.PrivateKey{}}, ErrInvalidKey},
	}
	for _, c := range bad {
		msg, err := NewSentMessage(&c.p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := msg.Wrap(&c.p, now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := NewSentMessage(&MessageParams{Payload: make([]byte, 1<<24)}); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("huge payload: %v", err)
	}
}

func TestSizeField(t *testing.T) {
	for _, c := range []struct{ n, l int }{{0, 1}, {255, 1}, {256, 2}, {65535, 2}, {65536, 3}} {
		msg, err := NewSentMessage(&MessageParams{Payload: make([]byte, c.n), Padding: []byte{0}})
		if err != nil {
			t.Fatal(err)
		}
		if int(msg.Raw[0]) != c.l {
			t.Errorf("payload %d: flags %#x, want size field %d", c.n, msg.Raw[0], c.l)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	now := time.Unix(1700000000, 0)
	key := bytes.Repeat([]byte{7}, 32)
	otherKey := bytes.Repeat([]byte{8}, 32)
	priv, other := genKey(t), genKey(t)
	signer := genKey(t)

	wrap := func(p *MessageParams) *Envelope {
		msg, err := NewSentMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		env, err := msg.Wrap(p, now)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	symEnv := wrap(&MessageParams{KeySym: key, Payload: []byte("hello"), Src: signer})
	asymEnv := wrap(&MessageParams{Dst: &priv.PublicKey, Payload: []byte("hello")})
	tamper := func(e *Envelope, i int) *Envelope {
		c := *e
		c.Data = append([]byte(nil), e.Data...)
		c.Data[i] ^= 1
		return &c
	}
	// Plaintexts encrypted correctly but with bad contents.
	symWith := func(plain []byte) *Envelope {
		d, err := encryptSymmetric(plain, key)
		if err != nil {
			t.Fatal(err)
		}
		return &Envelope{Expiry: 100, TTL: 50, Data: d}
	}
	signedPlain := func(v byte) []byte {
		raw, err := sign([]byte{1, 3, 'a', 'b', 'c', 0, 0}, signer)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] = v
		return raw
	}
	zeroR := signedPlain(0)
	copy(zeroR[len(zeroR)-65:], make([]byte, 64))

	sym := func(e *Envelope, k []byte) func() error {
		return func() error { _, err := OpenSymmetric(e, k); return err }
	}
	asym := func(e *Envelope, k *ecdsa.PrivateKey) func() error {
		return func() error { _, err := OpenAsymmetric(e, k); return err }
	}
	cases := []struct {
		name string
		open func() error
		want error
	}{
		{"sym wrong key", sym(symEnv, otherKey), ErrDecrypt},
		{"sym invalid key", sym(symEnv, key[:16]), ErrInvalidKey},
		{"sym tampered ciphertext", sym(tamper(symEnv, 3), key), ErrDecrypt},
		{"sym tampered tag", sym(tamper(symEnv, len(symEnv.Data)-13), key), ErrDecrypt},
		{"sym tampered nonce", sym(tamper(symEnv, len(symEnv.Data)-1), key), ErrDecrypt},
		{"sym short data", sym(&Envelope{Data: make([]byte, 27)}, key), ErrDecrypt},
		{"sym nil envelope", sym(nil, key), ErrDecrypt},
		{"asym wrong key", asym(asymEnv, other), ErrDecrypt},
		{"asym tampered", asym(tamper(asymEnv, 80), priv), ErrDecrypt},
		{"asym tampered point", asym(tamper(asymEnv, 10), priv), ErrDecrypt},
		{"asym bad prefix", asym(tamper(asymEnv, 0), priv), ErrDecrypt},
		{"asym short", asym(&Envelope{Data: []byte{4, 1, 2}}, priv), ErrDecrypt},
		{"asym empty", asym(&Envelope{}, priv), ErrDecrypt},
		{"asym invalid key", asym(asymEnv, &ecdsa.PrivateKey{}), ErrInvalidKey},
		{"size field overruns (geth panics)", sym(symWith([]byte{1, 5, 'a', 'b', 'c', 'd'}), key), ErrBadPayload},
		{"size field truncated", sym(symWith([]byte{3, 1}), key), ErrBadPayload},
		{"empty plaintext", sym(symWith(nil), key), ErrBadPayload},
		{"signed too short", sym(symWith(append([]byte{4}, make([]byte, 65)...)), key), ErrBadPayload},
		{"signature V=27", sym(symWith(signedPlain(27)), key), ErrBadSignature},
		{"signature V=4", sym(symWith(signedPlain(4)), key), ErrBadSignature},
		{"signature R=S=0", sym(symWith(zeroR), key), ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.open(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}

	// A tampered signed plaintext recovers a different key (not the signer).
	pl := signedPlain(0)
	if _, err := ParseMessage(pl); err != nil {
		t.Fatalf("valid signed plaintext: %v", err)
	}
	pl[2] ^= 1
	if rm, err := ParseMessage(pl); err == nil && samePub(rm.Src, &signer.PublicKey) {
		t.Fatal("tampered message still verifies as the signer")
	}
}

func TestParseMessage(t *testing.T) {
	cases := []struct {
		raw, payload, padding string
	}{
		{"00", "", ""},
		{"00ffff", "", "ffff"}, // L=0: everything is padding
		{"0100", "", ""},
		{"0103616263", "616263", ""},
		{"010361626378", "616263", "78"},
		{"02030061626378", "616263", "78"},
		{"0300000061", "", "61"},
		{"030100006162", "61", "62"},
		{"f100aa", "", "aa"}, // unknown high bits ignored
	}
	for _, c := range cases {
		rm, err := ParseMessage(mustHex(t, c.raw))
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if hex.EncodeToString(rm.Payload) != c.payload || hex.EncodeToString(rm.Padding) != c.padding {
			t.Errorf("%s: payload %x padding %x", c.raw, rm.Payload, rm.Padding)
		}
	}
	for _, bad := range []string{"", "01", "0104616263", "02", "0201", "03ffffff", "04"} {
		if _, err := ParseMessage(mustHex(t, bad)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestSymKeyFromPassword(t *testing.T) {
	k, err := SymKeyFromPassword("status")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k); got != "36224048e42c49e5c59c57bba5024fbb8822d6b4ee6ac5fbefd8b77f5323ecc4" {
		t.Fatalf("key %s", got)
	}
	if got := hex.EncodeToString(keccak([]byte("status"))[:4]); got != "cd423760" {
		t.Fatalf("topic %s", got)
	}
}

// TestFreeFlags: bits geth leaves unused travel in the flags byte and come
// back from ParseMessage; bits geth gives a meaning are refused.
func TestFreeFlags(t *testing.T) {
	tests := []struct {
		flags byte
		ok    bool
	}{{0, true}, {0x80, true}, {0xf8, true}, {0x04, false}, {0x01, false}, {0x83, false}}
	for _, tt := range tests {
		m, err := NewSentMessage(&MessageParams{Payload: []byte("payload"), Flags: tt.flags})
		if (err == nil) != tt.ok {
			t.Fatalf("flags %#x: err %v, want ok=%v", tt.flags, err, tt.ok)
		}
		if err != nil {
			continue
		}
		got, err := ParseMessage(m.Raw)
		if err != nil {
			t.Fatalf("flags %#x: %v", tt.flags, err)
		}
		if got.Flags&FreeFlags != tt.flags || string(got.Payload) != "payload" {
			t.Fatalf("flags %#x: parsed flags %#x payload %q", tt.flags, got.Flags, got.Payload)
		}
	}
}
