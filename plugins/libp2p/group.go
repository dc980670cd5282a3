package libp2pplugin

import (
	"context"
	"fmt"
	"sync"
)

// group tracks goroutines so that shutdown can wait for them. Unlike a bare
// sync.WaitGroup it refuses new members once closing has begun, so that
// callbacks arriving during shutdown (stream handlers, mDNS notifications)
// cannot race the wait.
type group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter adds the calling goroutine to g and reports whether it may run;
// a member calls leave when it is done.
func (g *group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// leave ends a membership begun by a successful enter.
func (g *group) leave() { g.wg.Done() }

// Go runs f in a new member goroutine and reports whether it started.
func (g *group) Go(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.leave()
		f()
	}()
	return true
}

// close refuses new members and waits until the current ones are done or
// ctx ends.
func (g *group) close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("goroutines still running: %w", ctx.Err())
	}
}
