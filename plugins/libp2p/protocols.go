package libp2pplugin

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/protocol"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

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

// newProtocolTable checks the protocols of a StartRequest as every overlay
// does (p2pkit.Protocols: names, one version per name, exact repeats
// ignored) and maps them to libp2p protocol ids.
func newProtocolTable(list []*commonv1.Protocol) (protocolTable, error) {
	checked, err := p2pkit.Protocols(list)
	if err != nil {
		return protocolTable{}, err
	}
	t := protocolTable{
		byName: make(map[string]protocol.ID, len(checked)),
		byID:   make(map[protocol.ID]string, len(checked)),
	}
	for _, p := range checked {
		id := protocolID(p.GetName(), p.GetVersion())
		t.byName[p.GetName()] = id
		t.byID[id] = p.GetName()
	}
	return t, nil
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
