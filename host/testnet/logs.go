package testnet

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailSize is how much of a host's output a Member keeps in memory for
// error messages.
const tailSize = 64 << 10

// tailLines is how many lines of a host's output error messages quote.
const tailLines = 30

// tail keeps the last tailSize bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// lines returns the last n lines, without a trailing newline.
func (t *tail) lines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.buf), "\n")
	if s == "" {
		return ""
	}
	all := strings.Split(s, "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}

// prefixWriter writes whole lines to a shared writer, each prefixed with
// the node's name, under a lock the nodes of a Net share: the caller's
// writer sees the nodes' lines interleaved but never torn.
type prefixWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	prefix  []byte
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.emit(p.partial[:i+1])
		p.partial = p.partial[i+1:]
	}
	if len(p.partial) == 0 {
		p.partial = nil
	}
	return n, nil
}

// flush writes a last line that has no newline.
func (p *prefixWriter) flush() {
	if len(p.partial) > 0 {
		p.emit(append(p.partial, '\n'))
		p.partial = nil
	}
}

func (p *prefixWriter) emit(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.w.Write(append(append([]byte{}, p.prefix...), line...)) // a failing log writer must not stop the node
}
