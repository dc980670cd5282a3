// Package treekem is the private half of the MLS ratchet tree (RFC 9420
// §7.4–7.7, §12.4.1–12.4.2): a member's private keys for the nodes of its
// leaf's path, the creation of an UpdatePath by a committer (fresh leaf
// key, path secrets up the filtered direct path, node key pairs, parent
// hashes, the leaf signed, each path secret encrypted to the resolution of
// the copath child), and the processing of a received one (parent hash and
// leaf signature checked, the one path secret the member can decrypt
// derived up to the root, the commit secret).
//
// The public tree is plugins/mls/tree; this package never keeps one.
// Callers stage changes on a tree.Tree clone and a Private clone and keep
// both only if the whole Commit is valid.
package treekem

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Errors of path processing, wrapped with details.
var (
	// ErrKeyMismatch means a private key or path secret does not give the
	// public key the tree holds at that node.
	ErrKeyMismatch = errors.New("mls/treekem: private key does not match the tree")
	// ErrPath means an UpdatePath is malformed for the tree it is applied
	// to: wrong length, wrong leaf source, a reused key, a wrong number of
	// ciphertexts.
	ErrPath = errors.New("mls/treekem: invalid UpdatePath")
	// ErrParentHash means the committer's leaf does not carry the parent
	// hash its path gives.
	ErrParentHash = errors.New("mls/treekem: leaf parent hash does not match the path")
	// ErrNoKey means the member holds no private key for any node the path
	// secret meant for it was encrypted to.
	ErrNoKey = errors.New("mls/treekem: no private key to decrypt the path")
	// ErrDecrypt means the member's path secret did not decrypt.
	ErrDecrypt = errors.New("mls/treekem: path secret does not decrypt")
)

// Private is a member's private tree state: the HPKE private key of its
// leaf and of every node on its direct path it knows. Keys are kept in the
// RFC 9180 SerializePrivateKey form. A Private is not safe for concurrent
// use.
type Private struct {
	cs   *suite.Suite
	leaf treemath.Leaf
	keys map[treemath.Node][]byte
}

// NewPrivate returns the private state of the member at leaf with the
// leaf's HPKE private key leafPriv (the init key's counterpart for a new
// member is not this: it is the private key of the leaf node's
// encryption_key). The state takes a copy of leafPriv.
func NewPrivate(cs *suite.Suite, leaf treemath.Leaf, leafPriv []byte) *Private {
	return &Private{cs: cs, leaf: leaf, keys: map[treemath.Node][]byte{leaf.Node(): bytes.Clone(leafPriv)}}
}

// Leaf returns the member's leaf index.
func (p *Private) Leaf() treemath.Leaf { return p.leaf }

// Key returns the private key of node x, or nil.
func (p *Private) Key(x treemath.Node) []byte { return p.keys[x] }

// Nodes returns the nodes whose private keys the state holds, in order.
func (p *Private) Nodes() []treemath.Node {
	return slices.Sorted(maps.Keys(p.keys))
}

// Clone returns a copy of p that shares no key with it.
func (p *Private) Clone() *Private {
	c := &Private{cs: p.cs, leaf: p.leaf, keys: make(map[treemath.Node][]byte, len(p.keys))}
	for x, k := range p.keys {
		c.keys[x] = bytes.Clone(k)
	}
	return c
}

// Destroy zeroes every key. The state must not be used afterwards.
func (p *Private) Destroy() {
	for x, k := range p.keys {
		clear(k)
		delete(p.keys, x)
	}
}

func (p *Private) drop(x treemath.Node) {
	if k, ok := p.keys[x]; ok {
		clear(k)
		delete(p.keys, x)
	}
}

// SetPathSecret installs the key pair derived from a path secret at node x
// (RFC 9420 §7.4: node_priv = DeriveKeyPair(DeriveSecret(path_secret,
// "node"))) and checks that its public key is the one t holds at x.
func (p *Private) SetPathSecret(t *tree.Tree, x treemath.Node, pathSecret []byte) error {
	priv, pub, err := nodeKeyPair(p.cs, pathSecret)
	if err != nil {
		return err
	}
	if want := t.EncryptionKey(x); want == nil || subtle.ConstantTimeCompare(pub, want) != 1 {
		clear(priv)
		return fmt.Errorf("%w: node %d", ErrKeyMismatch, x)
	}
	p.drop(x)
	p.keys[x] = priv
	return nil
}

// Check verifies that every key the state holds belongs to the public key
// of its node in t, and that the leaf's key is held.
func (p *Private) Check(t *tree.Tree) error {
	if _, ok := p.keys[p.leaf.Node()]; !ok {
		return fmt.Errorf("%w: no key for leaf %d", ErrKeyMismatch, p.leaf)
	}
	for _, x := range p.Nodes() {
		pub, err := p.cs.HPKEPublicKey(p.keys[x])
		if err != nil {
			return fmt.Errorf("mls/treekem: node %d: %w", x, err)
		}
		if want := t.EncryptionKey(x); want == nil || subtle.ConstantTimeCompare(pub, want) != 1 {
			return fmt.Errorf("%w: node %d", ErrKeyMismatch, x)
		}
	}
	return nil
}

