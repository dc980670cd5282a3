package aez

import (
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// vectorSHA256 pins the copies in testdata (see testdata/README.md).
var vectorSHA256 = map[string]string{
	"encrypt.json":             "7290077373d9222a6b5a7382029e794be376e4810320ad0cdc6f366ca737bda5",
	"encrypt_no_ad.json":       "5bed304851e87ca8f882302ee7fd65742d8cac6d5e71a2684cf3c315b24b85af",
	"encrypt_16_byte_key.json": "7d9253a7838d1c57fd7353db9f615be53ba8e6571ab4c1122cd8b6493603c0d4",
	"encrypt_33_byte_ad.json":  "4e4d6d52e28b2cc61576c3e7ecccfda7455bc8de4c2218a355db5af5c3a752f4",
	"extract.json":             "ec52a5587e1f1eedb136a2c62bfd831cce1a0bd8714b3eaafb86bcced9be8e30",
	"hash.json":                "0524ae265ecdae10da4191f7df574c644ddd386d84637f4386496246d5854d1e",
	"prf.json":                 "133d5cb126b122b525f4c4179f732ac983abf34a80718d86b45a8959a3480e3c",
}

// loadVectors reads and decodes a vector file, failing the test if it is
// missing, altered or empty.
func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != vectorSHA256[name] {
		t.Fatalf("vector file %s: sha256 %s, want %s", name, got, vectorSHA256[name])
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
}

// hexBytes decodes a hex string from a vector file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type encryptVector struct {
	K     hexBytes   `json:"k"`
	Nonce hexBytes   `json:"nonce"`
	Data  []hexBytes `json:"data"`
	Tau   int        `json:"tau"`
	M     hexBytes   `json:"m"`
	C     hexBytes   `json:"c"`
}

func adOf(data []hexBytes) [][]byte {
	ad := make([][]byte, len(data))
	for i, d := range data {
		ad[i] = d
	}
	return ad
}

// TestVectors runs every known-answer file; each file is a subtest and a
// missing or altered file fails it.
func TestVectors(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, file string)
	}{
		{"encrypt.json", checkEncrypt},
		{"encrypt_no_ad.json", checkEncrypt},
		{"encrypt_16_byte_key.json", checkEncrypt},
		{"encrypt_33_byte_ad.json", checkEncrypt},
		{"extract.json", checkExtract},
		{"hash.json", checkHash},
		{"prf.json", checkPRF},
	}
	if len(tests) != len(vectorSHA256) {
		t.Fatalf("%d vector files tested, %d pinned", len(tests), len(vectorSHA256))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) { tc.check(t, tc.file) })
	}
}

