package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// TestLongConversation runs a conversation in both directions with random
// burst lengths (so DH ratchet steps interleave irregularly), reordering
// within a window, messages held back across ratchet steps, a few losses,
// occasional replays and save/restore. Every delivered message must decrypt
// exactly once. 10,000 messages; 1,000 with -short.
func TestLongConversation(t *testing.T) {
	total := 10000
	if testing.Short() {
		total = 1000
	}
	lim := DefaultLimits()
	a, b := newPair(t, "long", lim)
	parties := [2]*peer{a, b}
	rng := mrand.New(mrand.NewPCG(20261101, 7))
	type flight struct {
		m    Message
		pt   string
		held int
	}
	var queues [2][]flight // queues[d]: sent by parties[d], not yet delivered
	now := t0
	var sent, delivered, lost, held, replays, ratchets int
	done := map[string]bool{}
	var history []flight // delivered messages, for replays
	for round := 0; sent < total || len(queues[0])+len(queues[1]) > 0; round++ {
		now = now.Add(time.Minute)
		if sent < total {
			from := rng.IntN(2)
			if !parties[from].s.CanSend() {
				from = 0
			}
			for range 1 + rng.IntN(12) {
				if sent == total {
					break
				}
				pt := fmt.Sprintf("m%d from %d", sent, from)
				sent++
				m, err := parties[from].s.Encrypt(parties[from].rand, []byte(pt), testAD)
				if err != nil {
					t.Fatal(err)
				}
				if rng.IntN(100) == 0 {
					lost++
					continue
				}
				queues[from] = append(queues[from], flight{m: m, pt: pt})
			}
		}
		for d := range 2 {
			q := queues[d]
			for i := range q { // reorder within a window of 4
				j := i + rng.IntN(min(4, len(q)-i))
				q[i], q[j] = q[j], q[i]
			}
			var keep []flight
			to := parties[1-d]
			for _, f := range q {
				if sent < total && f.held < 2 && rng.IntN(12) == 0 {
					f.held++
					held++
					keep = append(keep, f)
					continue
				}
				before := to.s.c.dhr
				pt, err := to.s.Decrypt(to.rand, now, f.m, testAD)
				if err != nil {
					t.Fatalf("round %d: %q: %v", round, f.pt, err)
				}
				if string(pt) != f.pt {
					t.Fatalf("round %d: got %q, want %q", round, pt, f.pt)
				}
				if done[f.pt] {
					t.Fatalf("%q decrypted twice", f.pt)
				}
				done[f.pt] = true
				if to.s.c.dhr != before {
					ratchets++
				}
				delivered++
				history = append(history, f)
			}
			queues[d] = keep
			if n := to.s.Skipped(); n > lim.MaxSkippedKeys || len(to.s.sk.chains) > lim.MaxSkippedChains {
				t.Fatalf("limits exceeded: %d keys, %d chains", n, len(to.s.sk.chains))
			}
		}
		if len(history) > 0 && rng.IntN(20) == 0 { // replay an old message
			f := history[rng.IntN(len(history))]
			for _, p := range parties {
				before := marshal(t, p.s)
				if _, err := p.s.Decrypt(p.rand, now, f.m, testAD); err == nil {
					t.Fatalf("replay of %q accepted", f.pt)
				} else if !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrHeader) {
					t.Fatalf("replay of %q: %v", f.pt, err)
				}
				if !bytes.Equal(before, marshal(t, p.s)) {
					t.Fatal("replay changed state")
				}
			}
			replays++
		}
		if rng.IntN(50) == 0 { // save and restore one side
			p := parties[rng.IntN(2)]
			s, err := Unmarshal(marshal(t, p.s), lim)
			if err != nil {
				t.Fatal(err)
			}
			p.s = s
		}
	}
	if delivered+lost != total {
		t.Fatalf("delivered %d + lost %d != %d", delivered, lost, total)
	}
	t.Logf("%d messages: %d delivered, %d lost, %d hold-backs, %d DH ratchet steps, %d replays rejected",
		total, delivered, lost, held, ratchets, replays)
	if ratchets < total/50 || held == 0 || lost == 0 {
		t.Fatalf("conversation too tame: %d ratchets, %d held, %d lost", ratchets, held, lost)
	}
}