// Prune drops the keys of nodes that are blank in t, lie outside it or no
// longer lie on the member's direct path; after proposals blank a path or
// truncate the tree.
func (p *Private) Prune(t *tree.Tree) {
	onPath := map[treemath.Node]bool{p.leaf.Node(): true}
	if uint32(p.leaf) < t.LeafCount() {
		for _, x := range treemath.DirectPath(p.leaf.Node(), t.LeafCount()) {
			onPath[x] = true
		}
	}
	for x := range p.keys {
		if !onPath[x] || t.Node(x) == nil {
			p.drop(x)
		}
	}
}

// JoinAt installs the path secret a Welcome gives a new member (RFC 9420
// §12.4.3.1): the secret of node x, the lowest node of the committer's
// filtered direct path above the new member's leaf. It derives the secrets
// of the nodes above x on that path and checks each key pair against t.
func (p *Private) JoinAt(t *tree.Tree, committer treemath.Leaf, x treemath.Node, pathSecret []byte) error {
	path, _ := t.FilteredDirectPath(committer)
	i := slices.Index(path, x)
	if i < 0 {
		return fmt.Errorf("%w: node %d is not on the filtered direct path of leaf %d", ErrPath, x, committer)
	}
	if !treemath.InSubtree(p.leaf.Node(), x) {
		return fmt.Errorf("%w: node %d is not above leaf %d", ErrPath, x, p.leaf)
	}
	secret, err := p.installFrom(t, path[i:], pathSecret)
	clear(secret)
	return err
}

// installFrom installs the keys of path (bottom up), path[0] from
// pathSecret and each next one from the secret before it, checking each
// against t. It returns the commit secret, DeriveSecret(last, "path").
func (p *Private) installFrom(t *tree.Tree, path []treemath.Node, pathSecret []byte) ([]byte, error) {
	secret := bytes.Clone(pathSecret)
	for i, x := range path {
		if i > 0 {
			next, err := p.cs.DeriveSecret(secret, "path")
			clear(secret)
			if err != nil {
				return nil, err
			}
			secret = next
		}
		if err := p.SetPathSecret(t, x, secret); err != nil {
			clear(secret)
			return nil, err
		}
	}
	commit, err := p.cs.DeriveSecret(secret, "path")
	clear(secret)
	return commit, err
}

// nodeKeyPair is DeriveKeyPair(DeriveSecret(pathSecret, "node")).
func nodeKeyPair(cs *suite.Suite, pathSecret []byte) (priv, pub []byte, err error) {
	nodeSecret, err := cs.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, nil, err
	}
	defer clear(nodeSecret)
	return cs.DeriveKeyPair(nodeSecret)
}

// LeafSigner is what a committer needs to sign its new leaf: the template
// of the leaf (credential, capabilities, lifetime, extensions and signature
// key; its encryption key, source, parent hash and signature are replaced),
// the signature private key and the group id.
type LeafSigner struct {
	Template      *wire.LeafNode
	SignaturePriv []byte
	GroupID       []byte
}

// Path is an UpdatePath being made by a committer: the tree it was merged
// into, the path secrets of its nodes and the committer's new private
// state. Create makes one; Encrypt fills in the ciphertexts once the
// caller knows the provisional GroupContext.
type Path struct {
	cs      *suite.Suite
	sender  treemath.Leaf
	nodes   []treemath.Node // the filtered direct path, bottom up
	copath  []treemath.Node
	secrets [][]byte // path_secret of each node of nodes

	// UpdatePath is the path to send; its ciphertexts are empty until
	// Encrypt.
	UpdatePath *wire.UpdatePath
	// CommitSecret is the commit secret the path gives (RFC 9420 §8).
	CommitSecret []byte
	// Private is the committer's private state after the path.
	Private *Private
}

