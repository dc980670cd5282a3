package devp2p

import (
	"errors"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// maxCodedLength is the most message codes a protocol may declare: a frame
// carries its code in one byte.
const maxCodedLength = 256

// protocol is one subprotocol registered at Start.
type protocol struct {
	name    string
	version uint
	// length is the number of message codes, devp2p's Protocol.Length.
	length uint64
	// coded says that frames carry their message code in the payload's
	// first byte. A protocol with a single code is opaque: the payload is
	// message 0's payload, whole.
	coded bool
}

// protocolTable maps frame protocol names to the registered subprotocols.
// It does not change after Start, so it is read without locking.
type protocolTable struct {
	byName map[string]*protocol
	list   []*protocol // sorted by name
}

// newProtocolTable checks the protocols of a StartRequest as every overlay
// does (p2pkit.Protocols: names, one version per name, exact repeats
// ignored) and, for devp2p, that a protocol's message codes fit the
// one-byte code of a frame (at most 256).
func newProtocolTable(list []*commonv1.Protocol) (protocolTable, error) {
	checked, err := p2pkit.Protocols(list)
	if err != nil {
		return protocolTable{}, err
	}
	t := protocolTable{byName: make(map[string]*protocol, len(checked))}
	for _, p := range checked {
		length := uint64(p.GetMessageCodes())
		if length > maxCodedLength {
			return protocolTable{}, fmt.Errorf("protocol %q declares %d message codes; at most %d fit the one-byte code of a frame", p.GetName(), length, maxCodedLength)
		}
		np := &protocol{name: p.GetName(), version: uint(p.GetVersion()), length: length, coded: length > 1}
		t.byName[np.name] = np
		t.list = append(t.list, np) // sorted by name, as p2pkit returns them
	}
	return t, nil
}

// Errors of splitFrame.
var (
	errNoCode  = errors.New("frame has no message code byte")
	errBadCode = errors.New("message code is not below the protocol's message_codes")
)

// splitFrame turns a DOWN frame's payload into a devp2p message code and
// message payload. For a coded protocol the first byte is the code and
// the rest the raw RLP payload; for an opaque one the code is 0 and the
// payload is the whole frame. body aliases payload.
func (p *protocol) splitFrame(payload []byte) (code uint64, body []byte, err error) {
	if !p.coded {
		return 0, payload, nil
	}
	if len(payload) == 0 {
		return 0, nil, errNoCode
	}
	code = uint64(payload[0])
	if code >= p.length {
		return code, nil, fmt.Errorf("%w: code %d, %d codes", errBadCode, code, p.length)
	}
	return code, payload[1:], nil
}

// frameSize is the size of the frame payload that carries a message of
// size bytes.
func (p *protocol) frameSize(size uint32) uint64 {
	if p.coded {
		return uint64(size) + 1
	}
	return uint64(size)
}

// newFrameBuffer returns a frame payload of the right size for a message
// with code and size bytes, and the part of it the message's bytes go in.
// The reader of a message never sees a code at or above length: devp2p
// disconnects a peer that sends one before it reaches the protocol.
func (p *protocol) newFrameBuffer(code uint64, size uint32) (frame, body []byte) {
	if !p.coded {
		b := make([]byte, size)
		return b, b
	}
	b := make([]byte, 1+int(size))
	b[0] = byte(code)
	return b, b[1:]
}
