package whisper

import (
	"bytes"
	"encoding/binary"
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
	envs, _, err := decodeMessagesRaw(b)
	return envs, err
}

// decodeMessagesRaw is decodeMessages that also returns each envelope's
// encoding in the packet. The envelope decoder accepts only canonical
// encodings, so that is exactly e.Encode(), and its Keccak256 is e.Hash()
// (the invariant wire's FuzzDecodeEnvelope checks).
func decodeMessagesRaw(b []byte) ([]*wire.Envelope, [][]byte, error) {
	// The envelopes' encodings, and their Data, are sub-slices of b, not
	// copies: the pool keeps them, and b is the frame's own payload.
	content, _, err := rlp.SplitList(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: messages: %v", errBadPacket, err)
	}
	var out []*wire.Envelope
	var raws [][]byte
	for len(content) > 0 {
		_, _, rest, err := rlp.Split(content)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: messages: %v", errBadPacket, err)
		}
		raw := content[: len(content)-len(rest) : len(content)-len(rest)]
		content = rest
		e, err := wire.DecodeEnvelopeShared(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errBadPacket, err)
		}
		out = append(out, e)
		raws = append(raws, raw)
	}
	return out, raws, nil
}

// encodeMessages builds a code-1 payload from already encoded envelopes.
func encodeMessages(raws [][]byte) []byte {
	return appendMessages(nil, raws)
}

// messagesPacket is packet(MessagesCode, encodeMessages(raws)), built in
// one allocation.
func messagesPacket(raws [][]byte) []byte {
	return appendMessages([]byte{wire.MessagesCode}, raws)
}

// appendMessages appends the RLP list of the encoded envelopes raws to
// dst: the list header, then the envelopes as they are.
func appendMessages(dst []byte, raws [][]byte) []byte {
	size := 0
	for _, r := range raws {
		size += len(r)
	}
	var head [9]byte
	h := listHeader(head[:0], size)
	if dst == nil {
		dst = make([]byte, 0, len(h)+size)
	} else {
		dst = append(make([]byte, 0, len(dst)+len(h)+size), dst...)
	}
	dst = append(dst, h...)
	for _, r := range raws {
		dst = append(dst, r...)
	}
	return dst
}

// listHeader appends the RLP header of a list whose content is size bytes.
func listHeader(dst []byte, size int) []byte {
	if size < 56 {
		return append(dst, 0xc0+byte(size))
	}
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], uint64(size))
	i := 0
	for be[i] == 0 {
		i++
	}
	dst = append(dst, 0xf7+byte(8-i))
	return append(dst, be[i:]...)
}

// packet prefixes an RLP payload with its message code.
func packet(code byte, payload []byte) []byte {
	out := make([]byte, 0, 1+len(payload))
	out = append(out, code)
	return append(out, payload...)
}
