package node

import (
	"context"
	"sync"

	"github.com/strata-msg/strata/host/conversations"
)

// HistoryGate stands for a slow disk: while it is shut, the node's
// history writes wait.
type HistoryGate struct {
	mu      sync.Mutex
	open    chan struct{} // closed while the gate is open
	waiting chan struct{} // closed once a write waits at the shut gate
}

// GateHistory puts a gate, open, in front of n's history store. Call it
// before Start.
func GateHistory(n *Node) *HistoryGate {
	g := &HistoryGate{open: make(chan struct{}), waiting: make(chan struct{})}
	close(g.open)
	n.wrapHistory = func(s historyStore) historyStore { return &gatedStore{historyStore: s, g: g} }
	return g
}

// Shut makes the next writes wait; Waiting is closed when one does.
func (g *HistoryGate) Shut() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
	g.waiting = make(chan struct{})
	return g.waiting
}

// Open lets the waiting writes and the next ones through.
func (g *HistoryGate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

type gatedStore struct {
	historyStore
	g *HistoryGate
}

func (s *gatedStore) Append(ctx context.Context, msgs []*conversations.Message) (*conversations.Appended, error) {
	s.g.mu.Lock()
	open, waiting := s.g.open, s.g.waiting
	select {
	case <-open:
	default:
		select {
		case <-waiting:
		default:
			close(waiting)
		}
	}
	s.g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.historyStore.Append(ctx, msgs)
}
