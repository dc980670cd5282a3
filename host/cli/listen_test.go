package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// goawayConn is the server's side of an API connection that closes
// goaway once it has written an HTTP/2 GOAWAY frame (type 7).
type goawayConn struct {
	net.Conn
	goaway func()
	mu     sync.Mutex
	out    []byte // written bytes not yet parsed as whole frames
}

func (c *goawayConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, p[:n]...)
	for len(c.out) >= 9 {
		size := int(c.out[0])<<16 | int(c.out[1])<<8 | int(c.out[2])
		if len(c.out) < 9+size {
			break
		}
		if c.out[3] == 7 {
			c.goaway()
		}
		c.out = c.out[9+size:]
	}
	return n, err
}

// goawayListener hands out goawayConns.
type goawayListener struct {
	net.Listener
	goaway func()
}

func (l goawayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &goawayConn{Conn: c, goaway: l.goaway}, nil
}

// stoppingStub is a node that stops while it answers listen's last call
// before Subscribe: it answers Contacts only once it has told the client
// it is going away, so that listen's Subscribe finds no node to call.
type stoppingStub struct {
	appv1.UnimplementedMessagingServer
	stop       func()        // stops the server, gracefully
	goneAway   chan struct{} // closed once a GOAWAY frame was written
	subscribes atomic.Int32
}

func (s *stoppingStub) Node(context.Context, *appv1.NodeRequest) (*appv1.NodeResponse, error) {
	return &appv1.NodeResponse{Name: "alice", Identity: stubSelf}, nil
}

func (s *stoppingStub) Contacts(ctx context.Context, _ *appv1.ContactsRequest) (*appv1.ContactsResponse, error) {
	go s.stop()
	select {
	case <-s.goneAway:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &appv1.ContactsResponse{}, nil
}

func (s *stoppingStub) Subscribe(*appv1.SubscribeRequest, grpc.ServerStreamingServer[appv1.Message]) error {
	s.subscribes.Add(1)
	return status.Error(codes.Unavailable, "stopping")
}

// TestListenNodeStoppedBeforeSubscribe: a node that answered listen's
// first calls and stopped before its Subscribe is reported as stopped
// ("node stopped", exit 0), not as an error. The node here says GOAWAY
// before its last answer and closes its socket, so that Subscribe, the
// next call, cannot reach it.
func TestListenNodeStoppedBeforeSubscribe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	stub := &stoppingStub{stop: g.GracefulStop, goneAway: make(chan struct{})}
	var once sync.Once
	appv1.RegisterMessagingServer(g, stub)
	go g.Serve(goawayListener{Listener: lis, goaway: func() { once.Do(func() { close(stub.goneAway) }) }})
	t.Cleanup(g.Stop)

	var out, errs bytes.Buffer
	root := NewRoot(Env{Stdout: &out, Stderr: &errs})
	root.SetArgs([]string{"listen", "--api", "unix:" + sock})
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("listen: %v\nstderr: %s", err, errs.String())
	}
	if !strings.Contains(errs.String(), "node stopped") {
		t.Fatalf("listen's stderr is %q, want \"node stopped\"", errs.String())
	}
	if n := stub.subscribes.Load(); n != 0 {
		t.Fatalf("Subscribe reached the stopping node %d times; the test meant it to find no node", n)
	}
}
