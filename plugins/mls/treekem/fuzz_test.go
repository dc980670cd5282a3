package treekem

import (
	"math/rand/v2"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// FuzzUpdatePath decodes arbitrary bytes as an UpdatePath from leaf 0 of a
// fixed four-member group and runs them through Merge and Decrypt as a
// receiver would: no input may panic, and an input that is refused must
// leave the receiver's private state as it was. The seeds are valid paths
// (the group's keys come from a fixed seed, so they are the same in every
// fuzzing process).
func FuzzUpdatePath(f *testing.F) {
	cs, err := suite.New(1)
	if err != nil {
		f.Fatal(err)
	}
	random := rand.NewChaCha8([32]byte{'t', 'r', 'e', 'e', 'k', 'e', 'm'})
	tr, members := newGroup(f, cs, 4, random)
	ctx := []byte("fuzz context")
	for _, from := range []int{0, 1} {
		staged := tr.Clone()
		c := members[from]
		path, err := Create(cs, staged, c.priv, LeafSigner{Template: tr.Leaf(c.priv.Leaf()), SignaturePriv: c.sigPriv, GroupID: groupID}, random)
		if err != nil {
			f.Fatal(err)
		}
		if err := path.Encrypt(staged, ctx, nil, random); err != nil {
			f.Fatal(err)
		}
		b, err := wire.Marshal(path.UpdatePath)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	receiver := members[3].priv
	f.Fuzz(func(t *testing.T, data []byte) {
		var up wire.UpdatePath
		if wire.Unmarshal(data, &up) != nil {
			return
		}
		theirs := tr.Clone()
		if Merge(cs, theirs, 0, &up, groupID) != nil {
			return
		}
		p := receiver.Clone()
		if _, _, err := p.Decrypt(theirs, 0, &up, ctx, nil); err != nil {
			if err := p.Check(tr); err != nil {
				t.Fatalf("refused path changed the state: %v", err)
			}
			return
		}
		if err := p.Check(theirs); err != nil {
			t.Fatalf("accepted path left an inconsistent state: %v", err)
		}
	})
}

// FuzzUnmarshalPrivate: a stored private state read back never panics,
// and what decodes encodes back to the same bytes.
func FuzzUnmarshalPrivate(f *testing.F) {
	cs, _ := suite.New(1)
	random := rand.NewChaCha8([32]byte{'p', 'r', 'i', 'v'})
	tr, members := newGroup(f, cs, 4, random)
	c := members[0]
	path, err := Create(cs, tr.Clone(), c.priv, LeafSigner{Template: tr.Leaf(0), SignaturePriv: c.sigPriv, GroupID: groupID}, random)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := path.Private.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalPrivate(cs, data)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || string(again) != string(data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}
