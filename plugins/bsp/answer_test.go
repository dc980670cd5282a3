package bsp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// answerNet builds the repair storm: the author a and n other members
// hold m; r lost it, and hears of it only through m's child, which a
// hands r before it leaves for good. Relaying is off, so nobody offers m
// to r: r's repair requests go to a first, then (from the third round) to
// every member, and each holds m. loss is the share of every frame lost
// after that, drawn from seed.
func answerNet(t *testing.T, backoff, members int, loss float64, seed uint64) (tn *testNet, m wire.ID, answers func() int) {
	cfg := testCfg()
	cfg.Relay = false
	cfg.AnswerBackoff = backoff
	names := []string{"a", "r"}
	for i := range members {
		names = append(names, fmt.Sprintf("h%d", i))
	}
	tn = newNetSeeded(t, cfg, seed, names...)
	tn.drop = func(from, to string, _ []byte) bool { return to == "r" }
	m = tn.send("a", "m")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool {
		for _, name := range names[2:] {
			if !tn.has(name, m) {
				return false
			}
		}
		return true
	})
	child := tn.send("a", "child", m)
	ga := tn.nodes["a"].n.groups[string(testGroup)]
	rm := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[child].ts, Body: ga.msgs[child].raw}
	tn.deliver("a", "r", wire.AppendMessage(wire.AppendVersions(nil, 0), rm))
	tn.nodes["a"].offline = true
	rng := rand.New(rand.NewPCG(seed, 99))
	tn.drop = func(string, string, []byte) bool { return loss > 0 && rng.Float64() < loss }
	mark := len(tn.tape)
	g := ga.bsp
	answers = func() int {
		k := 0
		for _, f := range tn.tape[mark:] {
			if f.to != "r" {
				continue
			}
			for b := f.payload; len(b) > 0; {
				rec, n, err := wire.Next(b)
				if err != nil {
					break
				}
				b = b[n:]
				if rec.Type == wire.Message {
					if x, err := wire.DecodeMessage(rec.Payload); err == nil && x.Group == g && x.ID() == m && !bytes.Equal([]byte(f.from), []byte("a")) {
						k++
					}
				}
			}
		}
		return k
	}
	return tn, m, answers
}

// TestRepairAnswerBackoff: with eight members able to answer r's repair
// request, answers at once (answer_backoff 0) send m to r eight times;
// with the random back-off, the first answer's ACK (which r sends to
// every member it asked) cancels the others', so far fewer go out; and
// under 30% loss m still arrives. Deterministic: a manual clock and
// seeded randomness.
func TestRepairAnswerBackoff(t *testing.T) {
	const members = 8
	tn, m, answers := answerNet(t, 0, members, 0, 1)
	tn.run(10*time.Millisecond, 30*time.Second, func() bool { return tn.has("r", m) })
	tn.runFor(10*time.Millisecond, 2*time.Second)
	if got := answers(); got != members {
		t.Fatalf("without back-off: %d answers, want %d (every member)", got, members)
	}

	var total int
	for seed := range uint64(5) {
		tn, m, answers := answerNet(t, 4, members, 0, seed+1)
		tn.run(10*time.Millisecond, 30*time.Second, func() bool { return tn.has("r", m) })
		tn.runFor(10*time.Millisecond, 2*time.Second)
		got := answers()
		var suppressed uint64
		for _, nd := range tn.nodes {
			suppressed += nd.n.c.answersSuppressed.Load()
		}
		t.Logf("seed %d: %d answers of %d members, %d suppressed", seed+1, got, members, suppressed)
		if got < 1 || got > members/2 {
			t.Fatalf("seed %d: %d answers, want 1 to %d", seed+1, got, members/2)
		}
		if suppressed == 0 {
			t.Fatalf("seed %d: no answer suppressed", seed+1)
		}
		total += got
	}
	if total > 5*members/4 {
		t.Fatalf("%d answers in 5 runs, want at most %d", total, 5*members/4)
	}

	// Under loss: requests, answers and acks are lost; m still arrives.
	for seed := range uint64(3) {
		tn, m, answers := answerNet(t, 4, members, 0.3, seed+10)
		tn.run(10*time.Millisecond, 60*time.Second, func() bool { return tn.has("r", m) })
		got := answers()
		t.Logf("30%% loss, seed %d: %d answers", seed+10, got)
		if got > members/2 {
			t.Fatalf("30%% loss, seed %d: %d answers, want at most %d", seed+10, got, members/2)
		}
	}
}
