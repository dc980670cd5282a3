package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/host/conversations"
)

// TestFollowPagesInBytes: Follow reads a history of more than one page's
// bytes (conversations.MaxHistoryPageBytes) a page at a time, every
// message once and in cursor order, then follows what is added; no page
// it reads exceeds the bound.
func TestFollowPagesInBytes(t *testing.T) {
	ctx := t.Context()
	store, err := conversations.Open(ctx, filepath.Join(t.TempDir(), conversations.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pages := &pageRecorder{historyStore: store}
	n := &Node{hist: newHistory(t.Context(), pages)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer n.cancel()
	mk := func(i int) *conversations.Message {
		return &conversations.Message{Conversation: []byte("c"), MessageID: []byte(fmt.Sprint(i)), Payload: bytes.Repeat([]byte{byte(i)}, 500<<10), Time: time.Now()}
	}
	var first []*conversations.Message
	for i := range 12 {
		first = append(first, mk(i))
	}
	if _, err := n.hist.append(ctx, first); err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan *conversations.Message, 20)
	done := make(chan error, 1)
	go func() {
		done <- n.Follow(fctx, []byte("c"), 0, false, func(m *conversations.Message) error {
			got <- m
			return nil
		})
	}()
	for i := range 12 {
		if m := <-got; string(m.MessageID) != fmt.Sprint(i) {
			t.Fatalf("message %q where %d was due", m.MessageID, i)
		}
	}
	if _, err := n.hist.append(ctx, []*conversations.Message{mk(12)}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m.MessageID) != "12" {
		t.Fatalf("followed %q, want 12", m.MessageID)
	}
	stop()
	<-done
	if pages.max > conversations.MaxHistoryPageBytes || pages.reads < 4 {
		t.Fatalf("largest page %d bytes in %d reads", pages.max, pages.reads)
	}
}

// pageRecorder records the largest page History returned.
type pageRecorder struct {
	historyStore
	max, reads int
}

func (p *pageRecorder) History(ctx context.Context, conversation []byte, after uint64, limit int) ([]*conversations.Message, error) {
	msgs, err := p.historyStore.History(ctx, conversation, after, limit)
	size := 0
	for _, m := range msgs {
		size += m.Size()
	}
	p.reads++
	p.max = max(p.max, size)
	return msgs, err
}
