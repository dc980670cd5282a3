package whisper_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// refEvent is an unsolicited line of cmd/refnode ({"event": ...}); see
// interop/whisperv6/README.md.
type refEvent struct {
	Event        string `json:"event"`
	Filter       string `json:"filter"`
	Payload      string `json:"payload"`
	Topic        string `json:"topic"`
	SignerPub    string `json:"signer_pub"`
	RecipientPub string `json:"recipient_pub"`
	Hash         string `json:"hash"`
	Type         string `json:"type"`
	Peer         string `json:"peer"`
	Error        string `json:"error"`
	Enode        string `json:"enode"`
}

// refPeer is one entry of the "peers" answer.
type refPeer struct {
	ID        string         `json:"id"`
	Caps      []string       `json:"caps"`
	Whisper   bool           `json:"whisper"`
	PoW       float64        `json:"pow"`
	Bloom     string         `json:"bloom"`
	Light     bool           `json:"light"`
	Envelopes int            `json:"envelopes_received"`
	Packets   map[string]int `json:"packets_received"`
}

// refInfo is the answer to "info".
type refInfo struct {
	Enode  string  `json:"enode"`
	NodeID string  `json:"node_id"`
	PubKey string  `json:"pub_key"`
	MinPoW float64 `json:"min_pow"`
}

// refClient drives one cmd/refnode process over its JSON-lines protocol
// (a copy of the shape of interop/whisperv6/refnode/client.go, which this
// module cannot import).
type refClient struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *sdktest.SyncBuffer
	wmu    sync.Mutex
	mu     sync.Mutex
	nextID int64
	wait   map[int64]chan json.RawMessage
	events []refEvent // every event, in order
	done   chan struct{}
}

func startRefnode(ctx context.Context, bin string, args ...string) (*refClient, error) {
	cmd := exec.Command(bin, args...)
	c := &refClient{cmd: cmd, stderr: &sdktest.SyncBuffer{}, wait: map[int64]chan json.RawMessage{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.stdin = in
	ready := make(chan struct{})
	go c.read(out, ready)
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		c.close()
		return nil, fmt.Errorf("refnode exited before ready: %s", c.stderr.String())
	case <-ctx.Done():
		c.close()
		return nil, ctx.Err()
	}
}

func (c *refClient) read(r io.Reader, ready chan struct{}) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	gotReady := false
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var head struct {
			ID    *int64 `json:"id"`
			Event string `json:"event"`
		}
		if json.Unmarshal(line, &head) != nil {
			continue
		}
		if head.Event != "" {
			var ev refEvent
			if json.Unmarshal(line, &ev) == nil {
				c.mu.Lock()
				c.events = append(c.events, ev)
				c.mu.Unlock()
				if ev.Event == "ready" && !gotReady {
					gotReady = true
					close(ready)
				}
			}
			continue
		}
		if head.ID != nil {
			c.mu.Lock()
			ch := c.wait[*head.ID]
			delete(c.wait, *head.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- line
			}
		}
	}
}

// call sends one command and decodes the answer into out (may be nil).
func (c *refClient) call(ctx context.Context, cmd string, params map[string]any, out any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan json.RawMessage, 1)
	c.wait[id] = ch
	c.mu.Unlock()
	req := map[string]any{}
	for k, v := range params {
		req[k] = v
	}
	req["id"], req["cmd"] = id, cmd
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	_, err = c.stdin.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case line := <-ch:
		var e struct {
			Error *string `json:"error"`
		}
		if json.Unmarshal(line, &e) == nil && e.Error != nil {
			return fmt.Errorf("refnode %s: %s", cmd, *e.Error)
		}
		if out != nil {
			return json.Unmarshal(line, out)
		}
		return nil
	case <-c.done:
		return errors.New("refnode exited")
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.wait, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *refClient) info(ctx context.Context) (*refInfo, error) {
	var i refInfo
	return &i, c.call(ctx, "info", nil, &i)
}

func (c *refClient) peers(ctx context.Context) ([]refPeer, error) {
	var r struct {
		Peers []refPeer `json:"peers"`
	}
	return r.Peers, c.call(ctx, "peers", nil, &r)
}

func (c *refClient) peer(ctx context.Context, id string) (*refPeer, error) {
	ps, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if ps[i].ID == id {
			return &ps[i], nil
		}
	}
	return nil, nil
}

// eventsSince returns the events recorded from index i on.
func (c *refClient) eventsSince(i int) []refEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i > len(c.events) {
		return nil
	}
	return append([]refEvent(nil), c.events[i:]...)
}

func (c *refClient) eventCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// close asks the node to quit, then kills it after a grace period.
func (c *refClient) close() {
	c.wmu.Lock()
	_, _ = c.stdin.Write([]byte(`{"cmd":"quit"}` + "\n"))
	_ = c.stdin.Close()
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	werr := make(chan error, 1)
	go func() { werr <- c.cmd.Wait() }()
	select {
	case <-werr:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-werr
	}
}
