package group

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// benchSizes are the group sizes the benchmarks run at: 10, 100 and 1,000
// members, and 10,000 when STRATA_MLS_BENCH_LARGE is set (building and
// joining a group of 10,000 takes seconds per run).
func benchSizes() []int {
	sizes := []int{10, 100, 1000}
	if os.Getenv("STRATA_MLS_BENCH_LARGE") != "" {
		sizes = append(sizes, 10000)
	}
	return sizes
}

// benchShape says how a benchmark group's tree is filled.
type benchShape string

const (
	// shapeFull: every parent node that can be set is set, as after every
	// member has committed once in leaf order.
	shapeFull benchShape = "full"
	// shapeSparse: the members were added by value in one Commit with a
	// path by the creator (leaf 0): only its direct path is set.
	shapeSparse benchShape = "sparse"
)

// benchTree is a group's public tree and the private state of two of its
// members, built directly rather than by running n Commits.
type benchTree struct {
	cs      *suite.Suite
	groupID []byte
	tree    *tree.Tree
	ids     []Identity
	leafKey [][]byte                 // leaf encryption private keys
	secrets map[treemath.Node][]byte // the path secret behind each set parent node
}

// buildBenchTree assembles a valid ratchet tree of n members with real
// keys: fresh signature and HPKE leaf keys per member, each set parent
// node's key pair derived from a fresh path secret, parent hashes and leaf
// signatures computed as the protocol does. For shapeFull, every member
// "commits" once in leaf order through tree.ApplyPath, so parent-hash
// chains and stale parent hashes are what a real history leaves; a node a
// later member overwrites gets a throwaway key (it never survives into the
// tree, only into the parent hash an earlier leaf carries).
func buildBenchTree(tb testing.TB, cs *suite.Suite, n int, shape benchShape) *benchTree {
	tb.Helper()
	bt := &benchTree{cs: cs, groupID: make([]byte, cs.Nh()), secrets: map[treemath.Node][]byte{}}
	rand.Read(bt.groupID)
	rt := make(wire.RatchetTree, 0, 2*n)
	for i := range n {
		id := newIdentity(tb, cs, fmt.Sprint("m", i))
		leaf, encPriv, err := newKeyPackageLeaf(cs, id, testNow, 90*24*time.Hour, nil)
		if err != nil {
			tb.Fatal(err)
		}
		bt.ids = append(bt.ids, id)
		bt.leafKey = append(bt.leafKey, encPriv)
		if i > 0 {
			rt = append(rt, nil)
		}
		rt = append(rt, &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &leaf})
	}
	tr, err := tree.FromWire(rt)
	if err != nil {
		tb.Fatal(err)
	}
	bt.tree = tr
	committers := []treemath.Leaf{0}
	if shape == shapeFull {
		committers = committers[:0]
		for l := range n {
			committers = append(committers, treemath.Leaf(l))
		}
	}
	// owner[x] is the last committer whose filtered direct path holds x.
	owner := map[treemath.Node]treemath.Leaf{}
	for _, l := range committers {
		path, _ := tr.FilteredDirectPath(l)
		for _, x := range path {
			owner[x] = l
		}
	}
	for _, l := range committers {
		path, _ := tr.FilteredDirectPath(l)
		keys := make([][]byte, len(path))
		for i, x := range path {
			if owner[x] != l {
				keys[i] = make([]byte, 32)
				rand.Read(keys[i])
				continue
			}
			secret := make([]byte, cs.Nh())
			rand.Read(secret)
			nodeSecret, err := cs.DeriveSecret(secret, "node")
			if err != nil {
				tb.Fatal(err)
			}
			_, pub, err := cs.DeriveKeyPair(nodeSecret)
			if err != nil {
				tb.Fatal(err)
			}
			bt.secrets[x] = secret
			keys[i] = pub
		}
		ph, err := tr.ApplyPath(l, keys, cs)
		if err != nil {
			tb.Fatal(err)
		}
		leaf := *tr.Leaf(l)
		leaf.Source = wire.LeafNodeSourceCommit
		leaf.Lifetime = wire.Lifetime{}
		leaf.ParentHash = ph
		if err := signLeaf(cs, &leaf, bt.ids[l].SignaturePriv, bt.groupID, uint32(l)); err != nil {
			tb.Fatal(err)
		}
		if err := tr.SetLeaf(l, &leaf); err != nil {
			tb.Fatal(err)
		}
	}
	return bt
}

