// Package refnode drives a bin/refnode process (go-ethereum v1.9.20 whisper
// v6 reference node) over its newline-delimited JSON stdin/stdout protocol.
package refnode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Event is an unsolicited line from the node ({"event": ...}).
type Event struct {
	Event string `json:"event"`
	// message events
	Filter       string  `json:"filter,omitempty"`
	Payload      string  `json:"payload,omitempty"`
	Padding      string  `json:"padding,omitempty"`
	Topic        string  `json:"topic,omitempty"`
	SignerPub    string  `json:"signer_pub,omitempty"`
	RecipientPub string  `json:"recipient_pub,omitempty"`
	PoW          float64 `json:"pow,omitempty"`
	Hash         string  `json:"hash,omitempty"`
	Sent         uint32  `json:"sent,omitempty"`
	TTL          uint32  `json:"ttl,omitempty"`
	// peer events: type add | drop | whisper_status
	Type   string `json:"type,omitempty"`
	Peer   string `json:"peer,omitempty"`
	Error  string `json:"error,omitempty"`
	Remote string `json:"remote,omitempty"`
	Bloom  string `json:"bloom,omitempty"`
	Enode  string `json:"enode,omitempty"`
}

// Client is one running refnode process.
type Client struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	wmu    sync.Mutex
	mu     sync.Mutex
	nextID int64
	wait   map[int64]chan json.RawMessage
	events chan Event
	done   chan struct{}
	err    error
}

// Start launches binPath with args (flags of cmd/refnode), stderr going to
// this process's stderr unless REFNODE_QUIET is set, and waits for the
// node's "ready" event.
func Start(ctx context.Context, binPath string, args ...string) (*Client, error) {
	cmd := exec.Command(binPath, args...)
	if os.Getenv("REFNODE_QUIET") == "" {
		cmd.Stderr = os.Stderr
	}
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
	c := &Client{cmd: cmd, stdin: in, wait: map[int64]chan json.RawMessage{}, events: make(chan Event, 4096), done: make(chan struct{})}
	ready := make(chan struct{}, 1)
	go c.read(out, ready)
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		c.Close()
		return nil, fmt.Errorf("refnode exited before ready: %v", c.err)
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

func (c *Client) read(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
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
			var ev Event
			if json.Unmarshal(line, &ev) == nil {
				if ev.Event == "ready" {
					select {
					case ready <- struct{}{}:
					default:
					}
				}
				select {
				case c.events <- ev:
				default: // drop when nobody reads
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
	c.mu.Lock()
	c.err = sc.Err()
	if c.err == nil {
		c.err = io.EOF
	}
	c.mu.Unlock()
	close(c.done)
}

// Events returns the channel of unsolicited events (message, peer, ready).
func (c *Client) Events() <-chan Event { return c.events }

// Call sends one command with the given fields and decodes the answer into
// out (may be nil). A {"error":..} answer is returned as an error.
func (c *Client) Call(ctx context.Context, cmd string, params map[string]interface{}, out interface{}) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan json.RawMessage, 1)
	c.wait[id] = ch
	c.mu.Unlock()
	req := map[string]interface{}{}
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
			return errors.New(*e.Error)
		}
		if out != nil {
			return json.Unmarshal(line, out)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("refnode exited: %v", c.err)
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.wait, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Info is the answer to "info".
type Info struct {
	Enode   string  `json:"enode"`
	NodeID  string  `json:"node_id"`
	PubKey  string  `json:"pub_key"`
	Listen  string  `json:"listen"`
	MinPoW  float64 `json:"min_pow"`
	Bloom   string  `json:"bloom"`
	MaxSize uint32  `json:"max_size"`
}

func (c *Client) Info(ctx context.Context) (*Info, error) {
	var i Info
	return &i, c.Call(ctx, "info", nil, &i)
}

func (c *Client) AddPeer(ctx context.Context, enode string) error {
	return c.Call(ctx, "add_peer", map[string]interface{}{"enode": enode}, nil)
}

func (c *Client) RemovePeer(ctx context.Context, enode string) error {
	return c.Call(ctx, "remove_peer", map[string]interface{}{"enode": enode}, nil)
}

// Peer is one entry of "peers". PoW and Bloom are the values the remote
// announced (status, then codes 2/3), as observed on the wire.
type Peer struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Remote    string         `json:"remote"`
	Caps      []string       `json:"caps"`
	Whisper   bool           `json:"whisper"`
	PoW       float64        `json:"pow"`
	Bloom     string         `json:"bloom"`
	Light     bool           `json:"light"`
	Envelopes int            `json:"envelopes_received"`
	Packets   map[string]int `json:"packets_received"`
}

func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var r struct {
		Peers []Peer `json:"peers"`
	}
	return r.Peers, c.Call(ctx, "peers", nil, &r)
}

