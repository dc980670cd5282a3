package devp2p

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"google.golang.org/protobuf/proto"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

// Bounds on untrusted input. A real contact section is one enode URL of
// under 200 bytes; an enode URL or ENR text is well under 1 KiB.
const (
	maxContactSize  = 4 << 10
	maxContactAddrs = 8
	maxURLLength    = 2 << 10
)

// parseNode parses a dialable node: an enode:// URL (or an enr: record)
// with an IP address and a TCP port.
func parseNode(s string) (*enode.Node, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxURLLength {
		return nil, fmt.Errorf("longer than %d bytes", maxURLLength)
	}
	if !strings.HasPrefix(s, "enode://") && !strings.HasPrefix(s, "enr:") {
		return nil, errors.New("is neither an enode:// URL nor an enr: record")
	}
	n, err := enode.Parse(enode.ValidSchemes, s)
	if err != nil {
		return nil, err
	}
	if n.Pubkey() == nil {
		return nil, errors.New("has no secp256k1 public key")
	}
	if !n.IPAddr().IsValid() || n.TCP() == 0 {
		return nil, errors.New("has no IP address and TCP port to dial")
	}
	return n, nil
}

// encodeContact returns the contact section of a node: a p2pv1.PeerInfo
// with the 32-byte node id, and the enode URL as display id and address.
func encodeContact(self *enode.Node) ([]byte, error) {
	id := self.ID()
	url := self.URLv4()
	b, err := proto.Marshal(&p2pv1.PeerInfo{Id: id[:], DisplayId: url, Addresses: []string{url}})
	if err != nil {
		return nil, fmt.Errorf("encode contact section: %w", err)
	}
	return b, nil
}

// decodeContact parses a contact section made by encodeContact, on this
// node or another, checking everything it reads: the id is 32 bytes, every
// address is a dialable enode URL of that id. It returns the first address.
func decodeContact(b []byte) (*enode.Node, error) {
	if len(b) == 0 {
		return nil, errors.New("contact section is empty")
	}
	if len(b) > maxContactSize {
		return nil, fmt.Errorf("contact section is %d bytes, above the limit of %d", len(b), maxContactSize)
	}
	var pi p2pv1.PeerInfo
	if err := proto.Unmarshal(b, &pi); err != nil {
		return nil, fmt.Errorf("decode contact section: %w", err)
	}
	if len(pi.GetId()) != len(enode.ID{}) {
		return nil, fmt.Errorf("contact section id is %d bytes, want %d", len(pi.GetId()), len(enode.ID{}))
	}
	id := enode.ID(pi.GetId())
	addrs := pi.GetAddresses()
	if len(addrs) > maxContactAddrs {
		return nil, fmt.Errorf("contact section has %d addresses, above the limit of %d", len(addrs), maxContactAddrs)
	}
	var first *enode.Node
	for _, s := range addrs {
		n, err := parseNode(s)
		if err != nil {
			return nil, fmt.Errorf("contact section address %.80q: %w", s, err)
		}
		if n.ID() != id {
			return nil, fmt.Errorf("contact section address %.80q is node %s, not %s", s, n.ID().TerminalString(), id.TerminalString())
		}
		if first == nil {
			first = n
		}
	}
	if first == nil {
		return nil, errors.New("contact section has no address to dial")
	}
	return first, nil
}
