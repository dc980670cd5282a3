package sphinx

import (
	"fmt"
	"io"

	"github.com/strata-msg/strata/plugins/mixnet/aez"
)

// Forward payload flags (first byte of a forward payload plaintext in a
// geometry WithSURB).
const (
	forwardFlagNoSURB = 0x00
	forwardFlagSURB   = 0x01
)

// NewSURB returns a single-use reply block for path (1..NrHops hops, the
// last hop's commands including SURBReply, usually Recipient too) and the
// decryption keys its creator keeps. The SURB (SURBLength bytes) is
// reply header ‖ path[0].ID ‖ a fresh SPRP key ‖ IV; the keys are the hops'
// SPRP key material from the last hop to the first, then the SURB's own,
// 64 bytes each (Katzenpost's order). Keep the keys secret, index them by
// the SURB id, and pass them to DecryptSURBPayload; r supplies the
// randomness.
func (g *Geometry) NewSURB(r io.Reader, path []PathHop) (surb, keys []byte, err error) {
	if err := g.Validate(); err != nil {
		return nil, nil, err
	}
	if len(path) > 0 {
		if _, ok := path[len(path)-1].Commands.SURBReply(); !ok {
			return nil, nil, fmt.Errorf("%w: the last hop of a SURB path needs a SURBReply command", ErrPath)
		}
	}
	surb = make([]byte, g.SURBLength)
	hopKeys, err := g.newHeader(r, path, surb[:g.HeaderLength])
	if err != nil {
		return nil, nil, err
	}
	defer clearKeys(hopKeys)
	off := g.HeaderLength
	copy(surb[off:off+NodeIDLength], path[0].ID[:])
	off += NodeIDLength
	own := surb[off : off+SPRPKeyMaterialLength]
	if _, err := io.ReadFull(r, own); err != nil {
		clear(surb)
		return nil, nil, fmt.Errorf("sphinx: SURB key: %w", err)
	}
	keys = make([]byte, 0, (len(hopKeys)+1)*SPRPKeyMaterialLength)
	for i := len(hopKeys) - 1; i >= 0; i-- {
		keys = append(keys, hopKeys[i][:]...)
	}
	keys = append(keys, own...)
	return surb, keys, nil
}

// NewPacketFromSURB returns the reply packet for a SURB received from
// someone else, carrying payload (exactly ForwardPayloadLength bytes), and
// the node id of the first hop to send it to. The SURB is untrusted input:
// a wrong length, version or alpha is an error.
func (g *Geometry) NewPacketFromSURB(surb, payload []byte) (pkt []byte, firstHop NodeID, err error) {
	if err := g.Validate(); err != nil {
		return nil, firstHop, err
	}
	if err := g.checkLength("SURB", len(surb), g.SURBLength); err != nil {
		return nil, firstHop, err
	}
	if err := g.checkLength("reply payload", len(payload), g.ForwardPayloadLength); err != nil {
		return nil, firstHop, err
	}
	if surb[0] != 0 || surb[1] != 0 {
		return nil, firstHop, fmt.Errorf("%w: SURB header additional data %02x%02x", ErrVersion, surb[0], surb[1])
	}
	if err := CheckGroupElement(surb[alphaOffset:betaOffset]); err != nil {
		return nil, firstHop, fmt.Errorf("SURB alpha: %w", err)
	}
	off := g.HeaderLength
	copy(firstHop[:], surb[off:off+NodeIDLength])
	off += NodeIDLength
	key := surb[off : off+SPRPKeyLength]
	iv := surb[off+SPRPKeyLength : off+SPRPKeyMaterialLength]

	block := make([]byte, PayloadTagLength+len(payload))
	copy(block[PayloadTagLength:], payload)
	enc := aez.Encrypt(key, iv, nil, 0, block)
	clear(block)

	pkt = make([]byte, g.PacketLength)
	copy(pkt, surb[:g.HeaderLength])
	copy(pkt[g.HeaderLength:], enc)
	return pkt, firstHop, nil
}

