package loopix_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
)

// order records, for a provider's batch, when its replay tags were
// checked and its mailbox entries stored.
type order struct {
	t      *testing.T
	events []string
	prov   **loopix.Provider
}

// orderedFilter is a replay filter that records its calls, checks that
// the provider has queued nothing yet when it is asked, and can fail
// every tag.
type orderedFilter struct {
	o     *order
	inner loopix.ReplayFilter
	fail  bool
}

func (f *orderedFilter) SeenBatch(ctx context.Context, checks []replay.Check, dst []replay.Verdict) []replay.Verdict {
	f.o.events = append(f.o.events, "seen")
	if p := *f.o.prov; p != nil && p.Counters().QueueLength.Load() != 0 {
		f.o.t.Errorf("the provider queued %d packets before their replay tags were checked", p.Counters().QueueLength.Load())
	}
	if f.fail {
		for range checks {
			dst = append(dst, replay.Verdict{Seen: true, Err: replay.ErrFailed})
		}
		return dst
	}
	return f.inner.SeenBatch(ctx, checks, dst)
}

func (f *orderedFilter) Rotate(ctx context.Context, current uint64) error {
	return f.inner.Rotate(ctx, current)
}

// orderedBoxes is the mailbox store, recording its batch appends.
type orderedBoxes struct {
	*mailbox.Store
	o *order
}

func (b orderedBoxes) PutBatch(ctx context.Context, puts []loopix.MailboxPut) []error {
	b.o.events = append(b.o.events, "put")
	return b.Store.PutBatch(ctx, puts)
}

// TestProviderBatchReplay: a provider checks the replay tags of a batch
// in one call, stores the mailbox entries the batch produced in one
// transaction after that, and forwards or stores one of two copies of a
// packet in the batch. After a crash between that commit and the sending
// (the provider, its replay store and mailboxes abandoned, not closed, its
// queue never sent) the entries are there, once, and the same packets are
// all dropped as replays; a replay store that fails drops the whole batch.
func TestProviderBatchReplay(t *testing.T) {
	c := captureProviderFrames(t, 43, 12)
	s := c.s
	m := s.member("provider-1")
	ctx := t.Context()
	all := make([]int, len(c.frames))
	for i := range all {
		all[i] = i
	}
	// The batch with two more copies of the mixes' first two packets.
	var dups []int
	for i, f := range c.frames {
		if _, relay := s.dir.ByPeer(c.from[i]); relay && f[0] == loopix.FramePacket && len(dups) < 2 {
			dups = append(dups, i)
		}
	}
	withDups := append(append([]int(nil), all...), dups...)
	for _, tt := range []struct {
		name    string
		replay  replay.Durability
		mailbox string
	}{
		{"durability full", replay.SyncFull, "FULL"},
		{"durability normal", replay.SyncWrite, "NORMAL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			boxPath := filepath.Join(dir, "mailboxes.db")
			o := &order{t: t}
			start := func(fail bool) (*loopix.Provider, *mailbox.Store) {
				st, err := replay.Open(ctx, dir, simEpoch, replay.Options{ExpectedTags: 10000, Durability: tt.replay})
				if err != nil {
					t.Fatal(err)
				}
				boxes, err := mailbox.Open(ctx, boxPath, mailbox.Options{MaxMailboxes: 10, MaxEntries: 1000, MaxBytes: 8 << 20, Synchronous: tt.mailbox})
				if err != nil {
					t.Fatal(err)
				}
				// Closed at the end only: a crash abandons them.
				t.Cleanup(func() { boxes.Close() })
				keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
				if err != nil {
					t.Fatal(err)
				}
				var p *loopix.Provider
				o.prov = &p
				rc := loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: &orderedFilter{o: o, inner: st, fail: fail}, MaxQueue: 1000, MaxDelay: time.Minute}
				rc.Rates.LambdaM, rc.Rates.LambdaL = 0, 0
				p, err = loopix.NewProvider(ctx, loopix.ProviderConfig{
					RelayConfig: rc, Mailboxes: orderedBoxes{Store: boxes, o: o}, PullBatch: 4, ClientRate: 20, ClientBurst: 100, MaxClients: 10,
				}, s.dir, c.at)
				if err != nil {
					t.Fatal(err)
				}
				return p, boxes
			}
			inMailbox := func(boxes *mailbox.Store) int {
				got, err := boxes.Take(ctx, c.bob, 0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				return len(got)
			}
			var stored, fresh uint64 // what the first batch stored, and accepted
			for _, step := range []struct {
				name   string
				fail   bool
				batch  []int
				events []string
				check  func(t *testing.T, cs *loopix.Counters, forwarded, entries int)
			}{
				{
					name: "store fails", fail: true, batch: withDups, events: []string{"seen"},
					check: func(t *testing.T, cs *loopix.Counters, forwarded, entries int) {
						if cs.ReplayError.Load() == 0 || cs.Stored.Load() != 0 || forwarded != 0 || entries != 0 {
							t.Errorf("%d replay errors, %d stored, %d forwarded, %d in the mailbox; want >0, 0, 0, 0", cs.ReplayError.Load(), cs.Stored.Load(), forwarded, entries)
						}
					},
				},
				{
					name: "two copies in one batch", batch: withDups, events: []string{"seen", "put"},
					check: func(t *testing.T, cs *loopix.Counters, forwarded, entries int) {
						stored = cs.Stored.Load()
						fresh = stored + uint64(forwarded) + cs.CoverDiscarded.Load()
						if cs.Replayed.Load() != uint64(len(dups)) || stored == 0 || cs.MailboxBatches.Load() != 1 || entries != int(stored) || forwarded == 0 {
							t.Errorf("%d replayed, %d stored in %d batches, %d in the mailbox, %d forwarded; want %d, >0 in 1, as many, >0",
								cs.Replayed.Load(), stored, cs.MailboxBatches.Load(), entries, forwarded, len(dups))
						}
					},
				},
				{
					name: "after a crash between commit and send", batch: all, events: []string{"seen"},
					check: func(t *testing.T, cs *loopix.Counters, forwarded, entries int) {
						if cs.Replayed.Load() != fresh || cs.Stored.Load() != 0 || forwarded != 0 || entries != int(stored) {
							t.Errorf("%d replayed, %d stored, %d forwarded, %d in the mailbox; want %d, 0, 0, %d",
								cs.Replayed.Load(), cs.Stored.Load(), forwarded, entries, fresh, stored)
						}
					},
				},
			} {
				t.Run(step.name, func(t *testing.T) {
					p, boxes := start(step.fail)
					o.events = nil
					p.HandleBatch(ctx, c.at, c.batch(step.batch...))
					if got := o.events; len(got) != len(step.events) || (len(got) == 2 && got[1] != step.events[1]) || got[0] != step.events[0] {
						t.Errorf("the batch's commits: %v, want %v", got, step.events)
					}
					entries := inMailbox(boxes)
					// What the batch queued for the mixes; the step's
					// provider is abandoned before a Tick sends it: the
					// crash between commit and send.
					forwarded := int(p.Counters().QueueLength.Load())
					step.check(t, p.Counters(), forwarded, entries)
				})
			}
		})
	}
}
