package sphinx

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Routing command ids (Katzenpost core/sphinx/commands). Ids 0x00-0x7f are
// generic, 0x80-0xff implementation-defined.
const (
	nullCommandID        = 0x00
	nextNodeHopCommandID = 0x01
	recipientCommandID   = 0x02
	surbReplyCommandID   = 0x03
	nodeDelayCommandID   = 0x80
)

// Encoded sizes of the routing commands, id byte included.
const (
	nextNodeHopLength = 1 + NodeIDLength + MACLength // 65
	recipientLength   = 1 + RecipientIDLength        // 33
	surbReplyLength   = 1 + SURBIDLength             // 17
	nodeDelayLength   = 1 + 4                        // 5
)

// NodeID names a node in routing commands.
type NodeID [NodeIDLength]byte

// RecipientID names a recipient (a mailbox or service) at a terminal node.
type RecipientID [RecipientIDLength]byte

// SURBID names a SURB; its creator uses it to find the decryption keys.
type SURBID [SURBIDLength]byte

// Command is one routing command of a hop's routing block: NextNodeHop,
// NodeDelay, Recipient or SURBReply.
type Command interface {
	// AppendTo appends the command's wire encoding (id byte first) to b.
	AppendTo(b []byte) []byte
	// EncodedLen is the size of the wire encoding.
	EncodedLen() int
	isCommand()
}

// NextNodeHop (0x01) tells a hop where to send the packet and carries the
// header MAC the next hop will check. Packet creation adds it; callers do
// not put it in a path.
type NextNodeHop struct {
	ID  NodeID
	MAC [MACLength]byte
}

// NodeDelay (0x80) is the time a hop holds the packet before forwarding it,
// in milliseconds (encoded as a big-endian uint32).
type NodeDelay struct {
	Delay uint32
}

// Recipient (0x02) names the recipient at the terminal hop.
type Recipient struct {
	ID RecipientID
}

// SURBReply (0x03) marks a packet made from a SURB and names the SURB; its
// payload is under the SURB creator's keys and is not checked by the
// terminal hop.
type SURBReply struct {
	ID SURBID
}

// AppendTo appends 01 ‖ ID ‖ MAC.
func (c NextNodeHop) AppendTo(b []byte) []byte {
	b = append(b, nextNodeHopCommandID)
	b = append(b, c.ID[:]...)
	return append(b, c.MAC[:]...)
}

// AppendTo appends 80 ‖ delay (uint32 big-endian).
func (c NodeDelay) AppendTo(b []byte) []byte {
	b = append(b, nodeDelayCommandID)
	return binary.BigEndian.AppendUint32(b, c.Delay)
}

// AppendTo appends 02 ‖ ID.
func (c Recipient) AppendTo(b []byte) []byte {
	b = append(b, recipientCommandID)
	return append(b, c.ID[:]...)
}

// AppendTo appends 03 ‖ ID.
func (c SURBReply) AppendTo(b []byte) []byte {
	b = append(b, surbReplyCommandID)
	return append(b, c.ID[:]...)
}

// EncodedLen returns 65.
func (NextNodeHop) EncodedLen() int { return nextNodeHopLength }

// EncodedLen returns 5.
func (NodeDelay) EncodedLen() int { return nodeDelayLength }

// EncodedLen returns 33.
func (Recipient) EncodedLen() int { return recipientLength }

// EncodedLen returns 17.
func (SURBReply) EncodedLen() int { return surbReplyLength }

// Duration returns the delay as a time.Duration.
func (c NodeDelay) Duration() time.Duration { return time.Duration(c.Delay) * time.Millisecond }

func (NextNodeHop) isCommand() {}
func (NodeDelay) isCommand()   {}
func (Recipient) isCommand()   {}
func (SURBReply) isCommand()   {}

// Commands is the list of routing commands of one hop, in wire order.
type Commands []Command

// AppendTo appends the encodings of all commands, in order, to b.
func (cs Commands) AppendTo(b []byte) []byte {
	for _, c := range cs {
		b = c.AppendTo(b)
	}
	return b
}

