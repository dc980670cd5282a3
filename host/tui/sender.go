package tui

import (
	"context"
	"fmt"
	"sync"

	tea "github.com/charmbracelet/bubbletea"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// job is one message to send. Jobs go to the node one at a time, in the
// order the UI made them, so that each of this client's messages can name
// the one it sent before in the same conversation as its parent: with a
// sync layer, every member's node then takes them in that order (a join
// before the first message it allows, a create before an invite).
type job struct {
	// set, if not nil, sets the node's conversation first: a new group,
	// or a 1:1 chat the node does not hold yet.
	set *appv1.SetConversationRequest
	// open asks for the conversation set to be opened.
	open    bool
	conv    []byte
	payload []byte
	// chain names this client's previous message in conv as the parent.
	chain bool
	// ok is the status to show once sent.
	ok   string
	done chan doneMsg
}

// outbox is the queue of jobs between the UI and its sender.
type outbox struct {
	mu   sync.Mutex
	jobs []*job
	wake chan struct{}
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

// put queues j; it never blocks.
func (o *outbox) put(j *job) {
	o.mu.Lock()
	o.jobs = append(o.jobs, j)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take returns the queued jobs, oldest first, and empties the queue.
func (o *outbox) take() []*job {
	o.mu.Lock()
	defer o.mu.Unlock()
	jobs := o.jobs
	o.jobs = nil
	return jobs
}

// runSender sends the jobs of o through b until ctx ends.
func runSender(ctx context.Context, b Backend, o *outbox) {
	last := map[string][]byte{} // conversation -> this client's last message id
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		for _, j := range o.take() {
			j.done <- do(ctx, b, j, last)
		}
	}
}

// do sends one job.
func do(ctx context.Context, b Backend, j *job, last map[string][]byte) doneMsg {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var d doneMsg
	if j.set != nil {
		c, err := b.SetConversation(ctx, j.set)
		if err != nil {
			return doneMsg{err: fmt.Errorf("set up the conversation: %w", err), unset: j.conv}
		}
		if j.open {
			d.open = c
		}
	}
	var parents [][]byte
	if p := last[string(j.conv)]; j.chain && p != nil {
		parents = [][]byte{p}
	}
	id, err := b.Send(ctx, j.conv, j.payload, parents)
	if err != nil {
		d.err = fmt.Errorf("send: %w", err)
		return d
	}
	last[string(j.conv)] = id
	d.status = j.ok
	return d
}

// queue puts j in the outbox and returns the command that waits for it
// to be sent.
func (m *Model) queue(j *job) tea.Cmd {
	j.done = make(chan doneMsg, 1)
	m.box.put(j)
	ctx := m.ctx
	return func() tea.Msg {
		select {
		case d := <-j.done:
			return d
		case <-ctx.Done():
			return nil
		}
	}
}
