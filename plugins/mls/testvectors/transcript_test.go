package testvectors

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("transcript-hashes", checkTranscriptHashes) }

// checkTranscriptHashes decodes a Commit's AuthenticatedContent, updates the
// confirmed and interim transcript hashes with it and checks its
// confirmation tag against the new confirmed hash (RFC 9420 §8.2).
func checkTranscriptHashes(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite                  uint16   `json:"cipher_suite"`
		ConfirmationKey              hexBytes `json:"confirmation_key"`
		AuthenticatedContent         hexBytes `json:"authenticated_content"`
		InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
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
		var ac wire.AuthenticatedContent
		if err := wire.Unmarshal(v.AuthenticatedContent, &ac); err != nil {
			fail("%v", err)
			continue
		}
		if ac.Content.ContentType != wire.ContentCommit {
			fail("content type %d, want a commit", ac.Content.ContentType)
			continue
		}
		input, err := ac.ConfirmedTranscriptHashInput()
		if err != nil {
			fail("%v", err)
			continue
		}
		confirmed := schedule.ConfirmedTranscriptHash(s, v.InterimTranscriptHashBefore, input)
		if !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
			fail("confirmed transcript hash = %x, want %x", confirmed, v.ConfirmedTranscriptHashAfter)
		}
		tag := ac.Auth.ConfirmationTag
		if !schedule.VerifyConfirmationTag(s, v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, tag) {
			fail("confirmation tag %x does not verify", tag)
		}
		if got := schedule.ConfirmationTag(s, v.ConfirmationKey, confirmed); !bytes.Equal(got, tag) {
			fail("confirmation tag = %x, want %x", got, tag)
		}
		if interim := schedule.InterimTranscriptHash(s, confirmed, tag); !bytes.Equal(interim, v.InterimTranscriptHashAfter) {
			fail("interim transcript hash = %x, want %x", interim, v.InterimTranscriptHashAfter)
		}
		if !failed {
			rep.pass()
		}
	}
}