func checkEncrypt(t *testing.T, file string) {
	var vs []encryptVector
	loadVectors(t, file, &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for n, v := range vs {
		ad := adOf(v.Data)
		c := Encrypt(v.K, v.Nonce, ad, v.Tau, v.M)
		if !bytes.Equal(c, v.C) {
			t.Fatalf("vector %d (len(m)=%d tau=%d): Encrypt = %x, want %x", n, len(v.M), v.Tau, c, v.C)
		}
		m, err := Decrypt(v.K, v.Nonce, ad, v.Tau, v.C)
		if err != nil {
			t.Fatalf("vector %d: Decrypt: %v", n, err)
		}
		if !bytes.Equal(m, v.M) {
			t.Fatalf("vector %d: Decrypt = %x, want %x", n, m, v.M)
		}
	}
}

// TestSPRPModeCovered makes sure the vectors exercise Katzenpost's mode:
// tau = 0, no AD, AEZ-core lengths.
func TestSPRPModeCovered(t *testing.T) {
	var vs []encryptVector
	loadVectors(t, "encrypt_no_ad.json", &vs)
	found := false
	for _, v := range vs {
		if v.Tau == 0 && len(v.Data) == 0 && len(v.M) >= 32 && len(v.C) == len(v.M) {
			found = true
		}
	}
	if !found {
		t.Fatal("encrypt_no_ad.json has no tau = 0, no-AD, >= 32-byte case")
	}
}

func checkExtract(t *testing.T, file string) {
	var vs []struct {
		A hexBytes `json:"a"`
		B hexBytes `json:"b"`
	}
	loadVectors(t, file, &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for n, v := range vs {
		if got := Extract(v.A); !bytes.Equal(got[:], v.B) {
			t.Fatalf("vector %d (len %d): Extract = %x, want %x", n, len(v.A), got, v.B)
		}
	}
}

func checkHash(t *testing.T, file string) {
	var vs []struct {
		K    hexBytes   `json:"k"`
		Tau  uint64     `json:"tau"`
		Data []hexBytes `json:"data"`
		V    hexBytes   `json:"v"`
	}
	loadVectors(t, file, &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for n, v := range vs {
		k := Extract(v.K)
		s := newState(&k)
		data := adOf(v.Data)
		got := s.hash(v.Tau, data[0], data[1:])
		if !bytes.Equal(got[:], v.V) {
			t.Fatalf("vector %d: hash = %x, want %x", n, got, v.V)
		}
	}
}

func checkPRF(t *testing.T, file string) {
	var vs []struct {
		K     hexBytes `json:"k"`
		Delta hexBytes `json:"delta"`
		Tau   int      `json:"tau"`
		R     hexBytes `json:"r"`
	}
	loadVectors(t, file, &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for n, v := range vs {
		k := Extract(v.K)
		s := newState(&k)
		delta := load(v.Delta)
		got := make([]byte, v.Tau)
		s.prf(&delta, got)
		if !bytes.Equal(got, v.R) {
			t.Fatalf("vector %d: prf = %x, want %x", n, got, v.R)
		}
	}
}

// TestRoundMatchesAES checks the table-free round function by building
// AES-128 from it (key schedule with the same S-box, nine full rounds and a
// final round without MixColumns) and comparing with crypto/aes.
func TestRoundMatchesAES(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 200; trial++ {
		var key, pt block
		rng.Read(key[:])
		rng.Read(pt[:])

		var rk [11]block
		rk[0] = key
		rcon := byte(1)
		for r := 1; r <= 10; r++ {
			prev := rk[r-1]
			var w block
			copy(w[:4], prev[12:16])
			subBytes(&w)
			word := [4]byte{w[1] ^ rcon, w[2], w[3], w[0]}
			for c := 0; c < 4; c++ {
				for b := 0; b < 4; b++ {
					word[b] ^= prev[4*c+b]
					rk[r][4*c+b] = word[b]
				}
			}
			rcon = xtime(rcon)
		}
		s := pt
		xorInto(s[:], rk[0][:])
		for r := 1; r <= 9; r++ {
			aesRound(&s, &rk[r])
		}
		subBytes(&s)
		shiftRows(&s)
		xorInto(s[:], rk[10][:])

		c, err := aes.NewCipher(key[:])
		if err != nil {
			t.Fatal(err)
		}
		var want block
		c.Encrypt(want[:], pt[:])
		if s != want {
			t.Fatalf("trial %d: AES from rounds = %x, crypto/aes = %x", trial, s, want)
		}
	}
}

func randomInputs(rng *rand.Rand) (key, nonce []byte, ad [][]byte) {
	key = make([]byte, []int{16, 32, 48, 48, 64}[rng.Intn(5)])
	rng.Read(key)
	nonce = make([]byte, rng.Intn(40))
	rng.Read(nonce)
	ad = make([][]byte, rng.Intn(4))
	for i := range ad {
		ad[i] = make([]byte, rng.Intn(50))
		rng.Read(ad[i])
	}
	return key, nonce, ad
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for n := 0; n <= 1024; n++ {
		for _, tau := range []int{0, 16} {
			key, nonce, ad := randomInputs(rng)
			m := make([]byte, n)
			rng.Read(m)
			c := Encrypt(key, nonce, ad, tau, m)
			if len(c) != n+tau {
				t.Fatalf("n=%d tau=%d: len(c) = %d", n, tau, len(c))
			}
			if n >= 4 && bytes.Equal(c[:n], m) {
				t.Fatalf("n=%d tau=%d: ciphertext equals plaintext", n, tau)
			}
			got, err := Decrypt(key, nonce, ad, tau, c)
			if err != nil {
				t.Fatalf("n=%d tau=%d: Decrypt: %v", n, tau, err)
			}
			if !bytes.Equal(got, m) {
				t.Fatalf("n=%d tau=%d: round trip mismatch", n, tau)
			}
		}
	}
}

// TestWideBlock checks the SPRP property Sphinx relies on: with tau = 0 a
// one-bit change anywhere in the input changes the whole output (checked as:
// every 16-byte block of the output differs).
func TestWideBlock(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	key := make([]byte, KeySize)
	nonce := make([]byte, 16)
	rng.Read(key)
	rng.Read(nonce)
	for _, n := range []int{32, 135, 1024} {
		m := make([]byte, n)
		rng.Read(m)
		c1 := Encrypt(key, nonce, nil, 0, m)
		m[rng.Intn(n)] ^= 1 << uint(rng.Intn(8))
		c2 := Encrypt(key, nonce, nil, 0, m)
		for off := 0; off+16 <= n; off += 16 {
			if bytes.Equal(c1[off:off+16], c2[off:off+16]) {
				t.Fatalf("n=%d: output block at %d unchanged by a one-bit input change", n, off)
			}
		}
	}
}

func TestDecryptRejectsFlippedBit(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, n := range []int{0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 512} {
		key, nonce, ad := randomInputs(rng)
		m := make([]byte, n)
		rng.Read(m)
		c := Encrypt(key, nonce, ad, 16, m)
		for bit := 0; bit < len(c)*8; bit += 1 + len(c)/8 {
			bad := bytes.Clone(c)
			bad[bit/8] ^= 1 << uint(bit%8)
			if _, err := Decrypt(key, nonce, ad, 16, bad); !errors.Is(err, ErrOpen) {
				t.Fatalf("n=%d bit %d: Decrypt err = %v, want ErrOpen", n, bit, err)
			}
		}
		if _, err := Decrypt(key, append(bytes.Clone(nonce), 0), ad, 16, c); !errors.Is(err, ErrOpen) {
			t.Fatalf("n=%d: changed nonce accepted", n)
		}
	}
	if _, err := Decrypt(make([]byte, KeySize), nil, nil, 16, make([]byte, 15)); !errors.Is(err, ErrOpen) {
		t.Fatal("ciphertext shorter than tau accepted")
	}
}

func FuzzDecrypt(f *testing.F) {
	f.Add(make([]byte, KeySize), make([]byte, 16), []byte("ad"), uint8(16), make([]byte, 48))
	f.Add([]byte("k"), []byte{}, []byte{}, uint8(0), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key, nonce, ad []byte, tau uint8, c []byte) {
		m, err := Decrypt(key, nonce, [][]byte{ad}, int(tau), c)
		if err != nil {
			return
		}
		// Anything that decrypts must re-encrypt to the same ciphertext.
		if again := Encrypt(key, nonce, [][]byte{ad}, int(tau), m); !bytes.Equal(again, c) {
			t.Fatalf("Encrypt(Decrypt(c)) = %x, want %x", again, c)
		}
	})
}

// benchSizes are the benchmarked message lengths: a short message, 1 KiB,
// the Sphinx payload of Katzenpost's deployed geometry (2606 bytes: a
// 3082-byte packet less its 476-byte header) and a long message.
var benchSizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"1KiB", 1 << 10}, {"2606B", 2606}, {"32KiB", 32 << 10}}

// BenchmarkEncrypt is the Sphinx payload SPRP's call: a 48-byte key, a
// 16-byte nonce, no AD, tau = 0.
func BenchmarkEncrypt(b *testing.B) {
	key := make([]byte, KeySize)
	nonce := make([]byte, 16)
	for _, bs := range benchSizes {
		m := make([]byte, bs.n)
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.n))
			for b.Loop() {
				Encrypt(key, nonce, nil, 0, m)
			}
		})
	}
}

// BenchmarkDecrypt is the call Sphinx's Unwrap makes once per hop.
func BenchmarkDecrypt(b *testing.B) {
	key := make([]byte, KeySize)
	nonce := make([]byte, 16)
	for _, bs := range benchSizes {
		c := make([]byte, bs.n)
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.n))
			for b.Loop() {
				if _, err := Decrypt(key, nonce, nil, 0, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
