package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// dialEnv, when set, makes the test binary a client that connects to the
// socket it names and reports "refused" or "served" (see
// TestUnixRefusesAnotherUser).
const dialEnv = "STRATA_API_TEST_DIAL"

func TestMain(m *testing.M) {
	if sock := os.Getenv(dialEnv); sock != "" {
		fmt.Println(probe(sock))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe connects to the socket and says whether the server kept the
// connection (a gRPC server sends its settings at once) or closed it.
func probe(sock string) string {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return "cannot connect: " + err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	switch {
	case n > 0:
		return "served"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return "refused"
	default:
		return "no answer: " + fmt.Sprint(err)
	}
}

// stub answers Node and Subscribe, so that a call that gets past the
// server's checks shows it.
type stub struct {
	appv1.UnimplementedMessagingServer
}

func (stub) Node(context.Context, *appv1.NodeRequest) (*appv1.NodeResponse, error) {
	return &appv1.NodeResponse{Name: "stub"}, nil
}

func (stub) Subscribe(_ *appv1.SubscribeRequest, s grpc.ServerStreamingServer[appv1.Message]) error {
	return s.Send(&appv1.Message{Payload: []byte("hello")})
}

// hostDir makes a node's <data_dir>/host, as the node does (mode 0700).
func hostDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// call makes a Node call and a Subscribe call on conn and returns their
// errors.
func call(t *testing.T, conn *grpc.ClientConn, ctx context.Context) (nodeErr, streamErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := appv1.NewMessagingClient(conn)
	resp, nodeErr := c.Node(ctx, &appv1.NodeRequest{})
	if nodeErr == nil && resp.GetName() != "stub" {
		t.Fatalf("Node answered %v", resp)
	}
	stream, err := c.Subscribe(ctx, &appv1.SubscribeRequest{})
	if err != nil {
		return nodeErr, err
	}
	m, streamErr := stream.Recv()
	if streamErr == nil && string(m.GetPayload()) != "hello" {
		t.Fatalf("Subscribe sent %v", m)
	}
	return nodeErr, streamErr
}

// TestTCPNeedsToken: on TCP, a call without the token, or with another
// one, is refused (unary and streaming); Dial reads the token from the
// file the server wrote (mode 0600) and gets through; Close removes it.
func TestTCPNeedsToken(t *testing.T) {
	tokenFile := filepath.Join(hostDir(t), TokenFileName)
	srv, err := listen(stub{}, "tcp", "127.0.0.1:0", Options{TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %04o, want 0600", perm)
	}
	token, err := ReadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	bare, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	for name, ctx := range map[string]context.Context{
		"no token":        t.Context(),
		"another token":   metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+strings.Repeat("0", len(token))),
		"no Bearer":       metadata.AppendToOutgoingContext(t.Context(), "authorization", token),
		"a token too few": metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token[:len(token)-1]),
	} {
		nodeErr, streamErr := call(t, bare, ctx)
		if status.Code(nodeErr) != codes.Unauthenticated || status.Code(streamErr) != codes.Unauthenticated {
			t.Errorf("%s: Node %v, Subscribe %v; want both Unauthenticated", name, nodeErr, streamErr)
		}
		if strings.Contains(fmt.Sprint(nodeErr), token) {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
	// The right token, sent by hand as an application would.
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	if nodeErr, streamErr := call(t, bare, ctx); nodeErr != nil || streamErr != nil {
		t.Errorf("with the token: Node %v, Subscribe %v", nodeErr, streamErr)
	}

	conn, err := Dial(srv.Addr(), tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if nodeErr, streamErr := call(t, conn, t.Context()); nodeErr != nil || streamErr != nil {
		t.Errorf("through Dial: Node %v, Subscribe %v", nodeErr, streamErr)
	}

	srv.Close()
	if _, err := os.Stat(tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file after Close: %v", err)
	}
}

// TestTokenIsNewAtEachStart: a server writes a new token over the one of
// an earlier run, and the old one no longer gets in.
func TestTokenIsNewAtEachStart(t *testing.T) {
	tokenFile := filepath.Join(hostDir(t), TokenFileName)
	first, err := listen(stub{}, "tcp", "127.0.0.1:0", Options{TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	old, err := ReadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	first.grp.Stop() // a crash: the token file stays
	srv, err := listen(stub{}, "tcp", "127.0.0.1:0", Options{TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	token, err := ReadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if token == old {
		t.Fatal("the second run wrote the first run's token")
	}
	bare, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+old)
	if nodeErr, _ := call(t, bare, ctx); status.Code(nodeErr) != codes.Unauthenticated {
		t.Errorf("the earlier run's token: %v, want Unauthenticated", nodeErr)
	}
}

// TestReadTokenRefuses: the client does not use a token file that others
// could read or write, that is a link, or that holds no token.
func TestReadTokenRefuses(t *testing.T) {
	dir := hostDir(t)
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(strings.Repeat("ab", tokenBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(good); err != nil {
		t.Fatalf("a good token file: %v", err)
	}
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		path, want string
	}{
		"readable by others": {write("world", strings.Repeat("ab", tokenBytes), 0o644), "mode 0644"},
		"readable by group":  {write("group", strings.Repeat("ab", tokenBytes), 0o640), "mode 0640"},
		"a symbolic link":    {link, "api token"},
		"not hex":            {write("nothex", strings.Repeat("zz", tokenBytes), 0o600), "not a token"},
		"too short":          {write("short", "abcd", 0o600), "not a token"},
		"a directory":        {dir, "not a regular file"},
	}
	if os.Getuid() == 0 {
		other := write("other", strings.Repeat("ab", tokenBytes), 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests["owned by another user"] = struct{ path, want string }{other, "another user"}
	}
	for name, tt := range tests {
		if _, err := ReadToken(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ReadToken = %v, want an error with %q", name, err, tt.want)
		}
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoToken) {
		t.Errorf("a missing token file: %v, want ErrNoToken", err)
	}
}

// TestDialRefuses: Dial sends no token off this machine and needs one on
// TCP.
func TestDialRefuses(t *testing.T) {
	tokenFile := filepath.Join(hostDir(t), TokenFileName)
	if err := os.WriteFile(tokenFile, []byte(strings.Repeat("ab", tokenBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"192.0.2.1:7400":        "not a loopback address",
		"example.com:7400":      "not a loopback address",
		"127.0.0.1":             "not unix:<path> or host:port",
		"unix:/nonexistent/x":   "no node API",
		"unix:" + tokenFile:     "not a socket",
		"127.0.0.1:7400 (none)": "",
	} {
		file := tokenFile
		if strings.HasSuffix(target, " (none)") {
			target, file, want = strings.TrimSuffix(target, " (none)"), "", "needs the node's token"
		}
		if _, err := Dial(target, file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Dial(%q) = %v, want an error with %q", target, err, want)
		}
	}
}

// TestUnixSocket: the socket has no access for group or others, and a
// client of the same user gets through.
func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(hostDir(t), "api.sock")
	srv, err := listen(stub{}, "unix", sock, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("socket mode %04o: group or others have access", perm)
	}
	conn, err := Dial(srv.Addr(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if nodeErr, streamErr := call(t, conn, t.Context()); nodeErr != nil || streamErr != nil {
		t.Errorf("Node %v, Subscribe %v", nodeErr, streamErr)
	}
	// A second server on the same socket is refused; the first goes on.
	if _, err := listen(stub{}, "unix", sock, Options{}); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Errorf("a second server on the socket: %v", err)
	}
}

// TestUnixSocketDirectory: the socket's directory must be this user's and
// not writable by group or others, where someone else could replace the
// socket.
func TestUnixSocketDirectory(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o1777} {
		dir := filepath.Join(t.TempDir(), "sockets")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := listen(stub{}, "unix", filepath.Join(dir, "api.sock"), Options{})
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("a socket directory of mode %v: %v, want it refused", mode, err)
		}
	}
	if os.Getuid() == 0 {
		dir := filepath.Join(t.TempDir(), "theirs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := listen(stub{}, "unix", filepath.Join(dir, "api.sock"), Options{}); err == nil || !strings.Contains(err.Error(), "another user") {
			t.Errorf("a socket directory of another user: %v, want it refused", err)
		}
	}
}

// TestPeerListenerRefusesOtherUIDs: a connection whose peer credentials
// name another user is closed unanswered; one of the listener's user is
// accepted. (The peer credentials are read from the kernel; the "other
// user" is the listener expecting one that is not the client's.)
func TestPeerListenerRefusesOtherUIDs(t *testing.T) {
	sock := filepath.Join(hostDir(t), "api.sock")
	lis, err := listenUnix(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	pl := lis.(*peerListener)
	pl.uid = os.Getuid() + 1
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := pl.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection from a user the listener does not serve: read %d, %v; want it closed", n, err)
	}
	select {
	case <-accepted:
		t.Fatal("Accept returned the connection of another user")
	default:
	}
	lis.Close()

	// The listener's own user gets in.
	sock2 := filepath.Join(hostDir(t), "api.sock")
	lis2, err := listenUnix(sock2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lis2.Close()
	go func() {
		if c, err := lis2.Accept(); err == nil {
			accepted <- c
		}
	}()
	c2, err := net.Dial("unix", sock2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	select {
	case s := <-accepted:
		s.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the listener's own user was not accepted")
	}
}

// TestUnixRefusesAnotherUser: a process of another user that can reach
// the socket (its mode opened on purpose here) is refused by its peer
// credentials, while the server goes on serving its own user. Needs root,
// to run the client as nobody.
func TestUnixRefusesAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// A directory nobody can enter, with a copy of this test binary.
	dir, err := os.MkdirTemp("", "strata-api-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	srv, err := listen(stub{}, "unix", sock, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	run := func(uid uint32) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{dialEnv + "=" + sock}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// The mode alone keeps nobody out ...
	if got := run(65534); !strings.HasPrefix(got, "cannot connect") {
		t.Errorf("nobody on the socket as created: %s, want no connection (mode)", got)
	}
	// ... and with the mode open, the peer credentials do.
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := run(65534); got != "refused" {
		t.Errorf("nobody on a socket open to all: %s, want refused", got)
	}
	if got := run(0); got != "served" {
		t.Errorf("the server's own user: %s, want served", got)
	}
}
