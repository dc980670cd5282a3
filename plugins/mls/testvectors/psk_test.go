package testvectors

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("psk_secret", checkPSKSecret) }

// checkPSKSecret checks psk_secret chained from 0 to 10 external PSKs, each
// named by PreSharedKeyID{external, psk_id, psk_nonce} (RFC 9420 §8.4).
func checkPSKSecret(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite uint16 `json:"cipher_suite"`
		PSKs        []struct {
			PSKID    hexBytes `json:"psk_id"`
			PSK      hexBytes `json:"psk"`
			PSKNonce hexBytes `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret hexBytes `json:"psk_secret"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		var psks []schedule.PSK
		for _, p := range v.PSKs {
			id := wire.PreSharedKeyID{Type: wire.PSKExternal, PSKID: p.PSKID, Nonce: p.PSKNonce}
			var w codec.Writer
			id.Encode(&w)
			if w.Err() != nil {
				t.Fatalf("case %d: encode PreSharedKeyID: %v", i, w.Err())
			}
			psks = append(psks, schedule.PSK{ID: w.Bytes(), Secret: p.PSK})
		}
		got, err := schedule.PSKSecret(s, psks)
		if err != nil || !bytes.Equal(got, v.PSKSecret) {
			t.Errorf("case %d (suite %d, %d PSKs): psk_secret = %x, %v; want %x", i, v.CipherSuite, len(psks), got, err, v.PSKSecret)
			continue
		}
		rep.pass()
	}
}
