package x3dh

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
)

// The handshake benchmarks use bundles answering a BundleRequest: SPK and
// one OPK (x3dh), plus the last-resort and one one-time ML-KEM prekey
// (pqxdh). Initiate verifies the bundle once (2 or 4 Ed25519 verifies).
var benchScenarios = []struct {
	name string
	sc   scenario
}{
	{"x3dh", scenario{name: "bench x3dh", opk: true}},
	{"pqxdh", scenario{name: "bench pqxdh", opk: true, kem: true, oneTime: true}},
}

// BenchmarkHandshake is one full key agreement: Initiate (bundle
// verification included) and Respond.
func BenchmarkHandshake(b *testing.B) {
	for _, bs := range benchScenarios {
		b.Run(bs.name, func(b *testing.B) {
			p := newParty(b, testRand(bs.sc.name), bs.sc)
			keys := p.responderKeys(bs.sc)
			aliceIK := p.alice.IdentityKey()
			b.ReportAllocs()
			for b.Loop() {
				init, err := Initiate(nil, p.alice, p.bundle)
				if err != nil {
					b.Fatal(err)
				}
				sk, _, err := Respond(p.bob, keys, aliceIK, init.Header)
				if err != nil {
					b.Fatal(err)
				}
				clear(sk)
				clear(init.SharedSecret)
			}
		})
	}
}

// BenchmarkPrimitives does exactly the primitive operations of one
// BenchmarkHandshake iteration, and nothing else: the Ed25519 verifies of
// the bundle, the ephemeral X25519 key generation, both sides' DHs, both
// HKDFs, and for PQXDH parsing the encapsulation key and encapsulating, then
// expanding the stored 64-byte seed and decapsulating.
func BenchmarkPrimitives(b *testing.B) {
	for _, bs := range benchScenarios {
		b.Run(bs.name, func(b *testing.B) {
			p := newParty(b, testRand(bs.sc.name), bs.sc)
			bun := p.bundle
			type sig struct{ msg, sig []byte }
			sigs := []sig{{bun.IdentityKey, bun.IdentitySignature}, {bun.SignedPreKey.Public, bun.SignedPreKey.Signature}}
			pq := bun.KEMPreKey != nil
			if pq {
				sigs = append(sigs, sig{bun.KEMPreKey.Public, bun.KEMPreKey.Signature})
				for _, k := range bun.OneTimeKEMPreKeys {
					sigs = append(sigs, sig{k.Public, k.Signature})
				}
			}
			arr := func(b []byte) *x25519.Key { return (*x25519.Key)(b[1:]) }
			ikB, spkB, opkB := arr(bun.IdentityKey), arr(bun.SignedPreKey.Public), arr(bun.OneTimePreKeys[0].Public)
			ikAPriv, ikBPriv := (*x25519.Key)(&p.alice.dh), (*x25519.Key)(&p.bob.dh)
			ikA := (*x25519.Key)(&p.alice.dhPub)
			spkPriv, opkPriv := (*x25519.Key)(p.spk.Private), (*x25519.Key)(p.opk.Private)
			var kemPub []byte
			var kemSeed []byte
			if pq {
				kemPub, kemSeed = p.pqopk.Public[1:], p.pqopk.Seed
			}
			ikm := make([]byte, 6*32)
			ct := make([]byte, mlkem1024.CiphertextSize)
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range sigs {
					if !ed25519.Verify(bun.SigningKey, s.msg, s.sig) {
						b.Fatal("verify")
					}
				}
				var ek, ekPub, out x25519.Key
				if _, err := rand.Read(ek[:]); err != nil {
					b.Fatal(err)
				}
				x25519.KeyGen(&ekPub, &ek)
				for side := range 2 {
					n := 32
					if side == 0 { // initiator
						x25519.Shared(&out, ikAPriv, spkB)
						x25519.Shared(&out, &ek, ikB)
						x25519.Shared(&out, &ek, spkB)
						x25519.Shared(&out, &ek, opkB)
					} else { // responder
						x25519.Shared(&out, spkPriv, ikA)
						x25519.Shared(&out, ikBPriv, &ekPub)
						x25519.Shared(&out, spkPriv, &ekPub)
						x25519.Shared(&out, opkPriv, &ekPub)
					}
					n += 4 * 32
					if pq {
						if side == 0 {
							var pk mlkem1024.PublicKey
							if err := pk.Unpack(kemPub); err != nil {
								b.Fatal(err)
							}
							var seed [32]byte
							if _, err := rand.Read(seed[:]); err != nil {
								b.Fatal(err)
							}
							pk.EncapsulateTo(ct, ikm[n:n+32], seed[:])
						} else {
							_, sk := mlkem1024.NewKeyFromSeed(kemSeed)
							sk.DecapsulateTo(ikm[n:n+32], ct)
						}
						n += 32
					}
					if _, err := hkdf.Key(sha256.New, ikm[:n], zeroSalt[:], infoPQXDH, 32); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkPrimitive is the raw cost of each primitive alone.
func BenchmarkPrimitive(b *testing.B) {
	p := newParty(b, testRand("bench primitive"), scenario{kem: true})
	b.Run("x25519", func(b *testing.B) {
		var out x25519.Key
		b.ReportAllocs()
		for b.Loop() {
			x25519.Shared(&out, (*x25519.Key)(&p.alice.dh), (*x25519.Key)(&p.bob.dhPub))
		}
	})
	b.Run("x25519-keygen", func(b *testing.B) {
		var pub x25519.Key
		b.ReportAllocs()
		for b.Loop() {
			x25519.KeyGen(&pub, (*x25519.Key)(&p.alice.dh))
		}
	})
	var pk mlkem1024.PublicKey
	if err := pk.Unpack(p.kem.Public[1:]); err != nil {
		b.Fatal(err)
	}
	_, sk := mlkem1024.NewKeyFromSeed(p.kem.Seed)
	ct, ss, seed := make([]byte, mlkem1024.CiphertextSize), make([]byte, 32), make([]byte, 32)
	pk.EncapsulateTo(ct, ss, seed)
	b.Run("mlkem1024-encaps", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pk.EncapsulateTo(ct, ss, seed)
		}
	})
	b.Run("mlkem1024-decaps", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sk.DecapsulateTo(ss, ct)
		}
	})
	b.Run("mlkem1024-parse-ek", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var k mlkem1024.PublicKey
			if err := k.Unpack(p.kem.Public[1:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mlkem1024-expand-seed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mlkem1024.NewKeyFromSeed(p.kem.Seed)
		}
	})
	b.Run("ed25519-verify", func(b *testing.B) {
		bun := p.bundle
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(bun.SigningKey, bun.SignedPreKey.Public, bun.SignedPreKey.Signature) {
				b.Fatal("verify")
			}
		}
	})
	b.Run("hkdf", func(b *testing.B) {
		ikm := make([]byte, 6*32)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := hkdf.Key(sha256.New, ikm, zeroSalt[:], infoPQXDH, 32); err != nil {
				b.Fatal(err)
			}
		}
	})
}
