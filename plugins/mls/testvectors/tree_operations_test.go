package testvectors

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("tree-operations", checkTreeOperations) }

// checkTreeOperations applies one Add, Update or Remove proposal to a tree
// and checks the tree hash before, the serialized tree after and its tree
// hash.
func checkTreeOperations(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		TreeBefore     hexBytes `json:"tree_before"`
		Proposal       hexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore hexBytes `json:"tree_hash_before"`
		TreeAfter      hexBytes `json:"tree_after"`
		TreeHashAfter  hexBytes `json:"tree_hash_after"`
	}
	for i, v := range decodeCases[vector](t, data) {
		cs, err := suite.New(suite.ID(v.CipherSuite))
		if err != nil {
			rep.skip("unsupported cipher suite")
			continue
		}
		tr, ok := decodeTree(t, i, v.TreeBefore)
		if !ok {
			continue
		}
		if h, err := tr.TreeHash(cs); err != nil || !bytes.Equal(h, v.TreeHashBefore) {
			t.Errorf("case %d: tree hash before = %x, %v; want %x", i, h, err, v.TreeHashBefore)
			continue
		}
		var p wire.Proposal
		if err := wire.Unmarshal(v.Proposal, &p); err != nil {
			t.Errorf("case %d: %v", i, err)
			continue
		}
		if err := tr.Apply(&p, treemath.Leaf(v.ProposalSender)); err != nil {
			t.Errorf("case %d: apply proposal type %d: %v", i, p.Type, err)
			continue
		}
		rt := tr.Wire()
		after, err := wire.Marshal(&rt)
		if err != nil || !bytes.Equal(after, v.TreeAfter) {
			t.Errorf("case %d: proposal type %d: tree after differs (%v)", i, p.Type, err)
			continue
		}
		if h, err := tr.TreeHash(cs); err != nil || !bytes.Equal(h, v.TreeHashAfter) {
			t.Errorf("case %d: tree hash after = %x, %v; want %x", i, h, err, v.TreeHashAfter)
			continue
		}
		rep.pass()
	}
}