// Create makes a fresh UpdatePath for the member at leaf sender (RFC 9420
// §7.4, §7.5, §7.9, §12.4.2) and merges it into t, which must already hold
// every change the Commit's proposals make (t is modified: pass a staged
// clone). priv is the committer's current private state; it is not
// modified (the new state is in the result). random may be nil for
// crypto/rand.
func Create(cs *suite.Suite, t *tree.Tree, priv *Private, signer LeafSigner, random io.Reader) (*Path, error) {
	sender := priv.leaf
	if t.Leaf(sender) == nil {
		return nil, fmt.Errorf("%w: committer leaf %d is blank", ErrPath, sender)
	}
	leafPriv, leafPub, err := cs.GenerateHPKEKey(random)
	if err != nil {
		return nil, fmt.Errorf("mls/treekem: leaf key: %w", err)
	}
	path, copath := t.FilteredDirectPath(sender)
	pp := &Path{cs: cs, sender: sender, nodes: path, copath: copath, Private: priv.Clone()}
	pp.Private.drop(sender.Node())
	pp.Private.keys[sender.Node()] = leafPriv
	for _, x := range treemath.DirectPath(sender.Node(), t.LeafCount()) {
		pp.Private.drop(x)
	}

	secret := make([]byte, cs.Nh())
	if random == nil {
		random = rand.Reader
	}
	if _, err := io.ReadFull(random, secret); err != nil {
		return nil, fmt.Errorf("mls/treekem: path secret: %w", err)
	}
	keys := make([][]byte, len(path))
	for i, x := range path {
		if i > 0 {
			next, err := cs.DeriveSecret(secret, "path")
			if err != nil {
				return nil, err
			}
			secret = next
		}
		pp.secrets = append(pp.secrets, secret)
		nodePriv, nodePub, err := nodeKeyPair(cs, secret)
		if err != nil {
			return nil, err
		}
		pp.Private.keys[x] = nodePriv
		keys[i] = nodePub
	}
	if pp.CommitSecret, err = cs.DeriveSecret(secret, "path"); err != nil {
		return nil, err
	}
	if len(path) == 0 {
		clear(secret) // the random seed of the commit secret; no node uses it
	}

	ph, err := t.ApplyPath(sender, keys, cs)
	if err != nil {
		return nil, err
	}
	leaf := *signer.Template
	leaf.EncryptionKey = leafPub
	leaf.Source = wire.LeafNodeSourceCommit
	leaf.Lifetime = wire.Lifetime{}
	leaf.ParentHash = ph
	tbs, err := leaf.TBS(signer.GroupID, uint32(sender))
	if err != nil {
		return nil, fmt.Errorf("mls/treekem: leaf: %w", err)
	}
	if leaf.Signature, err = cs.SignWithLabel(signer.SignaturePriv, "LeafNodeTBS", tbs); err != nil {
		return nil, fmt.Errorf("mls/treekem: sign leaf: %w", err)
	}
	if err := t.SetLeaf(sender, &leaf); err != nil {
		return nil, err
	}
	up := &wire.UpdatePath{LeafNode: leaf, Nodes: make([]wire.UpdatePathNode, len(path))}
	for i := range path {
		up.Nodes[i].EncryptionKey = keys[i]
	}
	pp.UpdatePath = up
	return pp, nil
}

// Encrypt encrypts each path secret to every node of the resolution of
// its copath child in t (the tree Create merged the path into), leaving
// out the leaves in excluded (those the Commit adds), with
// EncryptWithLabel(key, "UpdatePathNode", groupContext) (RFC 9420 §7.6).
// groupContext is the encoded provisional GroupContext of the new epoch.
func (pp *Path) Encrypt(t *tree.Tree, groupContext []byte, excluded []treemath.Leaf, random io.Reader) error {
	for i, c := range pp.copath {
		res := t.ResolutionExcluding(c, excluded)
		cts := make([]wire.HPKECiphertext, len(res))
		for j, x := range res {
			kem, ct, err := pp.cs.EncryptWithLabel(t.EncryptionKey(x), "UpdatePathNode", groupContext, pp.secrets[i], random)
			if err != nil {
				return fmt.Errorf("mls/treekem: encrypt path secret of node %d to node %d: %w", pp.nodes[i], x, err)
			}
			cts[j] = wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		}
		pp.UpdatePath.Nodes[i].EncryptedPathSecret = cts
	}
	return nil
}

// SecretFor returns the path secret a new member at leaf l gets in its
// Welcome (RFC 9420 §12.4.3): that of the lowest node of the path above
// l, and that node. It returns false if no node of the path is above l.
func (pp *Path) SecretFor(l treemath.Leaf) (treemath.Node, []byte, bool) {
	for i, x := range pp.nodes {
		if treemath.InSubtree(l.Node(), x) {
			return x, bytes.Clone(pp.secrets[i]), true
		}
	}
	return 0, nil, false
}

// Destroy zeroes the path secrets and the commit secret.
func (pp *Path) Destroy() {
	for _, s := range pp.secrets {
		clear(s)
	}
	pp.secrets = nil
	clear(pp.CommitSecret)
}

