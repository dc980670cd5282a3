package testvectors

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
)

func init() { register("crypto-basics", checkCryptoBasics) }

// caseSuite returns the cipher suite of a case, or nil after reporting the
// case as skipped when the suite package does not implement it.
func caseSuite(t *testing.T, id uint16, rep *report) *suite.Suite {
	t.Helper()
	s, err := suite.New(suite.ID(id))
	if errors.Is(err, suite.ErrUnsupported) {
		rep.skip(fmt.Sprintf("cipher suite 0x%04x not implemented", id))
		return nil
	}
	if err != nil {
		t.Fatalf("suite 0x%04x: %v", id, err)
	}
	return s
}

// checkCryptoBasics checks RefHash, ExpandWithLabel, DeriveSecret,
// DeriveTreeSecret, SignWithLabel/VerifyWithLabel and
// EncryptWithLabel/DecryptWithLabel of each suite.
func checkCryptoBasics(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite uint16 `json:"cipher_suite"`
		RefHash     struct {
			Label string   `json:"label"`
			Value hexBytes `json:"value"`
			Out   hexBytes `json:"out"`
		} `json:"ref_hash"`
		ExpandWithLabel struct {
			Secret  hexBytes `json:"secret"`
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Out     hexBytes `json:"out"`
		} `json:"expand_with_label"`
		DeriveSecret struct {
			Secret hexBytes `json:"secret"`
			Label  string   `json:"label"`
			Out    hexBytes `json:"out"`
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Secret     hexBytes `json:"secret"`
			Label      string   `json:"label"`
			Generation uint32   `json:"generation"`
			Length     int      `json:"length"`
			Out        hexBytes `json:"out"`
		} `json:"derive_tree_secret"`
		SignWithLabel struct {
			Priv      hexBytes `json:"priv"`
			Pub       hexBytes `json:"pub"`
			Content   hexBytes `json:"content"`
			Label     string   `json:"label"`
			Signature hexBytes `json:"signature"`
		} `json:"sign_with_label"`
		EncryptWithLabel struct {
			Priv       hexBytes `json:"priv"`
			Pub        hexBytes `json:"pub"`
			Label      string   `json:"label"`
			Context    hexBytes `json:"context"`
			Plaintext  hexBytes `json:"plaintext"`
			KEMOutput  hexBytes `json:"kem_output"`
			Ciphertext hexBytes `json:"ciphertext"`
		} `json:"encrypt_with_label"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		failed := false
		fail := func(format string, args ...any) {
			failed = true
			t.Errorf("case %d (suite %d): "+format, append([]any{i, v.CipherSuite}, args...)...)
		}

		if got := s.RefHash(v.RefHash.Label, v.RefHash.Value); !bytes.Equal(got, v.RefHash.Out) {
			fail("RefHash = %x, want %x", got, v.RefHash.Out)
		}
		e := v.ExpandWithLabel
		if got, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length); err != nil || !bytes.Equal(got, e.Out) {
			fail("ExpandWithLabel = %x, %v; want %x", got, err, e.Out)
		}
		d := v.DeriveSecret
		if got, err := s.DeriveSecret(d.Secret, d.Label); err != nil || !bytes.Equal(got, d.Out) {
			fail("DeriveSecret = %x, %v; want %x", got, err, d.Out)
		}
		dt := v.DeriveTreeSecret
		if got, err := s.DeriveTreeSecret(dt.Secret, dt.Label, dt.Generation, dt.Length); err != nil || !bytes.Equal(got, dt.Out) {
			fail("DeriveTreeSecret = %x, %v; want %x", got, err, dt.Out)
		}

		sw := v.SignWithLabel
		if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sw.Signature); err != nil {
			fail("VerifyWithLabel of the vector's signature: %v", err)
		}
		if sig, err := s.SignWithLabel(sw.Priv, sw.Label, sw.Content); err != nil {
			fail("SignWithLabel: %v", err)
		} else if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sig); err != nil {
			fail("VerifyWithLabel of our signature: %v", err)
		}
		if err := s.VerifyWithLabel(sw.Pub, sw.Label+"x", sw.Content, sw.Signature); err == nil {
			fail("VerifyWithLabel accepted the signature under another label")
		}

		ew := v.EncryptWithLabel
		if pub, err := s.HPKEPublicKey(ew.Priv); err != nil || !bytes.Equal(pub, ew.Pub) {
			fail("public key of priv = %x, %v; want %x", pub, err, ew.Pub)
		}
		if pt, err := s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, ew.KEMOutput, ew.Ciphertext); err != nil || !bytes.Equal(pt, ew.Plaintext) {
			fail("DecryptWithLabel = %x, %v; want %x", pt, err, ew.Plaintext)
		}
		if kemOut, ct, err := s.EncryptWithLabel(ew.Pub, ew.Label, ew.Context, ew.Plaintext, nil); err != nil {
			fail("EncryptWithLabel: %v", err)
		} else if pt, err := s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, kemOut, ct); err != nil || !bytes.Equal(pt, ew.Plaintext) {
			fail("DecryptWithLabel of our ciphertext = %x, %v; want %x", pt, err, ew.Plaintext)
		}
		if !failed {
			rep.pass()
		}
	}
}

// TestUnimplementedSuiteIsCountedSkip checks that every suite-parameterised
// checker of this package reports a case of an unimplemented suite (here the
// GREASE value 0x0a0a) as a counted skip with its reason, not as a pass.
func TestUnimplementedSuiteIsCountedSkip(t *testing.T) {
	for name, check := range map[string]checker{
		"crypto-basics": checkCryptoBasics, "secret-tree": checkSecretTree,
		"key-schedule": checkKeySchedule, "psk_secret": checkPSKSecret,
		"transcript-hashes": checkTranscriptHashes, "message-protection": checkMessageProtection,
		"welcome": checkWelcome,
	} {
		rep := &report{}
		check(t, []byte(`[{"cipher_suite": 2570}]`), rep)
		if rep.passed != 0 || rep.skipped["cipher suite 0x0a0a not implemented"] != 1 {
			t.Errorf("%s: %s, want 0 passed, 1 skipped for suite 0x0a0a", name, rep)
		}
	}
}
