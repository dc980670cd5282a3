package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
)

// TestExportVectors writes envelopes produced by this package, in the
// geth_vectors.json format, to the file named by WIRE_EXPORT_VECTORS, so a
// go-ethereum v1.9.20 program can check the other direction (geth opens
// what we wrap). Skipped unless the variable is set.
func TestExportVectors(t *testing.T) {
	path := os.Getenv("WIRE_EXPORT_VECTORS")
	if path == "" {
		t.Skip("WIRE_EXPORT_VECTORS not set")
	}
	type entry struct {
		Key         string  `json:"key,omitempty"`
		PrivateKey  string  `json:"private_key,omitempty"`
		EnvelopeRLP string  `json:"envelope_rlp"`
		Hash        string  `json:"hash,omitempty"`
		PoW         float64 `json:"pow,omitempty"`
		Payload     string  `json:"payload,omitempty"`
		SignerPub   string  `json:"signer_pub"`
	}
	out := map[string]any{"source": "strata plugins/whisper/wire"}
	var pows, syms, asyms []entry
	signer := genKey(t)
	now := time.Now()
	for i, size := range []int{0, 1, 5, 189, 190, 191, 255, 256, 1000, 70000} {
		payload := bytes.Repeat([]byte{byte(i + 1)}, size)
		key := bytes.Repeat([]byte{byte(i + 1)}, 32)
		priv := genKey(t)
		for _, asym := range []bool{false, true} {
			p := &MessageParams{TTL: 50, Topic: TopicType{1, 2, 3, 4}, Payload: payload, PoW: DefaultMinimumPoW, WorkTime: 10}
			if size > 1000 {
				p.PoW = 0
			}
			sp := ""
			if (i%2 == 1) != asym {
				p.Src = signer
				sp = hex.EncodeToString(crypto.FromECDSAPub(&signer.PublicKey))
			}
			if asym {
				p.Dst = &priv.PublicKey
			} else {
				p.KeySym = key
			}
			msg, err := NewSentMessage(p)
			if err != nil {
				t.Fatal(err)
			}
			env, err := msg.Wrap(p, now)
			if err != nil {
				t.Fatal(err)
			}
			raw := hex.EncodeToString(env.Encode())
			h := env.Hash()
			pows = append(pows, entry{EnvelopeRLP: raw, Hash: hex.EncodeToString(h[:]), PoW: env.PoW()})
			e := entry{EnvelopeRLP: raw, Payload: hex.EncodeToString(payload), SignerPub: sp}
			if asym {
				e.PrivateKey = hex.EncodeToString(crypto.FromECDSA(priv))
				asyms = append(asyms, e)
			} else {
				e.Key = hex.EncodeToString(key)
				syms = append(syms, e)
			}
		}
	}
	out["pow"], out["symmetric"], out["asymmetric"] = pows, syms, asyms
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