// Merge checks a received UpdatePath from leaf sender and merges its public
// part into t (RFC 9420 §12.4.2), which must already hold every change the
// Commit's proposals make (t is modified: pass a staged clone). It checks
// that the leaf's source is commit and its signature verifies with its own
// signature key over groupID and sender, that its encryption key differs
// from the sender's old one, that the path has one node per node of the
// filtered direct path, that no key of the path is already in the tree, and
// that the leaf's parent_hash is the one the path gives.
func Merge(cs *suite.Suite, t *tree.Tree, sender treemath.Leaf, up *wire.UpdatePath, groupID []byte) error {
	old := t.Leaf(sender)
	if old == nil {
		return fmt.Errorf("%w: sender leaf %d is blank", ErrPath, sender)
	}
	leaf := &up.LeafNode
	if leaf.Source != wire.LeafNodeSourceCommit {
		return fmt.Errorf("%w: leaf source %d, want commit", ErrPath, leaf.Source)
	}
	tbs, err := leaf.TBS(groupID, uint32(sender))
	if err != nil {
		return fmt.Errorf("%w: leaf: %w", ErrPath, err)
	}
	if err := cs.VerifyWithLabel(leaf.SignatureKey, "LeafNodeTBS", tbs, leaf.Signature); err != nil {
		return fmt.Errorf("%w: leaf signature: %w", ErrPath, err)
	}
	if bytes.Equal(leaf.EncryptionKey, old.EncryptionKey) {
		return fmt.Errorf("%w: the leaf keeps its encryption key", ErrPath)
	}
	keys := make([][]byte, len(up.Nodes))
	seen := map[string]bool{string(leaf.EncryptionKey): true}
	for i := range up.Nodes {
		k := up.Nodes[i].EncryptionKey
		if seen[string(k)] {
			return fmt.Errorf("%w: encryption key of path node %d is already in use", ErrPath, i)
		}
		seen[string(k)] = true
		keys[i] = k
	}
	// One pass over the tree for every key of the path and the leaf.
	switch i := t.FirstHeldEncryptionKey(append(keys[:len(keys):len(keys)], leaf.EncryptionKey)); {
	case i == len(keys):
		return fmt.Errorf("%w: leaf encryption key is already in the tree", ErrPath)
	case i >= 0:
		return fmt.Errorf("%w: encryption key of path node %d is already in use", ErrPath, i)
	}
	ph, err := t.ApplyPath(sender, keys, cs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPath, err)
	}
	if !bytes.Equal(ph, leaf.ParentHash) {
		return ErrParentHash
	}
	return t.SetLeaf(sender, leaf)
}

// Decrypt processes a received UpdatePath from leaf sender that Merge has
// merged into t (RFC 9420 §12.4.2): it finds the node of the sender's
// filtered direct path that is the member's lowest common ancestor with
// the sender, decrypts the path secret encrypted to the node of the copath
// child's resolution (minus the leaves in excluded, those the Commit adds)
// whose key the member holds, derives the secrets of the nodes above it,
// checks each against t and installs their keys, dropping the keys of the
// sender's direct path. It returns the decrypted path secret and the
// commit secret. On error the state is unchanged.
func (p *Private) Decrypt(t *tree.Tree, sender treemath.Leaf, up *wire.UpdatePath, groupContext []byte, excluded []treemath.Leaf) (pathSecret, commitSecret []byte, err error) {
	if sender == p.leaf {
		return nil, nil, fmt.Errorf("%w: a member does not decrypt its own path", ErrPath)
	}
	path, copath := t.FilteredDirectPath(sender)
	if len(path) != len(up.Nodes) {
		return nil, nil, fmt.Errorf("%w: %d nodes for a filtered direct path of %d", ErrPath, len(up.Nodes), len(path))
	}
	me := p.leaf.Node()
	i := slices.IndexFunc(copath, func(c treemath.Node) bool { return treemath.InSubtree(me, c) })
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: leaf %d is under no copath node of leaf %d", ErrNoKey, p.leaf, sender)
	}
	res := t.ResolutionExcluding(copath[i], excluded)
	cts := up.Nodes[i].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, nil, fmt.Errorf("%w: node %d has %d ciphertexts for a resolution of %d", ErrPath, path[i], len(cts), len(res))
	}
	j := slices.IndexFunc(res, func(x treemath.Node) bool {
		return treemath.InSubtree(me, x) && p.keys[x] != nil
	})
	if j < 0 {
		return nil, nil, fmt.Errorf("%w: copath node %d", ErrNoKey, copath[i])
	}
	secret, err := p.cs.DecryptWithLabel(p.keys[res[j]], "UpdatePathNode", groupContext, cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: node %d: %w", ErrDecrypt, res[j], err)
	}
	staged := p.Clone()
	for _, x := range treemath.DirectPath(sender.Node(), t.LeafCount()) {
		staged.drop(x)
	}
	commit, err := staged.installFrom(t, path[i:], secret)
	if err != nil {
		staged.Destroy()
		clear(secret)
		return nil, nil, err
	}
	p.Destroy()
	p.keys = staged.keys
	return secret, commit, nil
}
