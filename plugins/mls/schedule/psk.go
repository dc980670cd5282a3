package schedule

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/strata-msg/strata/plugins/mls/suite"
)

// PSK is one pre-shared key that a Commit or Welcome names: its encoded
// PreSharedKeyID and the secret the ID stands for.
type PSK struct {
	ID     []byte // an encoded PreSharedKeyID (RFC 9420 §8.4)
	Secret []byte
}

// PSKSecret chains the pre-shared keys of an epoch into psk_secret (RFC 9420
// §8.4), in the order given:
//
//	psk_extracted[i] = Extract(0, psk[i])
//	psk_input[i]     = ExpandWithLabel(psk_extracted[i], "derived psk", PSKLabel(id[i], i, n), Nh)
//	psk_secret[0]    = 0
//	psk_secret[i+1]  = Extract(psk_input[i], psk_secret[i])
//
// where 0 is Nh zero bytes and PSKLabel = PreSharedKeyID || uint16 index ||
// uint16 count. With no PSKs, psk_secret is Nh zero bytes.
func PSKSecret(s *suite.Suite, psks []PSK) ([]byte, error) {
	if len(psks) > math.MaxUint16 {
		return nil, fmt.Errorf("mls/schedule: %d PSKs, at most %d fit a PSKLabel", len(psks), math.MaxUint16)
	}
	secret := make([]byte, s.Nh())
	for i, p := range psks {
		extracted, err := s.Extract(nil, p.Secret)
		if err != nil {
			return nil, fmt.Errorf("mls/schedule: psk %d: %w", i, err)
		}
		label := make([]byte, 0, len(p.ID)+4)
		label = append(label, p.ID...)
		label = binary.BigEndian.AppendUint16(label, uint16(i))
		label = binary.BigEndian.AppendUint16(label, uint16(len(psks)))
		input, err := s.ExpandWithLabel(extracted, "derived psk", label, s.Nh())
		clear(extracted)
		if err != nil {
			return nil, fmt.Errorf("mls/schedule: psk %d: %w", i, err)
		}
		next, err := s.Extract(input, secret)
		clear(input)
		clear(secret)
		if err != nil {
			return nil, fmt.Errorf("mls/schedule: psk %d: %w", i, err)
		}
		secret = next
	}
	return secret, nil
}
