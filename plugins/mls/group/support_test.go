package group

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// TestCheckMembersSupport checks the incremental capability check: changed
// leaves are checked in full, the others only when a changed leaf brings
// a new credential type or all is set.
func TestCheckMembersSupport(t *testing.T) {
	cs, _ := suite.New(1)
	const ext = wire.ExtensionType(0xff00)
	mk := func(name string, change func(*wire.LeafNode)) *wire.Node {
		leaf, _, err := newKeyPackageLeaf(cs, newIdentity(t, cs, name), testNow, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf.Capabilities.Extensions = append(leaf.Capabilities.Extensions, ext)
		if change != nil {
			change(&leaf)
		}
		return &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &leaf}
	}
	noExt := func(l *wire.LeafNode) { l.Capabilities.Extensions = nil }
	x509 := func(l *wire.LeafNode) {
		l.Credential.Type = wire.CredentialX509
		l.Capabilities.Credentials = append(l.Capabilities.Credentials, wire.CredentialX509)
	}
	canX509 := func(l *wire.LeafNode) {
		l.Capabilities.Credentials = append(slices.Clone(l.Capabilities.Credentials), wire.CredentialX509)
	}
	exts := []wire.Extension{{Type: ext, Data: []byte{1}}}
	tests := []struct {
		name    string
		leaves  []*wire.Node // leaf 2 is the changed one
		all     bool
		wantErr bool
	}{
		{"all support", []*wire.Node{mk("a", nil), mk("b", nil), mk("c", nil)}, false, false},
		{"changed leaf lacks the extension", []*wire.Node{mk("a", nil), mk("b", nil), mk("c", noExt)}, false, true},
		{"unchanged leaf lacks it, not rechecked", []*wire.Node{mk("a", noExt), mk("b", nil), mk("c", nil)}, false, false},
		{"unchanged leaf lacks it, all checked", []*wire.Node{mk("a", noExt), mk("b", nil), mk("c", nil)}, true, true},
		{"changed leaf brings a credential type the others lack", []*wire.Node{mk("a", nil), mk("b", nil), mk("c", x509)}, false, true},
		{"changed leaf lacks another's credential type", []*wire.Node{mk("a", canX509), mk("b", x509), mk("c", nil)}, false, true},
		{"changed leaf supports every credential type", []*wire.Node{mk("a", canX509), mk("b", x509), mk("c", canX509)}, false, false},
	}
	for _, tc := range tests {
		rt := wire.RatchetTree{tc.leaves[0], nil, tc.leaves[1], nil, tc.leaves[2]}
		tr, err := tree.FromWire(rt)
		if err != nil {
			t.Fatal(err)
		}
		err = checkMembersSupport(tr, exts, []treemath.Leaf{2}, tc.all)
		if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrInvalidProposal)) {
			t.Errorf("%s: got %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}