// WaitPeers polls until at least n peers have completed the whisper handshake.
func (c *Client) WaitPeers(ctx context.Context, n int) ([]Peer, error) {
	for {
		ps, err := c.Peers(ctx)
		if err != nil {
			return nil, err
		}
		k := 0
		for _, p := range ps {
			if p.Whisper {
				k++
			}
		}
		if k >= n {
			return ps, nil
		}
		select {
		case <-ctx.Done():
			return ps, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetMinPoW calls SetMinimumPoW (announced, 10 s tolerance) or, with
// noTolerance, SetMinimumPowTest (immediate, not announced).
func (c *Client) SetMinPoW(ctx context.Context, pow float64, noTolerance bool) error {
	return c.Call(ctx, "set_min_pow", map[string]interface{}{"pow": pow, "no_tolerance": noTolerance}, nil)
}

func (c *Client) SetBloom(ctx context.Context, bloomHex string) error {
	return c.Call(ctx, "set_bloom", map[string]interface{}{"bloom": bloomHex}, nil)
}

// NewSymKey generates a key, or derives it from password when non-nil.
func (c *Client) NewSymKey(ctx context.Context, password *string) (id, keyHex string, err error) {
	p := map[string]interface{}{}
	if password != nil {
		p["password"] = *password
	}
	var r struct {
		KeyID string `json:"key_id"`
		Key   string `json:"key"`
	}
	err = c.Call(ctx, "new_sym_key", p, &r)
	return r.KeyID, r.Key, err
}

func (c *Client) AddSymKey(ctx context.Context, keyHex string) (string, error) {
	var r struct {
		KeyID string `json:"key_id"`
	}
	return r.KeyID, c.Call(ctx, "add_sym_key", map[string]interface{}{"key": keyHex}, &r)
}

func (c *Client) NewKeyPair(ctx context.Context) (id, pubHex string, err error) {
	var r struct {
		KeyID  string `json:"key_id"`
		PubKey string `json:"pub_key"`
	}
	err = c.Call(ctx, "new_key_pair", nil, &r)
	return r.KeyID, r.PubKey, err
}

func (c *Client) AddPrivateKey(ctx context.Context, privHex string) (id, pubHex string, err error) {
	var r struct {
		KeyID  string `json:"key_id"`
		PubKey string `json:"pub_key"`
	}
	err = c.Call(ctx, "add_private_key", map[string]interface{}{"key": privHex}, &r)
	return r.KeyID, r.PubKey, err
}

// SubscribeParams: exactly one of SymKeyID / PrivateKeyID.
type SubscribeParams struct {
	Topics       []string `json:"topics"`
	SymKeyID     string   `json:"sym_key_id,omitempty"`
	PrivateKeyID string   `json:"private_key_id,omitempty"`
	MinPoW       float64  `json:"min_pow,omitempty"`
	AllowP2P     bool     `json:"allow_p2p,omitempty"`
}

func (c *Client) Subscribe(ctx context.Context, p SubscribeParams) (string, error) {
	var r struct {
		Filter string `json:"filter"`
	}
	return r.Filter, c.Call(ctx, "subscribe", toMap(p), &r)
}

func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	return c.Call(ctx, "unsubscribe", map[string]interface{}{"filter": filter}, nil)
}

// PostParams: exactly one of SymKeyID / PubKey. PowTarget nil = 0.2;
// Direct sends the sealed envelope straight to peers, skipping local checks.
type PostParams struct {
	Topic         string   `json:"topic"`
	Payload       string   `json:"payload"`
	Padding       *string  `json:"padding,omitempty"`
	SymKeyID      string   `json:"sym_key_id,omitempty"`
	PubKey        string   `json:"pub_key,omitempty"`
	SignWithKeyID string   `json:"sign_with_key_id,omitempty"`
	TTL           uint32   `json:"ttl,omitempty"`
	PowTarget     *float64 `json:"pow_target,omitempty"`
	PowTime       uint32   `json:"pow_time,omitempty"`
	Direct        bool     `json:"direct,omitempty"`
}

// PostResult is the answer to post / post_raw.
type PostResult struct {
	Hash        string   `json:"hash"`
	EnvelopeRLP string   `json:"envelope_rlp"`
	PoW         float64  `json:"pow"`
	SentTo      []string `json:"sent_to"`
}

func (c *Client) Post(ctx context.Context, p PostParams) (*PostResult, error) {
	var r PostResult
	return &r, c.Call(ctx, "post", toMap(p), &r)
}

// PostRaw injects an envelope: to "local" (geth's add() as if received, error
// returned) or "peers" (verbatim code-1 packet to whisper peers; peer = one
// node id or "" for all).
func (c *Client) PostRaw(ctx context.Context, envelopeRLPHex, to, peer string) (*PostResult, error) {
	var r PostResult
	return &r, c.Call(ctx, "post_raw", map[string]interface{}{"envelope_rlp": envelopeRLPHex, "to": to, "peer": peer}, &r)
}

// Stats returns the raw "stats" answer.
func (c *Client) Stats(ctx context.Context) (map[string]interface{}, error) {
	r := map[string]interface{}{}
	return r, c.Call(ctx, "stats", nil, &r)
}

// WaitMessage returns the next message event for filter (other events are
// discarded unless keep is non-nil, where they are appended).
func (c *Client) WaitMessage(ctx context.Context, filter string, keep *[]Event) (*Event, error) {
	for {
		select {
		case ev := <-c.events:
			if ev.Event == "message" && (filter == "" || ev.Filter == filter) {
				return &ev, nil
			}
			if keep != nil {
				*keep = append(*keep, ev)
			}
		case <-c.done:
			return nil, fmt.Errorf("refnode exited: %v", c.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close asks the node to quit, then kills it after a short grace period.
func (c *Client) Close() error {
	c.wmu.Lock()
	c.stdin.Write([]byte(`{"cmd":"quit"}` + "\n"))
	c.stdin.Close()
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		c.cmd.Process.Kill()
	}
	werr := make(chan error, 1)
	go func() { werr <- c.cmd.Wait() }()
	select {
	case err := <-werr:
		return err
	case <-time.After(3 * time.Second):
		c.cmd.Process.Kill()
		return <-werr
	}
}

func toMap(v interface{}) map[string]interface{} {
	b, _ := json.Marshal(v)
	m := map[string]interface{}{}
	json.Unmarshal(b, &m)
	return m
}
