package ratchet

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// benchPair is a session whose first message has been delivered, so Bob
// has a receiving and a sending chain. Both sides use crypto/rand, as the
// layer does.
func benchPair(b *testing.B) (alice, bob *State) {
	a, bb := newPair(b, "bench", DefaultLimits())
	a.rand, bb.rand = rand.Reader, rand.Reader
	bb.recv(b, a.send(b, "warmup"), "warmup")
	return a.s, bb.s
}

// BenchmarkSealOpen is Alice Encrypt + Bob Decrypt of one message in one
// chain (no DH step); Bob opens every message, so he stores nothing.
func BenchmarkSealOpen(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			alice, bob := benchPair(b)
			pt := make([]byte, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				m, err := alice.Encrypt(rand.Reader, pt, testAD)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bob.Decrypt(rand.Reader, t0, m, testAD); err != nil {
					b.Fatal(err)
				}
			}
			if bob.Skipped() != 0 {
				b.Fatal("Bob accumulated skipped keys")
			}
		})
	}
}

// BenchmarkDHRatchetStep is one message each way, alternating, so every
// Decrypt performs a DH ratchet step (two per op).
func BenchmarkDHRatchetStep(b *testing.B) {
	alice, bob := benchPair(b)
	pt := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		m, err := bob.Encrypt(rand.Reader, pt, testAD)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := alice.Decrypt(rand.Reader, t0, m, testAD); err != nil {
			b.Fatal(err)
		}
		if m, err = alice.Encrypt(rand.Reader, pt, testAD); err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(rand.Reader, t0, m, testAD); err != nil {
			b.Fatal(err)
		}
	}
}

// primMessage does exactly the primitive work of one Encrypt + Decrypt in
// one chain, with stdlib and x/crypto calls only:
//
//	sender:   24-byte nonce from crypto/rand; XChaCha20-Poly1305 seal of the
//	          41-byte header; KDF_CK (2 HMAC-SHA256, one keyed state);
//	          HKDF-SHA256 → 44 bytes; ChaCha20-Poly1305 seal.
//	receiver: XChaCha20-Poly1305 open of the header (the first trial key,
//	          HKr, opens it); KDF_CK; HKDF-SHA256 → 44 bytes;
//	          ChaCha20-Poly1305 open.
//
// Not counted: building the header and CONCAT(AD, header), copying state.
func primMessage(b *testing.B, ck, hk []byte, hdr, pt, ad, msgAD []byte, hdrBuf, ctBuf []byte) {
	var nonce [24]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		b.Fatal(err)
	}
	// Two sides, one message.
	var encHdr []byte
	var ct []byte
	for side := range 2 {
		x, _ := chacha20poly1305.NewX(hk)
		if side == 0 {
			encHdr = x.Seal(hdrBuf[:0], nonce[:], hdr, ad)
		} else if _, err := x.Open(nil, nonce[:], encHdr, ad); err != nil {
			b.Fatal(err)
		}
		h := hmac.New(sha256.New, ck)
		h.Write([]byte{1})
		mk := h.Sum(nil)
		h.Reset()
		h.Write([]byte{2})
		_ = h.Sum(nil)
		okm, _ := hkdf.Key(sha256.New, mk, zeroSalt[:], infoMessageKeys, 44)
		c, _ := chacha20poly1305.New(okm[:32])
		if side == 0 {
			ct = c.Seal(ctBuf[:0], okm[32:], pt, msgAD)
		} else if _, err := c.Open(nil, okm[32:], ct, msgAD); err != nil {
			b.Fatal(err)
		}
	}
}

// primDHStep does the extra primitive work of a Decrypt that ratchets: a
// failed XChaCha20-Poly1305 header trial (HKr) before NHKr opens it, X25519
// key generation (32 bytes from crypto/rand, scalar base multiplication),
// two X25519 DHs and two KDF_RK_HE (HKDF-SHA256 → 96 bytes).
func primDHStep(b *testing.B, wrongHK, encHdr, ad []byte, priv *ecdh.PrivateKey, peer *ecdh.PublicKey, rk []byte) {
	x, _ := chacha20poly1305.NewX(wrongHK)
	if _, err := x.Open(nil, encHdr[:24], encHdr[24:], ad); err == nil {
		b.Fatal("wrong key opened")
	}
	dh1, err := priv.ECDH(peer)
	if err != nil {
		b.Fatal(err)
	}
	okm, _ := hkdf.Key(sha256.New, dh1, rk, infoRoot, 96)
	var seed [32]byte
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		b.Fatal(err)
	}
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		b.Fatal(err)
	}
	dh2, err := k.ECDH(peer)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = hkdf.Key(sha256.New, dh2, okm[:32], infoRoot, 96)
}

// BenchmarkPrimitives measures the raw cost of the primitives behind
// BenchmarkSealOpen (message-N) and BenchmarkDHRatchetStep (dh-step) in the
// same run, so the protocol's overhead can be reported as a ratio.
func BenchmarkPrimitives(b *testing.B) {
	ck := make([]byte, 32)
	hk := make([]byte, 32)
	wrong := make([]byte, 32)
	rand.Read(ck)
	rand.Read(hk)
	rand.Read(wrong)
	hdr := make([]byte, headerLen)
	hdrBuf := make([]byte, 0, encHeaderLen)
	msgAD := concatAD(testAD, make([]byte, encHeaderLen))
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprint("message-", size), func(b *testing.B) {
			pt := make([]byte, size)
			ctBuf := make([]byte, 0, size+tagLen)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				primMessage(b, ck, hk, hdr, pt, testAD, msgAD, hdrBuf, ctBuf)
			}
		})
	}
	b.Run("dh-step", func(b *testing.B) {
		pt := make([]byte, 64)
		ctBuf := make([]byte, 0, 64+tagLen)
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		peerKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
		encHdr := make([]byte, encHeaderLen)
		rand.Read(encHdr)
		b.ReportAllocs()
		for b.Loop() {
			for range 2 { // one message each way, each opened with a ratchet step
				primMessage(b, ck, hk, hdr, pt, testAD, msgAD, hdrBuf, ctBuf)
				primDHStep(b, wrong, encHdr, testAD, priv, peerKey.PublicKey(), ck)
			}
		}
	})
}
