package testvectors

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("treekem", checkTreeKEM) }

type treekemVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// checkTreeKEM runs each treekem.json case (RFC 9420 §7.4–7.6): every
// member's private state (leaf key and path secrets) agrees with the tree;
// for every UpdatePath, merging it checks the committer's leaf signature
// and parent hash and leaves a tree whose parent hashes are all valid and
// whose tree hash is tree_hash_after; every other member with private state
// decrypts exactly the expected path secret and derives the commit secret;
// then each sender (with -short, the first) makes a fresh UpdatePath of
// its own, and every other member decrypts it to the committer's commit
// secret.
func checkTreeKEM(t *testing.T, data []byte, rep *report) {
	for i, v := range decodeCases[treekemVector](t, data) {
		cs := caseSuite(t, v.CipherSuite, rep)
		if cs == nil {
			continue
		}
		if err := runTreeKEM(cs, &v); err != nil {
			t.Errorf("case %d (suite %d): %v", i, v.CipherSuite, err)
			continue
		}
		rep.pass()
	}
}

func runTreeKEM(cs *suite.Suite, v *treekemVector) error {
	var rt wire.RatchetTree
	if err := wire.Unmarshal(v.RatchetTree, &rt); err != nil {
		return err
	}
	base, err := tree.FromWire(rt)
	if err != nil {
		return err
	}
	if err := base.VerifyParentHashes(cs); err != nil {
		return fmt.Errorf("tree before: %w", err)
	}
	privs := map[uint32]*treekem.Private{}
	sigPrivs := map[uint32][]byte{}
	for _, lp := range v.LeavesPrivate {
		p := treekem.NewPrivate(cs, treemath.Leaf(lp.Index), lp.EncryptionPriv)
		for _, ps := range lp.PathSecrets {
			if err := p.SetPathSecret(base, treemath.Node(ps.Node), ps.PathSecret); err != nil {
				return fmt.Errorf("leaf %d: path secret of node %d: %w", lp.Index, ps.Node, err)
			}
		}
		if err := p.Check(base); err != nil {
			return fmt.Errorf("leaf %d: %w", lp.Index, err)
		}
		privs[lp.Index] = p
		sigPrivs[lp.Index] = lp.SignaturePriv
	}
	context := func(t *tree.Tree) ([]byte, error) {
		th, err := t.TreeHash(cs)
		if err != nil {
			return nil, err
		}
		gc := wire.GroupContext{
			Version: 1, CipherSuite: wire.CipherSuite(cs.ID()), GroupID: v.GroupID, Epoch: v.Epoch,
			TreeHash: th, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
		}
		return wire.Marshal(&gc)
	}

	for k, u := range v.UpdatePaths {
		var up wire.UpdatePath
		if err := wire.Unmarshal(u.UpdatePath, &up); err != nil {
			return fmt.Errorf("update path %d: %w", k, err)
		}
		sender := treemath.Leaf(u.Sender)
		after := base.Clone()
		if err := treekem.Merge(cs, after, sender, &up, v.GroupID); err != nil {
			return fmt.Errorf("update path %d from leaf %d: %w", k, sender, err)
		}
		if err := after.VerifyParentHashes(cs); err != nil {
			return fmt.Errorf("update path %d: tree after: %w", k, err)
		}
		if th, err := after.TreeHash(cs); err != nil || !bytes.Equal(th, u.TreeHashAfter) {
			return fmt.Errorf("update path %d: tree hash after %x (%v), want %x", k, th, err, u.TreeHashAfter)
		}
		gc, err := context(after)
		if err != nil {
			return err
		}
		for l, p := range privs {
			if treemath.Leaf(l) == sender {
				continue
			}
			if int(l) >= len(u.PathSecrets) || u.PathSecrets[l] == nil {
				return fmt.Errorf("update path %d: no expected path secret for leaf %d", k, l)
			}
			mine := p.Clone()
			ps, commit, err := mine.Decrypt(after, sender, &up, gc, nil)
			if err != nil {
				return fmt.Errorf("update path %d: leaf %d: %w", k, l, err)
			}
			if !bytes.Equal(ps, u.PathSecrets[l]) {
				return fmt.Errorf("update path %d: leaf %d decrypts path secret %x, want %x", k, l, ps, u.PathSecrets[l])
			}
			if !bytes.Equal(commit, u.CommitSecret) {
				return fmt.Errorf("update path %d: leaf %d derives commit secret %x, want %x", k, l, commit, u.CommitSecret)
			}
			if !testing.Short() {
				if err := mine.Check(after); err != nil {
					return fmt.Errorf("update path %d: leaf %d after: %w", k, l, err)
				}
			}
		}

		// A fresh UpdatePath from the same sender, made by us (with
		// -short, from the first sender only).
		p, ok := privs[u.Sender]
		if !ok || (testing.Short() && k > 0) {
			continue
		}
		if err := freshPath(cs, base, p, sigPrivs[u.Sender], v.GroupID, privs, context); err != nil {
			return fmt.Errorf("fresh path from leaf %d: %w", sender, err)
		}
	}
	return nil
}

// freshPath makes an UpdatePath from p's leaf over t, sends it through its
// encoding, and checks every other member in privs agrees on the commit
// secret and that the tree stays parent-hash valid.
func freshPath(cs *suite.Suite, base *tree.Tree, p *treekem.Private, sigPriv, groupID []byte, privs map[uint32]*treekem.Private, context func(*tree.Tree) ([]byte, error)) error {
	sender := p.Leaf()
	mine := base.Clone()
	path, err := treekem.Create(cs, mine, p, treekem.LeafSigner{Template: base.Leaf(sender), SignaturePriv: sigPriv, GroupID: groupID}, nil)
	if err != nil {
		return err
	}
	gc, err := context(mine)
	if err != nil {
		return err
	}
	if err := path.Encrypt(mine, gc, nil, nil); err != nil {
		return err
	}
	if err := mine.VerifyParentHashes(cs); err != nil {
		return err
	}
	if err := path.Private.Check(mine); err != nil {
		return err
	}
	b, err := wire.Marshal(path.UpdatePath)
	if err != nil {
		return err
	}
	var up wire.UpdatePath
	if err := wire.Unmarshal(b, &up); err != nil {
		return err
	}
	theirs := base.Clone()
	if err := treekem.Merge(cs, theirs, sender, &up, groupID); err != nil {
		return err
	}
	want, _ := mine.TreeHash(cs)
	if got, err := theirs.TreeHash(cs); err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("receivers' tree hash %x, committer's %x", got, want)
	}
	for l, q := range privs {
		if treemath.Leaf(l) == sender {
			continue
		}
		q = q.Clone()
		ps, commit, err := q.Decrypt(theirs, sender, &up, gc, nil)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", l, err)
		}
		if !bytes.Equal(commit, path.CommitSecret) {
			return fmt.Errorf("leaf %d: commit secret differs from the committer's", l)
		}
		if x, want, ok := path.SecretFor(treemath.Leaf(l)); !ok || !bytes.Equal(ps, want) {
			return fmt.Errorf("leaf %d: path secret differs from the committer's at node %d", l, x)
		}
		if !testing.Short() {
			if err := q.Check(theirs); err != nil {
				return fmt.Errorf("leaf %d: %w", l, err)
			}
		}
	}
	return nil
}
