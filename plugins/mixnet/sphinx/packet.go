package sphinx

import (
	"crypto/hmac"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/strata-msg/strata/plugins/mixnet/aez"
)

// ReplayTagLength is the size of a replay tag.
const ReplayTagLength = 32

// ReplayTag identifies a packet for the replay cache of the key that
// unwrapped it: SHA-512/256 of the packet's alpha (Katzenpost's code; its
// prose spec says a hash of the shared secret).
type ReplayTag [ReplayTagLength]byte

// PathHop is one hop of a path given to NewPacket or NewSURB.
type PathHop struct {
	// ID is the hop's node id; the previous hop's NextNodeHop carries it.
	// The first hop's id is not in the header (NewSURB puts it in the SURB).
	ID NodeID
	// PublicKey is the hop's Sphinx key for the epoch in which the packet
	// will reach it.
	PublicKey PublicKey
	// Commands are the hop's own routing commands, without NextNodeHop:
	// NodeDelay for a mix hop; Recipient (and SURBReply in a SURB) for the
	// last hop. Non-terminal hops must leave 65 bytes of their 82-byte
	// block for the NextNodeHop the creator appends.
	Commands Commands
}

// Result is what Unwrap returns for a packet that authenticated.
type Result struct {
	// Commands are the hop's routing commands, in wire order.
	Commands Commands
	// ReplayTag must be tested against (and inserted into) the replay
	// cache of the key that unwrapped the packet; a hit means drop.
	ReplayTag ReplayTag
	// Payload is set at the terminal hop (no NextNodeHop). Without
	// SURBReply it is the plaintext forward payload (the zero tag checked
	// and removed, ForwardPayloadLength bytes). With SURBReply it is the
	// whole payload block still under the SURB creator's keys
	// (PayloadTagLength + ForwardPayloadLength bytes), for
	// DecryptSURBPayload. It never aliases the packet.
	Payload []byte
}

// IsTerminal reports whether the hop is the last one (no NextNodeHop).
func (r *Result) IsTerminal() bool {
	_, next := r.Commands.NextNodeHop()
	return !next
}

// Unwrap processes pkt at one hop with the hop's private key.
//
// The packet must be exactly PacketLength bytes. Unwrap checks, in this
// order: the version bytes, alpha (canonical, not small order, before any
// scalar multiplication), the X25519 shared secret (not zero), the header
// MAC (constant-time), the routing commands, and at a terminal hop without
// SURBReply the payload tag. On any error pkt is left exactly as it was,
// so a relay can try the keys of neighbouring epochs in turn (a wrong key
// fails at the MAC) and must then count and drop the packet.
//
// At a non-terminal hop (the commands hold a NextNodeHop) pkt is rewritten
// in place into the packet for the next hop: blinded alpha, the shifted
// routing information, the next hop's MAC and the payload with this hop's
// SPRP layer removed. At a terminal hop pkt is not modified and the
// payload is returned in Result.Payload.
//
// Which commands a hop accepts is the caller's policy (Katzenpost mixes
// take only NodeDelay + NextNodeHop). The replay check is the caller's
// too: only after Unwrap succeeds, against the cache of the key used.
func (g *Geometry) Unwrap(priv *PrivateKey, pkt []byte) (*Result, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if priv == nil {
		return nil, errors.New("sphinx: unwrap: nil private key")
	}
	if err := g.checkLength("packet", len(pkt), g.PacketLength); err != nil {
		return nil, err
	}
	if pkt[0] != 0 || pkt[1] != 0 {
		return nil, fmt.Errorf("%w: additional data %02x%02x, want 0000", ErrVersion, pkt[0], pkt[1])
	}
	var alpha [GroupElementLength]byte
	copy(alpha[:], pkt[alphaOffset:betaOffset])
	if err := CheckGroupElement(alpha[:]); err != nil {
		return nil, fmt.Errorf("unwrap: alpha: %w", err)
	}

	var secret x25519.Key
	defer clear(secret[:])
	if !x25519Shared(&secret, &priv.secret, &alpha) {
		return nil, fmt.Errorf("unwrap: %w: zero shared secret", ErrInvalidGroupElement)
	}
	var keys hopKeys
	defer keys.zero()
	if err := deriveKeys(&keys, &secret); err != nil {
		return nil, err
	}

	macOff := g.macOffset()
	mac := keys.headerMAC(pkt[:macOff])
	if !hmac.Equal(mac[:], pkt[macOff:g.HeaderLength]) {
		return nil, ErrInvalidMAC
	}

	// beta ‖ 0^P, decrypted: this hop's block, then the next beta.
	p := g.PerHopRoutingInfoLength
	ri := make([]byte, g.RoutingInfoLength+p)
	copy(ri, pkt[betaOffset:macOff])
	if err := keys.headerStream(ri); err != nil {
		return nil, err
	}
	cmds, err := ParseCommands(ri[:p])
	if err != nil {
		return nil, fmt.Errorf("unwrap: %w: %w", ErrInvalidCommands, err)
	}

	payload, err := aez.Decrypt(keys.sprpKey[:], keys.hdrIV[:], nil, 0, pkt[g.HeaderLength:])
	if err != nil {
		return nil, fmt.Errorf("sphinx: payload sprp: %w", err) // unreachable with tau 0
	}

	res := &Result{Commands: cmds, ReplayTag: sha512.Sum512_256(alpha[:])}
	if next, ok := cmds.NextNodeHop(); ok {
		var blinded x25519.Key
		if !x25519Shared(&blinded, &keys.blind, &alpha) {
			return nil, fmt.Errorf("unwrap: %w: zero blinded alpha", ErrInvalidGroupElement) // unreachable: alpha passed the checks
		}
		copy(pkt[alphaOffset:betaOffset], blinded[:])
		copy(pkt[betaOffset:macOff], ri[p:])
		copy(pkt[macOff:g.HeaderLength], next.MAC[:])
		copy(pkt[g.HeaderLength:], payload)
		return res, nil
	}
	if _, ok := cmds.SURBReply(); ok {
		res.Payload = payload
		return res, nil
	}
	if !isZero(payload[:PayloadTagLength]) {
		return nil, ErrPayloadTag
	}
	res.Payload = payload[PayloadTagLength:]
	return res, nil
}