// EncodedLen is the total size of the commands' encodings.
func (cs Commands) EncodedLen() int {
	n := 0
	for _, c := range cs {
		n += c.EncodedLen()
	}
	return n
}

// NextNodeHop returns the NextNodeHop command, if present.
func (cs Commands) NextNodeHop() (NextNodeHop, bool) { return find[NextNodeHop](cs) }

// NodeDelay returns the NodeDelay command, if present.
func (cs Commands) NodeDelay() (NodeDelay, bool) { return find[NodeDelay](cs) }

// Recipient returns the Recipient command, if present.
func (cs Commands) Recipient() (Recipient, bool) { return find[Recipient](cs) }

// SURBReply returns the SURBReply command, if present.
func (cs Commands) SURBReply() (SURBReply, bool) { return find[SURBReply](cs) }

func find[T Command](cs Commands) (T, bool) {
	for _, c := range cs {
		if v, ok := c.(T); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// ParseCommands decodes a routing block: commands one after the other until
// a null byte (after which every byte must be zero) or the end of b. It
// never panics; it returns an error wrapping ErrUnknownCommand,
// ErrTruncatedCommand, ErrCommandPadding or ErrDuplicateCommand (each
// command kind may appear at most once). An all-zero block gives no
// commands. The result does not alias b.
func ParseCommands(b []byte) (Commands, error) {
	var cs Commands
	var seen [4]bool // next hop, delay, recipient, SURB reply
	mark := func(kind int, name string, off int) error {
		if seen[kind] {
			return fmt.Errorf("%w: second %s at offset %d", ErrDuplicateCommand, name, off)
		}
		seen[kind] = true
		return nil
	}
	for off := 0; off < len(b); {
		rest := b[off:]
		switch rest[0] {
		case nullCommandID:
			for i, v := range rest {
				if v != 0 {
					return nil, fmt.Errorf("%w: byte %#02x at offset %d", ErrCommandPadding, v, off+i)
				}
			}
			return cs, nil
		case nextNodeHopCommandID:
			if len(rest) < nextNodeHopLength {
				return nil, fmt.Errorf("%w: NextNodeHop at offset %d needs %d bytes, %d left", ErrTruncatedCommand, off, nextNodeHopLength, len(rest))
			}
			if err := mark(0, "NextNodeHop", off); err != nil {
				return nil, err
			}
			var c NextNodeHop
			copy(c.ID[:], rest[1:1+NodeIDLength])
			copy(c.MAC[:], rest[1+NodeIDLength:nextNodeHopLength])
			cs = append(cs, c)
			off += nextNodeHopLength
		case nodeDelayCommandID:
			if len(rest) < nodeDelayLength {
				return nil, fmt.Errorf("%w: NodeDelay at offset %d needs %d bytes, %d left", ErrTruncatedCommand, off, nodeDelayLength, len(rest))
			}
			if err := mark(1, "NodeDelay", off); err != nil {
				return nil, err
			}
			cs = append(cs, NodeDelay{Delay: binary.BigEndian.Uint32(rest[1:nodeDelayLength])})
			off += nodeDelayLength
		case recipientCommandID:
			if len(rest) < recipientLength {
				return nil, fmt.Errorf("%w: Recipient at offset %d needs %d bytes, %d left", ErrTruncatedCommand, off, recipientLength, len(rest))
			}
			if err := mark(2, "Recipient", off); err != nil {
				return nil, err
			}
			var c Recipient
			copy(c.ID[:], rest[1:recipientLength])
			cs = append(cs, c)
			off += recipientLength
		case surbReplyCommandID:
			if len(rest) < surbReplyLength {
				return nil, fmt.Errorf("%w: SURBReply at offset %d needs %d bytes, %d left", ErrTruncatedCommand, off, surbReplyLength, len(rest))
			}
			if err := mark(3, "SURBReply", off); err != nil {
				return nil, err
			}
			var c SURBReply
			copy(c.ID[:], rest[1:surbReplyLength])
			cs = append(cs, c)
			off += surbReplyLength
		default:
			return nil, fmt.Errorf("%w: id %#02x at offset %d", ErrUnknownCommand, rest[0], off)
		}
	}
	return cs, nil
}