// groups returns the states of the members at leaves a and b in the same
// epoch (epoch 1, a random epoch secret): each knows its leaf key and the
// key of every set node on its direct path.
func (bt *benchTree) groups(tb testing.TB, cfg Config, members ...treemath.Leaf) []*Group {
	tb.Helper()
	cs := bt.cs
	th, err := bt.tree.TreeHash(cs)
	if err != nil {
		tb.Fatal(err)
	}
	confirmed := make([]byte, cs.Nh())
	epochSecret := make([]byte, cs.Nh())
	rand.Read(confirmed)
	rand.Read(epochSecret)
	ctx := wire.GroupContext{
		Version: 1, CipherSuite: wire.CipherSuite(cs.ID()), GroupID: bt.groupID, Epoch: 1,
		TreeHash: th, ConfirmedTranscriptHash: confirmed,
	}
	var out []*Group
	for _, l := range members {
		tr := bt.tree.Clone()
		priv := treekem.NewPrivate(cs, l, bt.leafKey[l])
		for _, x := range treemath.DirectPath(l.Node(), tr.LeafCount()) {
			if s, ok := bt.secrets[x]; ok && tr.Node(x) != nil {
				if err := priv.SetPathSecret(tr, x, s); err != nil {
					tb.Fatal(err)
				}
			}
		}
		keys, err := schedule.EpochFromSecret(cs, epochSecret)
		if err != nil {
			tb.Fatal(err)
		}
		g := &Group{cs: cs, cfg: cfg, id: bt.ids[l], priv: priv, updates: map[string][]byte{}}
		tag := schedule.ConfirmationTag(cs, keys.ConfirmationKey, confirmed)
		g.interim = schedule.InterimTranscriptHash(cs, confirmed, tag)
		secrets, err := schedule.NewSecretTree(cs, keys.EncryptionSecret, tr.LeafCount(), cfg.Retention)
		if err != nil {
			tb.Fatal(err)
		}
		g.enterEpoch(ctx, tr, keys, secrets)
		out = append(out, g)
	}
	return out
}

// benchPair builds a group of n members of the given shape and returns
// the states of leaf 0 (the committer) and of the last leaf (the
// receiver, whose common ancestor with leaf 0 is the root).
func benchPair(b *testing.B, n int, shape benchShape) (alice, bob *Group) {
	b.Helper()
	cs, _ := suite.New(1)
	bt := buildBenchTree(b, cs, n, shape)
	gs := bt.groups(b, testConfig(wire.WireFormatPublicMessage), 0, treemath.Leaf(n-1))
	return gs[0], gs[1]
}

// TestBenchTree checks the benchmark builder's groups: the tree passes
// every check a joiner makes, both members agree, and a Commit with a path
// from one is processed by the other.
func TestBenchTree(t *testing.T) {
	cs, _ := suite.New(1)
	for _, shape := range []benchShape{shapeFull, shapeSparse} {
		for _, n := range []int{2, 5, 12} {
			bt := buildBenchTree(t, cs, n, shape)
			if err := validateTree(cs, bt.tree, &wire.GroupContext{GroupID: bt.groupID, TreeHash: mustTreeHash(t, cs, bt.tree)}); err != nil {
				t.Fatalf("%s/%d: %v", shape, n, err)
			}
			if shape == shapeFull {
				// A parent is set whenever both its subtrees hold a member
				// (otherwise no filtered direct path holds it).
				for x := 1; x < bt.tree.Width(); x += 2 {
					left, _ := treemath.Left(treemath.Node(x))
					right, _ := treemath.Right(treemath.Node(x))
					if len(bt.tree.Resolution(left)) > 0 && len(bt.tree.Resolution(right)) > 0 && bt.tree.Node(treemath.Node(x)) == nil {
						t.Fatalf("full/%d: parent %d is blank", n, x)
					}
				}
			}
			gs := bt.groups(t, testConfig(wire.WireFormatPublicMessage), 0, treemath.Leaf(n-1))
			pc, err := gs[0].Commit(CommitOptions{Path: true, Proposals: []wire.Proposal{AddProposal(newBundle(t, cs, "new").KeyPackage)}})
			if err != nil {
				t.Fatalf("%s/%d: commit: %v", shape, n, err)
			}
			if _, err := gs[1].Handle(pc.Message); err != nil {
				t.Fatalf("%s/%d: handle: %v", shape, n, err)
			}
			if err := gs[0].Merge(pc); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gs[0].EpochAuthenticator(), gs[1].EpochAuthenticator()) {
				t.Fatalf("%s/%d: members disagree", shape, n)
			}
		}
	}
}

