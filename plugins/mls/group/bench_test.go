package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// benchGroup makes a group of n members added by value in one Commit with
// a path (suite 1, PublicMessage handshakes): the creator's state, a
// joined member's state, and the Welcome with the bundle it was made for.
// The tree is sparse: every parent off the creator's path is blank, so a
// path from the creator encrypts to about n-1 leaves.
func benchGroup(b *testing.B, n int) (alice, bob *Group, welcome *wire.Welcome, bobBundle *KeyPackageBundle) {
	b.Helper()
	cs, _ := suite.New(1)
	cfg := testConfig(wire.WireFormatPublicMessage)
	alice, err := Create(cfg, cs, []byte("bench"), newIdentity(b, cs, "alice"), nil)
	if err != nil {
		b.Fatal(err)
	}
	var props []wire.Proposal
	for i := 1; i < n; i++ {
		kp, err := NewKeyPackage(cs, newIdentity(b, cs, fmt.Sprint("m", i)), testNow, time.Hour, nil)
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			bobBundle = kp
		}
		props = append(props, AddProposal(kp.KeyPackage))
	}
	pc, err := alice.Commit(CommitOptions{Proposals: props, Path: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := alice.Merge(pc); err != nil {
		b.Fatal(err)
	}
	bob, err = Join(cfg, bobBundle, pc.Welcome.Welcome, nil)
	if err != nil {
		b.Fatal(err)
	}
	return alice, bob, pc.Welcome.Welcome, bobBundle
}

// BenchmarkCommit measures making an empty Commit with a path (the
// creator, in a sparse tree) and processing it (another member, restored
// from its stored state before each run, outside the timer).
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		alice, bob, _, _ := benchGroup(b, n)
		b.Run(fmt.Sprintf("create/%d", n), func(b *testing.B) {
			for b.Loop() {
				pc, err := alice.Commit(CommitOptions{Path: true})
				if err != nil {
					b.Fatal(err)
				}
				pc.Discard()
			}
		})
		pc, err := alice.Commit(CommitOptions{Path: true})
		if err != nil {
			b.Fatal(err)
		}
		state, err := bob.State()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("process/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				g, err := Restore(bob.cfg, state)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := g.Handle(pc.Message); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJoin measures joining from a Welcome, tree validation included.
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		_, bob, welcome, bundle := benchGroup(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Join(bob.cfg, bundle, welcome, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
