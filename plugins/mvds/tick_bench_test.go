package mvds

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkIdleTick measures an epoch of a node that has nothing to send:
// groups of two (a 1:1 conversation each) and, in the second case, one
// group of fifty besides, every record acknowledged. ns/op is one epoch;
// a node with epoch: 50ms runs twenty a second.
func BenchmarkIdleTick(b *testing.B) {
	for _, tc := range []struct{ pairs, big int }{{10, 0}, {199, 0}, {199, 50}} {
		b.Run(fmt.Sprintf("pairs=%d/big=%d", tc.pairs, tc.big), func(b *testing.B) {
			tn := newTNode(b, "a", testSettings(), newClock())
			ctx := context.Background()
			for i := range tc.pairs {
				if err := tn.n.setGroup(ctx, []byte(fmt.Sprintf("pair %03d", i)), [][]byte{tn.id, identity(fmt.Sprint("peer ", i))}); err != nil {
					b.Fatal(err)
				}
			}
			if tc.big > 0 {
				members := [][]byte{tn.id}
				for i := 1; i < tc.big; i++ {
					members = append(members, identity(fmt.Sprint("peer ", i)))
				}
				if err := tn.n.setGroup(ctx, []byte("big group"), members); err != nil {
					b.Fatal(err)
				}
			}
			tn.tick()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if out := tn.tick(); len(out) > 0 {
					b.Fatalf("an idle epoch sent %d payloads", len(out))
				}
			}
		})
	}
}
