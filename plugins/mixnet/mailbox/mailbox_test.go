package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
)

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
	if err := s.Put(ctx, a, []byte("x")); !errors.Is(err, loopix.ErrNoMailbox) {
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
		if err := s.Put(ctx, a, bytes.Repeat([]byte{byte(i + 1)}, 50)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, a, []byte("y")); !errors.Is(err, loopix.ErrMailboxFull) {
		t.Fatalf("fourth entry: %v", err)
	}
	if err := s.Put(ctx, b, make([]byte, 251)); !errors.Is(err, loopix.ErrMailboxFull) {
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
	if err := s.Put(ctx, a, []byte("z")); err != nil {
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
