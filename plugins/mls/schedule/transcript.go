package schedule

import (
	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/suite"
)

// ConfirmedTranscriptHash returns the confirmed transcript hash of a new
// epoch (RFC 9420 §8.2):
//
//	confirmed_transcript_hash[n] = Hash(interim_transcript_hash[n-1] || ConfirmedTranscriptHashInput[n])
//
// confirmedInput is the encoded ConfirmedTranscriptHashInput: the Commit's
// wire_format, FramedContent and signature<V>.
func ConfirmedTranscriptHash(s *suite.Suite, interimBefore, confirmedInput []byte) []byte {
	buf := make([]byte, 0, len(interimBefore)+len(confirmedInput))
	buf = append(buf, interimBefore...)
	buf = append(buf, confirmedInput...)
	return s.Hash(buf)
}

// InterimTranscriptHash returns the interim transcript hash of an epoch
// (RFC 9420 §8.2):
//
//	interim_transcript_hash[n] = Hash(confirmed_transcript_hash[n] || InterimTranscriptHashInput[n])
//
// where InterimTranscriptHashInput is the confirmation tag as an opaque<V>.
func InterimTranscriptHash(s *suite.Suite, confirmed, confirmationTag []byte) []byte {
	w := codec.NewWriter(append([]byte(nil), confirmed...))
	w.Opaque(confirmationTag)
	return s.Hash(w.Bytes())
}

// ConfirmationTag returns MAC(confirmation_key, confirmed_transcript_hash)
// (RFC 9420 §6.1).
func ConfirmationTag(s *suite.Suite, confirmationKey, confirmed []byte) []byte {
	return s.MAC(confirmationKey, confirmed)
}

// VerifyConfirmationTag reports, in constant time, whether tag is the
// confirmation tag of confirmed under confirmationKey.
func VerifyConfirmationTag(s *suite.Suite, confirmationKey, confirmed, tag []byte) bool {
	return s.VerifyMAC(confirmationKey, confirmed, tag)
}
