package testvectors

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/schedule"
)

func init() { register("secret-tree", checkSecretTree) }

// checkSecretTree checks the sender-data key and nonce and, for every leaf,
// the handshake and application keys and nonces at the generations given,
// all derived from one fresh secret tree per case (RFC 9420 §9).
func checkSecretTree(t *testing.T, data []byte, rep *report) {
	type generation struct {
		Generation       uint32   `json:"generation"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
	}
	type vector struct {
		CipherSuite      uint16   `json:"cipher_suite"`
		EncryptionSecret hexBytes `json:"encryption_secret"`
		SenderData       struct {
			SenderDataSecret hexBytes `json:"sender_data_secret"`
			Ciphertext       hexBytes `json:"ciphertext"`
			Key              hexBytes `json:"key"`
			Nonce            hexBytes `json:"nonce"`
		} `json:"sender_data"`
		Leaves [][]generation `json:"leaves"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		failed := false
		fail := func(format string, args ...any) {
			failed = true
			t.Errorf("case %d (suite %d, %d leaves): "+format, append([]any{i, v.CipherSuite, len(v.Leaves)}, args...)...)
		}
		sd := v.SenderData
		key, nonce, err := schedule.SenderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
		if err != nil || !bytes.Equal(key, sd.Key) || !bytes.Equal(nonce, sd.Nonce) {
			fail("sender data key, nonce = %x, %x, %v; want %x, %x", key, nonce, err, sd.Key, sd.Nonce)
		}
		tree, err := schedule.NewSecretTree(s, v.EncryptionSecret, uint32(len(v.Leaves)), schedule.Retention{})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		for leaf, gens := range v.Leaves {
			for _, g := range gens {
				for _, r := range []struct {
					typ        schedule.RatchetType
					key, nonce []byte
				}{
					{schedule.Handshake, g.HandshakeKey, g.HandshakeNonce},
					{schedule.Application, g.ApplicationKey, g.ApplicationNonce},
				} {
					kn, err := tree.Get(uint32(leaf), r.typ, g.Generation)
					if err != nil || !bytes.Equal(kn.Key, r.key) || !bytes.Equal(kn.Nonce, r.nonce) {
						fail("leaf %d %s generation %d: key, nonce = %x, %x, %v; want %x, %x",
							leaf, r.typ, g.Generation, kn.Key, kn.Nonce, err, r.key, r.nonce)
					}
					if _, err := tree.Get(uint32(leaf), r.typ, g.Generation); err == nil {
						fail("leaf %d %s generation %d: key handed out twice", leaf, r.typ, g.Generation)
					}
				}
			}
		}
		tree.Destroy()
		if !failed {
			rep.pass()
		}
	}
}
