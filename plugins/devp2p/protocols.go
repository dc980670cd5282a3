package devp2p

import (
	"errors"
	"fmt"
	"slices"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// maxProtocolName bounds the length of a protocol name.
const maxProtocolName = 64

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

// newProtocolTable checks the protocols of a StartRequest. A name is
// non-empty and made of letters, digits, '.', '_' and '-', and may appear
// with one version only, since a frame names its protocol without one (as
// on the libp2p overlay). message_codes 0 counts as 1; at most 256. An
// exact repeat is ignored.
func newProtocolTable(list []*commonv1.Protocol) (protocolTable, error) {
	t := protocolTable{byName: make(map[string]*protocol, len(list))}
	for _, p := range list {
		name := p.GetName()
		if err := checkProtocolName(name); err != nil {
			return protocolTable{}, err
		}
		length := uint64(max(p.GetMessageCodes(), 1))
		if length > maxCodedLength {
			return protocolTable{}, fmt.Errorf("protocol %q declares %d message codes; at most %d fit the one-byte code of a frame", name, length, maxCodedLength)
		}
		np := &protocol{name: name, version: uint(p.GetVersion()), length: length, coded: length > 1}
		if prev, ok := t.byName[name]; ok {
			if prev.version != np.version || prev.length != np.length {
				return protocolTable{}, fmt.Errorf("protocol %q is requested as both %d (%d codes) and %d (%d codes)", name, prev.version, prev.length, np.version, np.length)
			}
			continue
		}
		t.byName[name] = np
		t.list = append(t.list, np)
	}
	slices.SortFunc(t.list, func(a, b *protocol) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return t, nil
}

// checkProtocolName checks one protocol name.
func checkProtocolName(name string) error {
	if name == "" {
		return errors.New("protocol name is empty")
	}
	if len(name) > maxProtocolName {
		return fmt.Errorf("protocol name %q is longer than %d bytes", name, maxProtocolName)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("protocol name %q has %q; use letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
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
