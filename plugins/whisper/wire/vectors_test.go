package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

// gethVectors is the format of testdata/geth_vectors.json, generated from
// go-ethereum v1.9.20's whisperv6 package. All byte fields are hex without
// 0x; signer_pub is the 65-byte uncompressed key or "" when unsigned.
type gethVectors struct {
	Source string `json:"source"`
	PoW    []struct {
		EnvelopeRLP string  `json:"envelope_rlp"`
		Hash        string  `json:"hash"`
		PoW         float64 `json:"pow"`
	} `json:"pow"`
	Bloom []struct {
		Topic string `json:"topic"`
		Bloom string `json:"bloom"`
	} `json:"bloom"`
	Symmetric []struct {
		Key         string `json:"key"`
		EnvelopeRLP string `json:"envelope_rlp"`
		Payload     string `json:"payload"`
		SignerPub   string `json:"signer_pub"`
	} `json:"symmetric"`
	Asymmetric []struct {
		PrivateKey  string `json:"private_key"`
		EnvelopeRLP string `json:"envelope_rlp"`
		Payload     string `json:"payload"`
		SignerPub   string `json:"signer_pub"`
	} `json:"asymmetric"`
}

func loadGethVectors(t *testing.T) *gethVectors {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "geth_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v gethVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("geth_vectors.json: %v", err)
	}
	return &v
}

func checkSigner(t *testing.T, rm *ReceivedMessage, signerHex string) {
	t.Helper()
	if signerHex == "" {
		if rm.Src != nil || rm.Signature != nil {
			t.Fatal("unsigned vector produced a signer")
		}
		return
	}
	if rm.Src == nil {
		t.Fatal("signed vector: no signer recovered")
	}
	if got := hex.EncodeToString(crypto.FromECDSAPub(rm.Src)); got != signerHex {
		t.Fatalf("signer %s, want %s", got, signerHex)
	}
}

func TestGethVectors(t *testing.T) {
	v := loadGethVectors(t)
	t.Logf("vectors from %s: %d pow, %d bloom, %d symmetric, %d asymmetric",
		v.Source, len(v.PoW), len(v.Bloom), len(v.Symmetric), len(v.Asymmetric))
	if len(v.PoW)+len(v.Bloom)+len(v.Symmetric)+len(v.Asymmetric) == 0 {
		t.Fatal("geth_vectors.json holds no vectors")
	}
	for i, c := range v.PoW {
		env, err := DecodeEnvelope(mustHex(t, c.EnvelopeRLP))
		if err != nil {
			t.Errorf("pow[%d]: %v", i, err)
			continue
		}
		got := env.PoW()
		if !(got == c.PoW || math.Abs(got-c.PoW) <= 1e-12*math.Abs(c.PoW)) {
			t.Errorf("pow[%d]: PoW %v, want %v", i, got, c.PoW)
		}
		h := env.Hash()
		if hex.EncodeToString(h[:]) != c.Hash {
			t.Errorf("pow[%d]: hash %x, want %s", i, h, c.Hash)
		}
		if !bytes.Equal(env.Encode(), mustHex(t, c.EnvelopeRLP)) {
			t.Errorf("pow[%d]: re-encoding differs", i)
		}
	}
	for i, c := range v.Bloom {
		got := TopicToBloom(BytesToTopic(mustHex(t, c.Topic)))
		if hex.EncodeToString(got) != c.Bloom {
			t.Errorf("bloom[%d] topic %s: %x, want %s", i, c.Topic, got, c.Bloom)
		}
	}
	for i, c := range v.Symmetric {
		env, err := DecodeEnvelope(mustHex(t, c.EnvelopeRLP))
		if err != nil {
			t.Errorf("symmetric[%d]: %v", i, err)
			continue
		}
		rm, err := OpenSymmetric(env, mustHex(t, c.Key))
		if err != nil {
			t.Errorf("symmetric[%d]: %v", i, err)
			continue
		}
		if hex.EncodeToString(rm.Payload) != c.Payload {
			t.Errorf("symmetric[%d]: payload %x, want %s", i, rm.Payload, c.Payload)
		}
		checkSigner(t, rm, c.SignerPub)
	}
	for i, c := range v.Asymmetric {
		env, err := DecodeEnvelope(mustHex(t, c.EnvelopeRLP))
		if err != nil {
			t.Errorf("asymmetric[%d]: %v", i, err)
			continue
		}
		priv, err := crypto.ToECDSA(mustHex(t, c.PrivateKey))
		if err != nil {
			t.Fatalf("asymmetric[%d]: private key: %v", i, err)
		}
		rm, err := OpenAsymmetric(env, priv)
		if err != nil {
			t.Errorf("asymmetric[%d]: %v", i, err)
			continue
		}
		if hex.EncodeToString(rm.Payload) != c.Payload {
			t.Errorf("asymmetric[%d]: payload %x, want %s", i, rm.Payload, c.Payload)
		}
		checkSigner(t, rm, c.SignerPub)
	}
}
