package cli

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/node"
)

// frameLog writes one line per frame that crosses a boundary of the node,
// and one per message delivered to the application, for timing a message
// through the stack by its trace id (docs/performance.md). It writes no
// payload: the time, the boundary, the direction, the trace id, the
// message id and the payload's length.
type frameLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

// frameLogHeader is the file's first line: the columns, tab-separated.
const frameLogHeader = "unix_ns\tboundary\tdirection\ttrace\tmessage_id\tbytes\n"

// openFrameLog creates (or truncates) path, mode 0600, and flushes what
// is written every flushEvery, so that a killed node leaves all but the
// last moment of it.
func openFrameLog(path string, flushEvery time.Duration) (*frameLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--trace-frames: %w", err)
	}
	l := &frameLog{f: f, w: bufio.NewWriterSize(f, 1<<20), stop: make(chan struct{}), done: make(chan struct{})}
	l.w.WriteString(frameLogHeader)
	go func() {
		defer close(l.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				l.w.Flush()
				l.mu.Unlock()
			}
		}
	}()
	return l, nil
}

// tap is the node's Options.Tap.
func (l *frameLog) tap(boundary string, f *commonv1.Frame) {
	dir := "down"
	if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
		dir = "up"
	}
	l.line(time.Now(), boundary, dir, f.GetTraceId(), f.GetMessageId(), len(f.GetPayload()))
}

// delivered records a message handed to the application.
func (l *frameLog) delivered(d node.Delivery) {
	l.line(time.Now(), "app", "delivered", d.TraceID, d.MessageID, len(d.Payload))
}

func (l *frameLog) line(at time.Time, boundary, dir string, trace uint64, id []byte, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := strconv.AppendInt(l.buf[:0], at.UnixNano(), 10)
	b = append(b, '\t')
	b = append(b, boundary...)
	b = append(b, '\t')
	b = append(b, dir...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, trace, 10)
	b = append(b, '\t')
	b = hex.AppendEncode(b, id)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '\n')
	l.buf = b
	l.w.Write(b)
}

// close flushes and closes the file.
func (l *frameLog) close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}
