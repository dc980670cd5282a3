package libp2pplugin

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

// Bounds on a contact section received from elsewhere. A real one holds a
// few addresses and is a few hundred bytes long.
const (
	maxContactSize  = 64 << 10
	maxContactAddrs = 64
)

// encodeContact returns the contact section of a node: a p2pv1.PeerInfo
// with the raw peer id, its text form and the node's full multiaddrs.
func encodeContact(id peer.ID, addrs []ma.Multiaddr) ([]byte, error) {
	b, err := proto.Marshal(&p2pv1.PeerInfo{
		Id:        []byte(id),
		DisplayId: id.String(),
		Addresses: fullAddrs(id, addrs),
	})
	if err != nil {
		return nil, fmt.Errorf("encode contact section: %w", err)
	}
	return b, nil
}

// decodeContact parses a contact section produced by encodeContact, on this
// node or another. It checks everything it reads: the peer id must be a
// valid one, every address must parse, and an address that names a peer
// must name the same peer.
func decodeContact(b []byte) (peer.AddrInfo, error) {
	if len(b) == 0 {
		return peer.AddrInfo{}, errors.New("contact section is empty")
	}
	if len(b) > maxContactSize {
		return peer.AddrInfo{}, fmt.Errorf("contact section is %d bytes, above the limit of %d", len(b), maxContactSize)
	}
	var pi p2pv1.PeerInfo
	if err := proto.Unmarshal(b, &pi); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("decode contact section: %w", err)
	}
	id, err := peer.IDFromBytes(pi.GetId())
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("contact section peer id: %w", err)
	}
	if d := pi.GetDisplayId(); d != "" && d != id.String() {
		return peer.AddrInfo{}, fmt.Errorf("contact section display id %q does not match peer id %s", d, id)
	}
	if len(pi.GetAddresses()) > maxContactAddrs {
		return peer.AddrInfo{}, fmt.Errorf("contact section has %d addresses, above the limit of %d", len(pi.GetAddresses()), maxContactAddrs)
	}
	ai := peer.AddrInfo{ID: id, Addrs: make([]ma.Multiaddr, 0, len(pi.GetAddresses()))}
	for _, s := range pi.GetAddresses() {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("contact section address %q: %w", s, err)
		}
		transport, named := peer.SplitAddr(a)
		if named != "" && named != id {
			return peer.AddrInfo{}, fmt.Errorf("contact section address %q names peer %s, not %s", s, named, id)
		}
		if len(transport) == 0 {
			continue
		}
		ai.Addrs = append(ai.Addrs, transport)
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, errors.New("contact section has no address to dial")
	}
	return ai, nil
}

// parseAddress parses a full multiaddr (transport address and /p2p/<id>).
func parseAddress(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("not a multiaddr: %w", err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("not a full multiaddr ending in /p2p/<peer id>: %w", err)
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, errors.New("has a peer id but no transport address to dial")
	}
	return *ai, nil
}

// fullAddrs returns addrs in text form, each ending in /p2p/<id>.
func fullAddrs(id peer.ID, addrs []ma.Multiaddr) []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: id, Addrs: addrs})
	if err != nil {
		return nil
	}
	out := make([]string, len(full))
	for i, a := range full {
		out[i] = a.String()
	}
	return out
}
