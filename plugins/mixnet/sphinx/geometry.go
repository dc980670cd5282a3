package sphinx

import "fmt"

// Sizes fixed by Katzenpost's X25519 Sphinx.
const (
	// GroupElementLength is the size of an X25519 public value (alpha).
	GroupElementLength = 32
	// NodeIDLength is the size of a node id (Katzenpost: BLAKE2b-256 of
	// the node's identity public key).
	NodeIDLength = 32
	// RecipientIDLength is the size of a recipient id.
	RecipientIDLength = 32
	// SURBIDLength is the size of a SURB id.
	SURBIDLength = 16
	// MACLength is the size of the header MAC (HMAC-SHA256, untruncated).
	MACLength = 32
	// AdditionalDataLength is the size of the header's leading version
	// bytes (00 00).
	AdditionalDataLength = 2
	// PayloadTagLength is the size of the zero block prepended to every
	// payload before SPRP encryption and checked at the end.
	PayloadTagLength = 32
	// SPRPKeyLength is the size of an AEZ payload key.
	SPRPKeyLength = 48
	// SPRPIVLength is the size of an AEZ payload nonce (the header IV).
	SPRPIVLength = 16
	// SPRPKeyMaterialLength is one SPRP key and its IV, the size of one
	// entry of a SURB decryption token.
	SPRPKeyMaterialLength = SPRPKeyLength + SPRPIVLength
	// ForwardPayloadHeaderLength is the flags byte and the reserved byte
	// in front of the SURB slot of a forward payload plaintext.
	ForwardPayloadHeaderLength = 2
	// DefaultNrHops is Katzenpost's deployed path length: gateway, three
	// mix layers and the terminal node.
	DefaultNrHops = 5
	// DefaultUserForwardPayloadLength is Katzenpost's deployed user
	// payload size (genconfig --UserForwardPayloadLength 2000).
	DefaultUserForwardPayloadLength = 2000
	// MaxNrHops bounds NrHops so that sizes stay small; Katzenpost tests
	// up to 10-hop headers.
	MaxNrHops = 32
	// MaxUserForwardPayloadLength bounds the user payload (1 MiB).
	MaxUserForwardPayloadLength = 1 << 20
)

// Geometry is the set of sizes every node of one network shares. Build it
// with NewGeometry; the derived fields are filled in there and checked by
// Validate, which every method calls first.
type Geometry struct {
	// NrHops is the maximum number of hops of a path.
	NrHops int
	// UserForwardPayloadLength is the application payload of a forward
	// packet.
	UserForwardPayloadLength int
	// WithSURB reserves room for a SURB (and the 2-byte forward payload
	// header) in every forward payload.
	WithSURB bool

	// PerHopRoutingInfoLength is one hop's routing block: NextNodeHop (65)
	// plus room for a SURBReply-sized command (17), 82 bytes.
	PerHopRoutingInfoLength int
	// RoutingInfoLength is NrHops routing blocks (beta).
	RoutingInfoLength int
	// HeaderLength is AD (2) + alpha (32) + beta + gamma (32).
	HeaderLength int
	// SURBLength is a reply header, the first hop's node id and one SPRP
	// key with its IV.
	SURBLength int
	// ForwardPayloadLength is the payload every packet carries after the
	// payload tag: UserForwardPayloadLength, plus 2 + SURBLength when
	// WithSURB.
	ForwardPayloadLength int
	// PacketLength is HeaderLength + PayloadTagLength +
	// ForwardPayloadLength: the size of every packet on every link.
	PacketLength int
}

// Offsets inside a header.
const (
	alphaOffset = AdditionalDataLength
	betaOffset  = alphaOffset + GroupElementLength
)

// NewGeometry returns the geometry for X25519 Sphinx with paths of at most
// nrHops hops and forward payloads of userForwardPayloadLength bytes, with
// room for a SURB if withSURB is set. NewGeometry(2000, 5, true) is
// Katzenpost's deployed geometry (3082-byte packets).
func NewGeometry(userForwardPayloadLength, nrHops int, withSURB bool) (*Geometry, error) {
	g, err := geometryFor(userForwardPayloadLength, nrHops, withSURB)
	if err != nil {
		return nil, err
	}
	return &g, nil
}

func geometryFor(userForwardPayloadLength, nrHops int, withSURB bool) (Geometry, error) {
	if nrHops < 1 || nrHops > MaxNrHops {
		return Geometry{}, fmt.Errorf("%w: NrHops %d, want 1..%d", ErrGeometry, nrHops, MaxNrHops)
	}
	if userForwardPayloadLength < 0 || userForwardPayloadLength > MaxUserForwardPayloadLength {
		return Geometry{}, fmt.Errorf("%w: UserForwardPayloadLength %d, want 0..%d", ErrGeometry, userForwardPayloadLength, MaxUserForwardPayloadLength)
	}
	g := Geometry{NrHops: nrHops, UserForwardPayloadLength: userForwardPayloadLength, WithSURB: withSURB}
	g.derive()
	return g, nil
}

// DefaultGeometry returns Katzenpost's deployed geometry: 5 hops, 2000-byte
// user payload, room for a SURB; packets are 3082 bytes.
func DefaultGeometry() *Geometry {
	g, err := NewGeometry(DefaultUserForwardPayloadLength, DefaultNrHops, true)
	if err != nil {
		panic("sphinx: default geometry: " + err.Error()) // unreachable: constants are in range
	}
	return g
}

func (g *Geometry) derive() {
	g.PerHopRoutingInfoLength = nextNodeHopLength + surbReplyLength
	g.RoutingInfoLength = g.PerHopRoutingInfoLength * g.NrHops
	g.HeaderLength = AdditionalDataLength + GroupElementLength + g.RoutingInfoLength + MACLength
	g.SURBLength = g.HeaderLength + NodeIDLength + SPRPKeyMaterialLength
	g.ForwardPayloadLength = g.UserForwardPayloadLength
	if g.WithSURB {
		g.ForwardPayloadLength += ForwardPayloadHeaderLength + g.SURBLength
	}
	g.PacketLength = g.HeaderLength + PayloadTagLength + g.ForwardPayloadLength
}

// Validate reports whether g is a geometry NewGeometry could have returned:
// its inputs in range and every derived size consistent with them. It
// returns an error wrapping ErrGeometry otherwise.
func (g *Geometry) Validate() error {
	if g == nil {
		return fmt.Errorf("%w: nil", ErrGeometry)
	}
	want, err := geometryFor(g.UserForwardPayloadLength, g.NrHops, g.WithSURB)
	if err != nil {
		return err
	}
	if want != *g {
		return fmt.Errorf("%w: derived sizes %+v do not match the inputs (want %+v)", ErrGeometry, *g, want)
	}
	return nil
}

// macOffset is where gamma starts in a header.
func (g *Geometry) macOffset() int { return betaOffset + g.RoutingInfoLength }

// String returns the geometry's sizes on one line.
func (g *Geometry) String() string {
	return fmt.Sprintf("sphinx geometry x25519: hops %d, per-hop %d, routing info %d, header %d, SURB %d, user payload %d, forward payload %d, packet %d",
		g.NrHops, g.PerHopRoutingInfoLength, g.RoutingInfoLength, g.HeaderLength, g.SURBLength,
		g.UserForwardPayloadLength, g.ForwardPayloadLength, g.PacketLength)
}