// NewPacket returns a forward packet carrying payload (exactly
// ForwardPayloadLength bytes) along path (1..NrHops hops), to be sent to
// path[0]. Randomness (the ephemeral key and the padding of unused hops)
// is read from r.
func (g *Geometry) NewPacket(r io.Reader, path []PathHop, payload []byte) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if err := g.checkLength("forward payload", len(payload), g.ForwardPayloadLength); err != nil {
		return nil, err
	}
	pkt := make([]byte, g.PacketLength)
	keys, err := g.newHeader(r, path, pkt[:g.HeaderLength])
	if err != nil {
		return nil, err
	}
	defer clearKeys(keys)
	block := make([]byte, PayloadTagLength+len(payload))
	copy(block[PayloadTagLength:], payload)
	for i := len(keys) - 1; i >= 0; i-- {
		next := aez.Encrypt(keys[i][:SPRPKeyLength], keys[i][SPRPKeyLength:], nil, 0, block)
		clear(block)
		block = next
	}
	copy(pkt[g.HeaderLength:], block)
	return pkt, nil
}

// checkPath validates a path for a header of this geometry.
func (g *Geometry) checkPath(path []PathHop) error {
	if len(path) < 1 || len(path) > g.NrHops {
		return fmt.Errorf("%w: %d hops, want 1..%d", ErrPath, len(path), g.NrHops)
	}
	for i := range path {
		if err := CheckGroupElement(path[i].PublicKey[:]); err != nil {
			return fmt.Errorf("%w: hop %d public key: %w", ErrPath, i, err)
		}
		room := g.PerHopRoutingInfoLength
		if i < len(path)-1 {
			room -= nextNodeHopLength
		}
		kinds := map[string]bool{}
		for _, c := range path[i].Commands {
			name := fmt.Sprintf("%T", c)
			switch c.(type) {
			case nil:
				return fmt.Errorf("%w: hop %d: nil command", ErrPath, i)
			case NextNodeHop:
				return fmt.Errorf("%w: hop %d: NextNodeHop is added by packet creation", ErrPath, i)
			}
			if kinds[name] {
				return fmt.Errorf("%w: hop %d: two %s commands", ErrPath, i, name)
			}
			kinds[name] = true
		}
		if n := path[i].Commands.EncodedLen(); n > room {
			return fmt.Errorf("%w: hop %d: commands take %d bytes, %d available", ErrPath, i, n, room)
		}
	}
	return nil
}