// DecryptSURBPayload recovers the reply from payload, the Result.Payload
// the terminal hop returned for a SURBReply packet (PayloadTagLength +
// ForwardPayloadLength bytes), with the keys NewSURB returned. It undoes
// the hops' SPRP decryptions (AEZ-encrypt with each hop's key, last hop
// first), decrypts with the SURB's own key, checks the 32-byte zero tag and
// returns the ForwardPayloadLength bytes after it.
//
// On success keys is overwritten with zeros: a SURB is single-use. On
// error (ErrPayloadTag: wrong keys or an altered reply) keys are kept.
func (g *Geometry) DecryptSURBPayload(payload, keys []byte) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if err := g.checkLength("SURB reply payload", len(payload), PayloadTagLength+g.ForwardPayloadLength); err != nil {
		return nil, err
	}
	entries := len(keys) / SPRPKeyMaterialLength
	if len(keys)%SPRPKeyMaterialLength != 0 || entries < 2 || entries > g.NrHops+1 {
		return nil, fmt.Errorf("%w: %d bytes, want 64 × (hops+1) for 1..%d hops", ErrSURBKeys, len(keys), g.NrHops)
	}
	block := append([]byte(nil), payload...)
	for i := 0; i < entries-1; i++ {
		k := keys[i*SPRPKeyMaterialLength : (i+1)*SPRPKeyMaterialLength]
		next := aez.Encrypt(k[:SPRPKeyLength], k[SPRPKeyLength:], nil, 0, block)
		clear(block)
		block = next
	}
	own := keys[(entries-1)*SPRPKeyMaterialLength:]
	plain, err := aez.Decrypt(own[:SPRPKeyLength], own[SPRPKeyLength:], nil, 0, block)
	clear(block)
	if err != nil {
		return nil, fmt.Errorf("sphinx: SURB payload sprp: %w", err) // unreachable with tau 0
	}
	if !isZero(plain[:PayloadTagLength]) {
		clear(plain)
		return nil, ErrPayloadTag
	}
	clear(keys)
	return plain[PayloadTagLength:], nil
}

// EncodeForwardPayload returns the forward payload plaintext of a geometry
// WithSURB: flags (0x01 if surb is given, else 0x00) ‖ 0x00 ‖ the SURB or
// SURBLength zero bytes ‖ user (exactly UserForwardPayloadLength bytes).
func (g *Geometry) EncodeForwardPayload(surb, user []byte) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if !g.WithSURB {
		return nil, fmt.Errorf("%w: geometry has no room for a SURB", ErrForwardPayload)
	}
	if err := g.checkLength("user payload", len(user), g.UserForwardPayloadLength); err != nil {
		return nil, err
	}
	out := make([]byte, g.ForwardPayloadLength)
	if surb != nil {
		if err := g.checkLength("SURB", len(surb), g.SURBLength); err != nil {
			return nil, err
		}
		out[0] = forwardFlagSURB
		copy(out[ForwardPayloadHeaderLength:], surb)
	}
	copy(out[ForwardPayloadHeaderLength+g.SURBLength:], user)
	return out, nil
}

// DecodeForwardPayload splits a forward payload plaintext (as returned by
// Unwrap at a terminal hop) of a geometry WithSURB into the attached SURB
// (nil if none) and the user payload. The results alias b. Unknown flags,
// a non-zero reserved byte, or a non-zero SURB slot with flag 0x00 give
// ErrForwardPayload.
func (g *Geometry) DecodeForwardPayload(b []byte) (surb, user []byte, err error) {
	if err := g.Validate(); err != nil {
		return nil, nil, err
	}
	if !g.WithSURB {
		return nil, nil, fmt.Errorf("%w: geometry has no room for a SURB", ErrForwardPayload)
	}
	if err := g.checkLength("forward payload", len(b), g.ForwardPayloadLength); err != nil {
		return nil, nil, err
	}
	if b[1] != 0 {
		return nil, nil, fmt.Errorf("%w: reserved byte %#02x", ErrForwardPayload, b[1])
	}
	slot := b[ForwardPayloadHeaderLength : ForwardPayloadHeaderLength+g.SURBLength]
	user = b[ForwardPayloadHeaderLength+g.SURBLength:]
	switch b[0] {
	case forwardFlagNoSURB:
		if !isZero(slot) {
			return nil, nil, fmt.Errorf("%w: SURB slot not zero without the SURB flag", ErrForwardPayload)
		}
		return nil, user, nil
	case forwardFlagSURB:
		return slot, user, nil
	default:
		return nil, nil, fmt.Errorf("%w: flags %#02x", ErrForwardPayload, b[0])
	}
}
