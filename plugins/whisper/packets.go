package whisper

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// errBadPacket is wrapped by every packet decoding error; a peer that sends
// one is penalised (geth disconnects it).
var errBadPacket = errors.New("whisper: bad packet")

// status is the content of a Status packet (code 0).
type status struct {
	Version uint64
	PoW     float64
	PoWSet  bool   // the PoW item was present and a uint
	Bloom   []byte // nil: full node (empty on the wire)
	Light   bool
}

// encodeStatus encodes a Status packet payload exactly as geth v1.9.20:
// [6, Float64bits(pow), bloom, light]. A nil bloom is sent as the empty
// string (a full node), as geth does while its bloom is unset.
func encodeStatus(pow float64, bloom []byte, light bool) []byte {
	b, err := rlp.EncodeToBytes([]any{wire.ProtocolVersion, math.Float64bits(pow), bloom, light})
	if err != nil {
		panic(err) // cannot happen for these types
	}
	return b
}

// validPoW reports whether v is an acceptable PoW requirement.
func validPoW(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}

// decodeStatus decodes a Status payload leniently, as geth's handshake:
// only the version is mandatory; a missing or non-uint PoW item skips PoW
// and bloom; a missing or invalid light flag reads as false; trailing items
// are ignored.
func decodeStatus(b []byte) (*status, error) {
	s := rlp.NewStream(bytes.NewReader(b), uint64(len(b)))
	if _, err := s.List(); err != nil {
		return nil, fmt.Errorf("%w: status is not a list: %v", errBadPacket, err)
	}
	st := &status{}
	v, err := s.Uint64()
	if err != nil {
		return nil, fmt.Errorf("%w: status version: %v", errBadPacket, err)
	}
	if v != wire.ProtocolVersion {
		return nil, fmt.Errorf("%w: status version %d, want %d", errBadPacket, v, wire.ProtocolVersion)
	}
	st.Version = v
	bits, err := s.Uint64()
	if err != nil {
		return st, nil
	}
	st.PoW, st.PoWSet = math.Float64frombits(bits), true
	if !validPoW(st.PoW) {
		return nil, fmt.Errorf("%w: status PoW %v", errBadPacket, st.PoW)
	}
	bloom, err := s.Bytes()
	if err == nil {
		switch len(bloom) {
		case 0:
		case wire.BloomFilterSize:
			st.Bloom = bloom
		default:
			return nil, fmt.Errorf("%w: status bloom of %d bytes", errBadPacket, len(bloom))
		}
	}
	if light, err := s.Bool(); err == nil {
		st.Light = light
	}
	return st, nil
}

// encodePoWRequirement encodes a code-2 payload.
func encodePoWRequirement(pow float64) []byte {
	b, _ := rlp.EncodeToBytes(math.Float64bits(pow))
	return b
}

// decodePoWRequirement decodes a code-2 payload.
func decodePoWRequirement(b []byte) (float64, error) {
	var bits uint64
	if err := rlp.DecodeBytes(b, &bits); err != nil {
		return 0, fmt.Errorf("%w: PoW requirement: %v", errBadPacket, err)
	}
	v := math.Float64frombits(bits)
	if !validPoW(v) {
		return 0, fmt.Errorf("%w: PoW requirement %v", errBadPacket, v)
	}
	return v, nil
}

// encodeBloom encodes a code-3 payload.
func encodeBloom(bloom []byte) []byte {
	b, _ := rlp.EncodeToBytes(bloom)
	return b
}

// decodeBloom decodes a code-3 payload: exactly 64 bytes.
func decodeBloom(b []byte) ([]byte, error) {
	var bloom []byte
	if err := rlp.DecodeBytes(b, &bloom); err != nil {
		return nil, fmt.Errorf("%w: bloom: %v", errBadPacket, err)
	}
	if len(bloom) != wire.BloomFilterSize {
		return nil, fmt.Errorf("%w: bloom of %d bytes", errBadPacket, len(bloom))
	}
	return bloom, nil
}

// decodeMessages decodes a code-1 payload: an RLP list of envelopes. Any
// error rejects the whole packet, as geth's decoding of []*Envelope does.
func decodeMessages(b []byte) ([]*wire.Envelope, error) {
	s := rlp.NewStream(bytes.NewReader(b), uint64(len(b)))
	if _, err := s.List(); err != nil {
		return nil, fmt.Errorf("%w: messages: %v", errBadPacket, err)
	}
	var out []*wire.Envelope
	for {
		raw, err := s.Raw()
		if errors.Is(err, rlp.EOL) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: messages: %v", errBadPacket, err)
		}
		e, err := wire.DecodeEnvelope(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadPacket, err)
		}
		out = append(out, e)
	}
	if err := s.ListEnd(); err != nil {
		return nil, fmt.Errorf("%w: messages: %v", errBadPacket, err)
	}
	return out, nil
}

// encodeMessages builds a code-1 payload from already encoded envelopes.
func encodeMessages(raws [][]byte) []byte {
	list := make([]rlp.RawValue, len(raws))
	for i, r := range raws {
		list[i] = r
	}
	b, _ := rlp.EncodeToBytes(list)
	return b
}

// packet prefixes an RLP payload with its message code.
func packet(code byte, payload []byte) []byte {
	out := make([]byte, 0, 1+len(payload))
	out = append(out, code)
	return append(out, payload...)
}