func mustTreeHash(t *testing.T, cs *suite.Suite, tr *tree.Tree) []byte {
	th, err := tr.TreeHash(cs)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// reportCPU reports the CPU time used since start per operation, as
// cpu-ns/op: on a shared machine, ns/op also counts the time the
// benchmark waited for a core.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPrimitives measures the suite-1 operations the group
// benchmarks are made of, in the same run, so their figures can be read
// as so many primitives' worth: one HPKE seal and open of a path secret
// under EncryptWithLabel, one leaf signature and its verification, one
// hash of a leaf's tree-hash input.
func BenchmarkPrimitives(b *testing.B) {
	cs, _ := suite.New(1)
	priv, pub, err := cs.GenerateHPKEKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	secret := make([]byte, cs.Nh())
	gc := make([]byte, 3*cs.Nh()+20)
	kem, ct, err := cs.EncryptWithLabel(pub, "UpdatePathNode", gc, secret, nil)
	if err != nil {
		b.Fatal(err)
	}
	id := newIdentity(b, cs, "bench")
	leaf, _, err := newKeyPackageLeaf(cs, id, testNow, time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	tbs, err := leaf.TBS(nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	var w codec.Writer
	w.Uint8(uint8(wire.NodeTypeLeaf))
	w.Uint32(0)
	w.Optional(true, func(w *codec.Writer) { leaf.Encode(w) })
	hashInput := w.Bytes()
	b.Run("hpke-seal", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, _, err := cs.EncryptWithLabel(pub, "UpdatePathNode", gc, secret, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hpke-open", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, err := cs.DecryptWithLabel(priv, "UpdatePathNode", gc, kem, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("derive-keypair", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, _, err := cs.DeriveKeyPair(secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, err := cs.SignWithLabel(id.SignaturePriv, "LeafNodeTBS", tbs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if err := cs.VerifyWithLabel(leaf.SignatureKey, "LeafNodeTBS", tbs, leaf.Signature); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("hash-node-%dB", len(hashInput)), func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			cs.Hash(hashInput)
		}
	})
}

// BenchmarkCommit measures making a Commit (create) and processing it
// (process: the member at the last leaf, restored from its stored state
// before each run, outside the timer), for an empty Commit with a path and
// for one that adds a member by value, in full and sparse trees.
func BenchmarkCommit(b *testing.B) {
	cs, _ := suite.New(1)
	for _, shape := range []benchShape{shapeFull, shapeSparse} {
		for _, n := range benchSizes() {
			alice, bob := benchPair(b, n, shape)
			state, err := bob.State()
			if err != nil {
				b.Fatal(err)
			}
			newcomer := newBundle(b, cs, "newcomer")
			for _, kind := range []string{"empty", "add"} {
				opts := func() CommitOptions {
					if kind == "add" {
						return CommitOptions{Path: true, Proposals: []wire.Proposal{AddProposal(newcomer.KeyPackage)}}
					}
					return CommitOptions{Path: true}
				}
				b.Run(fmt.Sprintf("create/%s/%s/%d", kind, shape, n), func(b *testing.B) {
					defer reportCPU(b, cpuTime())
					for b.Loop() {
						pc, err := alice.Commit(opts())
						if err != nil {
							b.Fatal(err)
						}
						pc.Discard()
					}
				})
				pc, err := alice.Commit(opts())
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("process/%s/%s/%d", kind, shape, n), func(b *testing.B) {
					var cpu time.Duration
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						g, err := Restore(bob.cfg, state)
						if err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
						start := cpuTime()
						if _, err := g.Handle(pc.Message); err != nil {
							b.Fatal(err)
						}
						cpu += cpuTime() - start
					}
					b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
				})
				pc.Discard()
			}
		}
	}
}

// BenchmarkJoin measures joining from a Welcome (the tree in the
// GroupInfo, validated completely as RFC 9420 §12.4.3.1 requires): the
// Welcome of a Commit that adds one member with a path, in full and sparse
// trees.
func BenchmarkJoin(b *testing.B) {
	cs, _ := suite.New(1)
	for _, shape := range []benchShape{shapeFull, shapeSparse} {
		for _, n := range benchSizes() {
			alice, _ := benchPair(b, n, shape)
			newcomer := newBundle(b, cs, "newcomer")
			pc, err := alice.Commit(CommitOptions{Path: true, Proposals: []wire.Proposal{AddProposal(newcomer.KeyPackage)}})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				defer reportCPU(b, cpuTime())
				for b.Loop() {
					if _, err := Join(alice.cfg, newcomer, pc.Welcome.Welcome, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			pc.Discard()
		}
	}
}

// BenchmarkMessage measures an application message of 1 KiB: Protect by
// one member, Handle by another (decrypt and verify), at 100 members (the
// cost does not depend on the group's size beyond the secret tree's depth).
func BenchmarkMessage(b *testing.B) {
	alice, bob := benchPair(b, 100, shapeFull)
	data := bytes.Repeat([]byte{'x'}, 1024)
	b.SetBytes(int64(len(data)))
	b.Run("protect+unprotect", func(b *testing.B) {
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			m, err := alice.Protect(data, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.Handle(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
