package testvectors

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("key-schedule", checkKeySchedule) }

// checkKeySchedule runs each case's epochs in a chain from
// initial_init_secret: the GroupContext encoding, joiner, welcome and init
// secrets, the eight epoch secrets, external_pub and one exporter output
// (RFC 9420 §8). Every epoch must hold for the case to pass.
func checkKeySchedule(t *testing.T, data []byte, rep *report) {
	type epoch struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			// The label is used as its literal text, although it looks
			// like hex (see testdata/README.md).
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	}
	type vector struct {
		CipherSuite       uint16   `json:"cipher_suite"`
		GroupID           hexBytes `json:"group_id"`
		InitialInitSecret hexBytes `json:"initial_init_secret"`
		Epochs            []epoch  `json:"epochs"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		failed := false
		initSecret := []byte(v.InitialInitSecret)
		for n, e := range v.Epochs {
			fail := func(format string, args ...any) {
				failed = true
				t.Errorf("case %d (suite %d) epoch %d: "+format, append([]any{i, v.CipherSuite, n}, args...)...)
			}
			gc := wire.GroupContext{
				Version: wire.MLS10, CipherSuite: wire.CipherSuite(v.CipherSuite), GroupID: v.GroupID,
				Epoch: uint64(n), TreeHash: e.TreeHash, ConfirmedTranscriptHash: e.ConfirmedTranscriptHash,
			}
			var w codec.Writer
			gc.Encode(&w)
			if w.Err() != nil || !bytes.Equal(w.Bytes(), e.GroupContext) {
				fail("GroupContext encodes to %x, %v; want %x", w.Bytes(), w.Err(), e.GroupContext)
				break
			}
			joiner, err := schedule.JoinerSecret(s, initSecret, e.CommitSecret, e.GroupContext)
			if err != nil || !bytes.Equal(joiner, e.JoinerSecret) {
				fail("joiner_secret = %x, %v; want %x", joiner, err, e.JoinerSecret)
				break
			}
			welcome, err := schedule.WelcomeSecret(s, joiner, e.PSKSecret)
			if err != nil || !bytes.Equal(welcome, e.WelcomeSecret) {
				fail("welcome_secret = %x, %v; want %x", welcome, err, e.WelcomeSecret)
			}
			ep, err := schedule.NewEpoch(s, joiner, e.PSKSecret, e.GroupContext)
			if err != nil {
				fail("key schedule: %v", err)
				break
			}
			for _, c := range []struct {
				name      string
				got, want []byte
			}{
				{"init_secret", ep.InitSecret, e.InitSecret},
				{"sender_data_secret", ep.SenderDataSecret, e.SenderDataSecret},
				{"encryption_secret", ep.EncryptionSecret, e.EncryptionSecret},
				{"exporter_secret", ep.ExporterSecret, e.ExporterSecret},
				{"epoch_authenticator", ep.EpochAuthenticator, e.EpochAuthenticator},
				{"external_secret", ep.ExternalSecret, e.ExternalSecret},
				{"confirmation_key", ep.ConfirmationKey, e.ConfirmationKey},
				{"membership_key", ep.MembershipKey, e.MembershipKey},
				{"resumption_psk", ep.ResumptionPSK, e.ResumptionPSK},
			} {
				if !bytes.Equal(c.got, c.want) {
					fail("%s = %x, want %x", c.name, c.got, c.want)
				}
			}
			if _, pub, err := ep.ExternalKeyPair(); err != nil || !bytes.Equal(pub, e.ExternalPub) {
				fail("external_pub = %x, %v; want %x", pub, err, e.ExternalPub)
			}
			x := e.Exporter
			if got, err := ep.Export(x.Label, x.Context, x.Length); err != nil || !bytes.Equal(got, x.Secret) {
				fail("exporter = %x, %v; want %x", got, err, x.Secret)
			}
			initSecret = bytes.Clone(ep.InitSecret)
			ep.Destroy()
		}
		if !failed {
			rep.pass()
		}
	}
}