// newHeader writes a header for path into hdr (HeaderLength bytes) and
// returns each hop's SPRP key material (key ‖ IV), in path order. The
// caller must clear the returned keys.
func (g *Geometry) newHeader(r io.Reader, path []PathHop, hdr []byte) ([][SPRPKeyMaterialLength]byte, error) {
	if err := g.checkPath(path); err != nil {
		return nil, err
	}
	n := len(path)
	p := g.PerHopRoutingInfoLength
	rl := g.RoutingInfoLength

	var x x25519.Key
	defer clear(x[:])
	if _, err := io.ReadFull(r, x[:]); err != nil {
		return nil, fmt.Errorf("sphinx: ephemeral key: %w", err)
	}
	alphas := make([]x25519.Key, n)
	x25519.KeyGen(&alphas[0], &x)

	keys := make([]hopKeys, n)
	defer func() {
		for i := range keys {
			keys[i].zero()
		}
	}()
	var s x25519.Key
	defer clear(s[:])
	for i := range path {
		if !x25519Shared(&s, &x, (*[32]byte)(&path[i].PublicKey)) {
			return nil, fmt.Errorf("%w: hop %d: zero shared secret", ErrInvalidGroupElement, i)
		}
		for j := 0; j < i; j++ {
			if !x25519Shared(&s, &keys[j].blind, (*[32]byte)(&s)) {
				return nil, fmt.Errorf("%w: hop %d: zero blinded secret", ErrInvalidGroupElement, i)
			}
		}
		if err := deriveKeys(&keys[i], &s); err != nil {
			return nil, err
		}
		if i > 0 && !x25519Shared(&alphas[i], &keys[i-1].blind, (*[32]byte)(&alphas[i-1])) {
			return nil, fmt.Errorf("%w: hop %d: zero blinded alpha", ErrInvalidGroupElement, i)
		}
	}

	// Keystreams and fillers: hop i's keystream covers beta ‖ 0^P; its
	// tail beyond (NrHops-i)·P is what the appended zeros turn into.
	streams := make([][]byte, n)
	fillers := make([][]byte, n)
	keystreams := make([]byte, n*(rl+p))
	defer clear(keystreams)
	for i := range path {
		ks := keystreams[i*(rl+p) : (i+1)*(rl+p)]
		if err := keys[i].headerStream(ks); err != nil {
			return nil, err
		}
		streams[i] = ks[:(g.NrHops-i)*p]
		fillers[i] = ks[(g.NrHops-i)*p:]
		if i > 0 {
			xorBytes(fillers[i][:i*p], fillers[i-1])
		}
	}

	// Build beta from the last hop backwards in one buffer: beta_i is
	// buf[i·P:], hop i's block followed by beta_{i+1}. The routing blocks
	// of unused hops (after hop n-1's block) are random bytes.
	buf := make([]byte, rl)
	if _, err := io.ReadFull(r, buf[n*p:]); err != nil {
		return nil, fmt.Errorf("sphinx: routing padding: %w", err)
	}
	var mac [MACLength]byte
	ad := []byte{0, 0}
	for i := n - 1; i >= 0; i-- {
		start := i * p
		block := buf[start : start+p]
		clear(block)
		// checkPath made sure the commands fit: the appends stay inside
		// block, whose remaining bytes are the zero padding.
		b := path[i].Commands.AppendTo(block[:0:p])
		if i < n-1 {
			NextNodeHop{ID: path[i+1].ID, MAC: mac}.AppendTo(b)
		}
		beta := buf[start:]
		xorBytes(beta, streams[i])
		if i > 0 {
			mac = keys[i].headerMAC(ad, alphas[i][:], beta, fillers[i-1])
		} else {
			mac = keys[i].headerMAC(ad, alphas[i][:], beta)
		}
	}
	// buf[0:] is beta_0 (NrHops·P bytes).
	clear(hdr[:AdditionalDataLength])
	copy(hdr[alphaOffset:betaOffset], alphas[0][:])
	copy(hdr[betaOffset:g.macOffset()], buf)
	copy(hdr[g.macOffset():g.HeaderLength], mac[:])

	out := make([][SPRPKeyMaterialLength]byte, n)
	for i := range keys {
		out[i] = keys[i].sprpKeyMaterial()
	}
	return out, nil
}

func clearKeys(keys [][SPRPKeyMaterialLength]byte) {
	for i := range keys {
		clear(keys[i][:])
	}
}

func xorBytes(dst, src []byte) {
	for i := range src {
		dst[i] ^= src[i]
	}
}

// checkLength returns ErrTruncated or ErrOversize, wrapped, if got != want.
func (g *Geometry) checkLength(what string, got, want int) error {
	switch {
	case got < want:
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrTruncated, what, got, want)
	case got > want:
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrOversize, what, got, want)
	}
	return nil
}
