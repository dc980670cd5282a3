package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
)

// put is PutBatch of one entry.
func put(ctx context.Context, s *mailbox.Store, id loopix.MailboxID, entry []byte) error {
	return s.PutBatch(ctx, []loopix.MailboxPut{{ID: id, Entry: entry}})[0]
}

func open(t *testing.T, path string, o mailbox.Options) *mailbox.Store {
	t.Helper()
	s, err := mailbox.Open(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBoundsAckAndRestart: entries are numbered from 1, bounded per
// mailbox in count and bytes, deleted by an ack, and still there after
// the store is closed and opened again.
func TestBoundsAckAndRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mailboxes.db")
	o := mailbox.Options{MaxMailboxes: 2, MaxEntries: 3, MaxBytes: 250}
	s := open(t, path, o)
	a, b, c := loopix.MailboxID{1}, loopix.MailboxID{2}, loopix.MailboxID{3}
	if err := put(ctx, s, a, []byte("x")); !errors.Is(err, loopix.ErrNoMailbox) {
		t.Fatalf("put to an unregistered mailbox: %v", err)
	}
	for _, id := range []loopix.MailboxID{a, b, a} {
		if err := s.Register(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Register(ctx, c); !errors.Is(err, loopix.ErrTooManyMailboxes) {
		t.Fatalf("third mailbox: %v", err)
	}
	for i := range 3 {
		if err := put(ctx, s, a, bytes.Repeat([]byte{byte(i + 1)}, 50)); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(ctx, s, a, []byte("y")); !errors.Is(err, loopix.ErrMailboxFull) {
		t.Fatalf("fourth entry: %v", err)
	}
	if err := put(ctx, s, b, make([]byte, 251)); !errors.Is(err, loopix.ErrMailboxFull) {
		t.Fatalf("entry over the byte bound: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, o)
	defer s.Close()
	got, err := s.Take(ctx, a, 0, 2)
	if err != nil || len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[1].Payload[0] != 2 {
		t.Fatalf("take after restart: %+v, %v", got, err)
	}
	got, err = s.Take(ctx, a, 2, 10)
	if err != nil || len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("take after ack 2: %+v, %v", got, err)
	}
	// Room again after the ack: sequence numbers go on.
	if err := put(ctx, s, a, []byte("z")); err != nil {
		t.Fatal(err)
	}
	got, err = s.Take(ctx, a, 3, 10)
	if err != nil || len(got) != 1 || got[0].Seq != 4 || string(got[0].Payload) != "z" {
		t.Fatalf("take after ack 3: %+v, %v", got, err)
	}
	if _, err := s.Take(ctx, c, 0, 1); !errors.Is(err, loopix.ErrNoMailbox) {
		t.Fatalf("take from an unregistered mailbox: %v", err)
	}
	if _, err := s.Take(ctx, b, 1<<63, 1); err != nil {
		t.Fatalf("take with a huge ack: %v", err)
	}
	n, e, err := s.Stats(ctx)
	if err != nil || n != 2 || e != 1 {
		t.Fatalf("stats %d mailboxes %d entries, %v", n, e, err)
	}
}

// TestSharedRetentionAndBounds: a shared mailbox is created by its first
// post, numbers its entries from a time-based start, keeps at most
// SharedMaxEntries (the oldest go), drops entries past the retention,
// never deletes on a read, tells a reader behind a gap where the entries
// resume, survives a restart, and is bounded in number.
func TestSharedRetentionAndBounds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mailboxes.db")
	o := mailbox.Options{MaxMailboxes: 2, MaxEntries: 3, MaxBytes: 250, MaxShared: 2, SharedMaxEntries: 3, SharedMaxEntryBytes: 16, SharedRetention: time.Hour}
	s := open(t, path, o)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b, c := loopix.MailboxID{1}, loopix.MailboxID{2}, loopix.MailboxID{3}
	if _, _, err := s.ReadShared(ctx, a, 0, 4, t0); !errors.Is(err, loopix.ErrNoMailbox) {
		t.Fatalf("read of an unknown shared mailbox: %v", err)
	}
	if _, err := s.PutShared(ctx, a, make([]byte, 17), t0); err == nil {
		t.Fatal("an oversize entry was stored")
	}
	for i := range 5 {
		ev, err := s.PutShared(ctx, a, []byte{byte(i)}, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := max(0, i-2); (ev > 0) != (want > 0) {
			t.Fatalf("put %d evicted %d", i, ev)
		}
	}
	got, gone, err := s.ReadShared(ctx, a, 0, 10, t0.Add(5*time.Minute))
	if err != nil || len(got) != 3 || got[0].Payload[0] != 2 || got[2].Payload[0] != 4 {
		t.Fatalf("read: %v %v", got, err)
	}
	if gone != got[0].Seq-1 || got[0].Seq < 1<<40 {
		t.Fatalf("gone %d, first seq %d", gone, got[0].Seq)
	}
	// Reads never delete; a reader positioned at the second gets the rest.
	again, g2, err := s.ReadShared(ctx, a, got[0].Seq, 10, t0.Add(5*time.Minute))
	if err != nil || len(again) != 2 || g2 != got[0].Seq {
		t.Fatalf("second read: %d entries, gone %d, %v", len(again), g2, err)
	}
	// Past the retention of the first two (puts at minutes 2..4, read at
	// 1h3m30s): one left.
	s.Close()
	s = open(t, path, o)
	defer s.Close()
	late, g3, err := s.ReadShared(ctx, a, got[0].Seq, 10, t0.Add(time.Hour+3*time.Minute+30*time.Second))
	if err != nil || len(late) != 1 || late[0].Payload[0] != 4 || g3 != late[0].Seq-1 {
		t.Fatalf("after retention: %d entries, gone %d, %v", len(late), g3, err)
	}
	// Bounded in number; a mailbox idle and empty past the retention
	// makes room.
	if _, err := s.PutShared(ctx, b, []byte{9}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutShared(ctx, c, []byte{9}, t0.Add(time.Hour)); !errors.Is(err, loopix.ErrTooManyMailboxes) {
		t.Fatalf("a third shared mailbox: %v", err)
	}
	// At 3h a and b hold nothing younger than the retention and had no
	// post for as long: they go, and c fits.
	if _, err := s.PutShared(ctx, c, []byte{9}, t0.Add(3*time.Hour)); err != nil {
		t.Fatalf("a shared mailbox after the others expired: %v", err)
	}
	// A mailbox created again numbers above its old entries.
	if _, err := s.PutShared(ctx, a, []byte{7}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	re, _, err := s.ReadShared(ctx, a, late[0].Seq, 10, t0.Add(3*time.Hour))
	if err != nil || len(re) != 1 || re[0].Payload[0] != 7 {
		t.Fatalf("a recreated mailbox hides its entries from an old reader: %v %v", re, err)
	}
}

// TestPutBatch: a batch append stores its entries in order in one
// transaction, numbers them on from what the mailbox holds, counts the
// bounds for the batch's entries together (an entry past a bound is
// refused, the later ones that fit are stored), refuses entries for an
// unregistered mailbox alone, and what it stored survives a restart.
func TestPutBatch(t *testing.T) {
	ctx := context.Background()
	a, b, c := loopix.MailboxID{1}, loopix.MailboxID{2}, loopix.MailboxID{3}
	entry := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	for _, tt := range []struct {
		name    string
		before  int // entries of 10 bytes in a before the batch
		puts    []loopix.MailboxPut
		want    []error                     // per put: nil or the refusal
		payload map[loopix.MailboxID][]byte // first bytes of the stored entries, in order
	}{
		{
			name:    "all fit",
			puts:    []loopix.MailboxPut{{ID: a, Entry: entry(10, 1)}, {ID: b, Entry: entry(10, 2)}, {ID: a, Entry: entry(10, 3)}},
			want:    []error{nil, nil, nil},
			payload: map[loopix.MailboxID][]byte{a: {1, 3}, b: {2}},
		},
		{
			name:    "count bound across the batch",
			before:  2,
			puts:    []loopix.MailboxPut{{ID: a, Entry: entry(10, 1)}, {ID: a, Entry: entry(10, 2)}, {ID: b, Entry: entry(10, 3)}},
			want:    []error{nil, loopix.ErrMailboxFull, nil},
			payload: map[loopix.MailboxID][]byte{a: {0, 0, 1}, b: {3}},
		},
		{
			name:    "byte bound across the batch, a smaller one fits after",
			puts:    []loopix.MailboxPut{{ID: a, Entry: entry(60, 1)}, {ID: a, Entry: entry(50, 2)}, {ID: a, Entry: entry(40, 3)}},
			want:    []error{nil, loopix.ErrMailboxFull, nil},
			payload: map[loopix.MailboxID][]byte{a: {1, 3}},
		},
		{
			name:    "an unregistered mailbox",
			puts:    []loopix.MailboxPut{{ID: c, Entry: entry(10, 1)}, {ID: b, Entry: entry(10, 2)}, {ID: c, Entry: entry(10, 3)}},
			want:    []error{loopix.ErrNoMailbox, nil, loopix.ErrNoMailbox},
			payload: map[loopix.MailboxID][]byte{b: {2}},
		},
		{
			name: "empty batch",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailboxes.db")
			o := mailbox.Options{MaxMailboxes: 2, MaxEntries: 3, MaxBytes: 100}
			s := open(t, path, o)
			for _, id := range []loopix.MailboxID{a, b} {
				if err := s.Register(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			for range tt.before {
				if err := put(ctx, s, a, entry(10, 0)); err != nil {
					t.Fatal(err)
				}
			}
			errs := s.PutBatch(ctx, tt.puts)
			if len(errs) != len(tt.puts) {
				t.Fatalf("%d errors for %d puts", len(errs), len(tt.puts))
			}
			for i, err := range errs {
				if (err == nil) != (tt.want[i] == nil) || (err != nil && !errors.Is(err, tt.want[i])) {
					t.Errorf("put %d: %v, want %v", i, err, tt.want[i])
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, path, o)
			defer s.Close()
			for _, id := range []loopix.MailboxID{a, b} {
				got, err := s.Take(ctx, id, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				var first []byte
				for i, e := range got {
					if e.Seq != uint64(i+1) {
						t.Errorf("mailbox %x: entry %d has seq %d", id[:1], i, e.Seq)
					}
					first = append(first, e.Payload[0])
				}
				if !bytes.Equal(first, tt.payload[id]) {
					t.Errorf("mailbox %x after a restart holds %v, want %v", id[:1], first, tt.payload[id])
				}
			}
			// The counts the bounds use agree with the entries.
			_, n, err := s.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tt.payload[a]) + len(tt.payload[b]); n != want {
				t.Errorf("stats: %d entries, want %d", n, want)
			}
		})
	}
}
