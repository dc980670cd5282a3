package libp2pplugin

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/protocol"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// maxProtocolName bounds the length of a protocol name.
const maxProtocolName = 64

// protocolID is the libp2p protocol id of a Strata protocol.
func protocolID(name string, version uint32) protocol.ID {
	return protocol.ID(fmt.Sprintf("/strata/%s/%d", name, version))
}

// protocolTable maps the protocol names that frames carry to the libp2p
// protocol ids registered at Start, and back. It does not change after
// Start, so it is read without locking.
type protocolTable struct {
	byName map[string]protocol.ID
	byID   map[protocol.ID]string
}

// newProtocolTable checks the protocols of a StartRequest. A name must be
// non-empty and made of letters, digits, '.', '_' and '-', and may appear
// with one version only, since a frame names its protocol without a
// version. An exact repeat is harmless and ignored.
func newProtocolTable(list []*commonv1.Protocol) (protocolTable, error) {
	t := protocolTable{
		byName: make(map[string]protocol.ID, len(list)),
		byID:   make(map[protocol.ID]string, len(list)),
	}
	for _, p := range list {
		name := p.GetName()
		if err := checkProtocolName(name); err != nil {
			return protocolTable{}, err
		}
		id := protocolID(name, p.GetVersion())
		if prev, ok := t.byName[name]; ok {
			if prev != id {
				return protocolTable{}, fmt.Errorf("protocol %q is requested as both %s and %s", name, prev, id)
			}
			continue
		}
		t.byName[name] = id
		t.byID[id] = name
	}
	return t, nil
}

// checkProtocolName checks one protocol name.
func checkProtocolName(name string) error {
	if name == "" {
		return fmt.Errorf("protocol name is empty")
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

// names returns, sorted, the names of the registered protocols among ids.
func (t protocolTable) names(ids []protocol.ID) []string {
	var out []string
	for _, id := range ids {
		if name, ok := t.byID[id]; ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
