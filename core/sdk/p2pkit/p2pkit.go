// Package p2pkit is what the p2p overlay layers (devp2p, libp2p, and any
// third party's) share: the check of the protocol names the layers above
// register at Start; sticky listen addresses, so that a node told to
// listen on port 0 keeps its port, and its contact card stays valid, across
// restarts; and the bounds where a node meets its peers, so that no peer
// can take more than its share: the Inbox (frames and events up to the
// host, per peer, in turns, behind a token Bucket per peer) and the Budget
// of bytes queued for one peer. The lifecycle they share is the SDK's
// (sdk.Lifecycle).
package p2pkit

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// MaxProtocolName bounds the length of a protocol name.
const MaxProtocolName = 64

// CheckProtocolName checks one protocol name: non-empty, at most
// MaxProtocolName bytes, made of letters, digits, '.', '_' and '-' (so
// that it fits a libp2p protocol id and a devp2p capability name alike).
func CheckProtocolName(name string) error {
	if name == "" {
		return errors.New("protocol name is empty")
	}
	if len(name) > MaxProtocolName {
		return fmt.Errorf("protocol name %q is longer than %d bytes", name, MaxProtocolName)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("protocol name %q has %q; use letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

// Protocols checks the protocols of a StartRequest and returns them sorted
// by name, each once. Every name passes CheckProtocolName and appears at
// one version only (with one message_codes), since a frame names its
// protocol without a version; an exact repeat, which two layers asking for
// the same protocol make, is dropped. message_codes 0 counts as 1.
func Protocols(list []*commonv1.Protocol) ([]*commonv1.Protocol, error) {
	byName := make(map[string]*commonv1.Protocol, len(list))
	out := make([]*commonv1.Protocol, 0, len(list))
	for _, p := range list {
		name := p.GetName()
		if err := CheckProtocolName(name); err != nil {
			return nil, err
		}
		np := &commonv1.Protocol{Name: name, Version: p.GetVersion(), MessageCodes: max(p.GetMessageCodes(), 1)}
		if prev, ok := byName[name]; ok {
			if prev.GetVersion() != np.GetVersion() || prev.GetMessageCodes() != np.GetMessageCodes() {
				return nil, fmt.Errorf("protocol %q is requested as both version %d (%d codes) and version %d (%d codes)",
					name, prev.GetVersion(), prev.GetMessageCodes(), np.GetVersion(), np.GetMessageCodes())
			}
			continue
		}
		byName[name] = np
		out = append(out, np)
	}
	slices.SortFunc(out, func(a, b *commonv1.Protocol) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out, nil
}
