package testnet_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/testnet"
)

// startNet starts a testnet and closes it when the test ends.
func startNet(t *testing.T, opts testnet.Options) *testnet.Net {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Binary == "" {
		opts.Binary = strataBin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

// conversation creates the conversation id on every member, with the
// others.
func conversation(t *testing.T, ctx context.Context, id []byte, ms ...*testnet.Member) {
	t.Helper()
	for _, m := range ms {
		var others [][]byte
		for _, o := range ms {
			if o != m {
				others = append(others, o.Identity())
			}
		}
		if _, err := m.Client().SetConversation(ctx, &appv1.SetConversationRequest{Id: id, Members: others}); err != nil {
			t.Fatalf("%s: SetConversation: %v", m.Name, err)
		}
	}
}

// await subscribes to m's conversation and returns the first message with
// the payload want.
func await(ctx context.Context, m *testnet.Member, conv []byte, want string) (*appv1.Message, error) {
	return awaitFor(ctx, m, conv, want, 30*time.Second)
}

// awaitFor is await with a bound of d.
func awaitFor(ctx context.Context, m *testnet.Member, conv []byte, want string, d time.Duration) (*appv1.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stream, err := m.Client().Subscribe(ctx, &appv1.SubscribeRequest{Conversation: conv})
	if err != nil {
		return nil, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, errors.Join(errors.New(m.Name+" did not get "+want), err)
		}
		if string(msg.GetPayload()) == want {
			return msg, nil
		}
	}
}

// awaitAll waits until every member got the message.
func awaitAll(t *testing.T, ctx context.Context, conv []byte, want string, ms ...*testnet.Member) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = await(ctx, m, conv, want)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%v\n%s's log:\n%s", err, ms[i].Name, ms[i].LogTail(40))
		}
	}
}

func allPIDs(n *testnet.Net) []int {
	var out []int
	for _, m := range append(n.Relays(), n.Clients()...) {
		out = append(out, m.PIDs()...)
	}
	return out
}

// TestFullStack runs three clients on libp2p+none+doubleratchet+mvds: a
// message to a conversation reaches the others; a killed client leaves no
// process and comes back with its history; a host that dies on its own is
// reported; Close leaves no process.
func TestFullStack(t *testing.T) {
	ctx := context.Background()
	n := startNet(t, testnet.Options{Stack: stackFile(t, "libp2p-none-dr-mvds.yaml"), Nodes: 3, Relays: testnet.AutoRelays})
	if len(n.Relays()) != 0 || len(n.Clients()) != 3 {
		t.Fatalf("%d relays, %d clients; want 0 (privacy none) and 3", len(n.Relays()), len(n.Clients()))
	}
	n0, n1, n2 := n.Member("n0"), n.Member("n1"), n.Member("n2")
	if n0 == nil || n1 == nil || n2 == nil || n.Member("r0") != nil {
		t.Fatal("members are not n0, n1, n2")
	}
	for _, m := range n.Clients() {
		if m.Role != testnet.RoleClient || !strings.HasPrefix(m.API, "unix:"+m.Dir) || !strings.HasPrefix(m.Card(), "strata:card:") || len(m.Identity()) != 32 {
			t.Fatalf("%s: role %s API %s card %.20s identity %x", m.Name, m.Role, m.API, m.Card(), m.Identity())
		}
		if pids := m.PIDs(); len(pids) != 5 {
			t.Fatalf("%s: PIDs %v; want the host and 4 plugins", m.Name, pids)
		}
		if b, err := os.ReadFile(m.ConfigPath); err != nil || !bytes.Contains(b, []byte("name: "+m.Name)) {
			t.Fatalf("%s: config %s: %v\n%s", m.Name, m.ConfigPath, err, b)
		}
	}
	seen := allPIDs(n)

	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	cts, err := n0.Client().Contacts(ctx, &appv1.ContactsRequest{})
	if err != nil || len(cts.GetContacts()) != 2 {
		t.Fatalf("n0's contacts: %v %v", cts, err)
	}
	room := []byte("room")
	conversation(t, ctx, room, n.Clients()...)
	if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: room, Payload: []byte("hello from n0")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, room, "hello from n0", n1, n2)

	// Kill: the host and its plugins are gone; the client says so.
	before := n1.PIDs()
	exited := n1.Exited()
	if err := n1.Kill(); err != nil {
		t.Fatal(err)
	}
	if left := running(before); len(left) > 0 {
		t.Fatalf("after Kill, processes of n1 still run: %v", left)
	}
	select {
	case <-exited:
	default:
		t.Fatal("Exited is not closed after Kill")
	}
	if n1.Alive() || n1.ExitErr() != nil || n1.PIDs() != nil {
		t.Fatalf("after Kill: alive %v, ExitErr %v, PIDs %v", n1.Alive(), n1.ExitErr(), n1.PIDs())
	}
	client := n1.Client() // kept across the restart
	if _, err := client.Node(ctx, &appv1.NodeRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Node on a killed member: %v, want Unavailable", err)
	}
	// Traffic while n1 is down reaches it once it is back.
	if _, err := n2.Client().Send(ctx, &appv1.SendRequest{Conversation: room, Payload: []byte("while n1 was down")}); err != nil {
		t.Fatal(err)
	}
	id := n1.Identity()
	if err := n1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !n1.Alive() || !bytes.Equal(n1.Identity(), id) {
		t.Fatal("n1 is not back with its identity")
	}
	after := n1.PIDs()
	if len(after) != 5 || slices.Contains(before, after[0]) {
		t.Fatalf("PIDs after Start %v (before %v)", after, before)
	}
	seen = append(seen, after...)
	hist, err := client.History(ctx, &appv1.HistoryRequest{Conversation: room})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.GetMessages()) == 0 || string(hist.GetMessages()[0].GetPayload()) != "hello from n0" {
		t.Fatalf("n1's history after the restart: %v", hist.GetMessages())
	}
	awaitAll(t, ctx, room, "while n1 was down", n1)
	if err := n1.Start(ctx); err == nil {
		t.Fatal("Start of a running member succeeded")
	}

	// A host that dies on its own is reported.
	exited = n2.Exited()
	pids := n2.PIDs()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Exited not closed after the host died")
	}
	if err := n2.ExitErr(); err == nil || !strings.Contains(err.Error(), "n2") || !strings.Contains(err.Error(), "on its own") {
		t.Fatalf("ExitErr: %v", err)
	}

	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := running(append(seen, pids...)); len(left) > 0 {
		t.Fatalf("after Close, processes still run: %v", left)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n0.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(n.Dir(), "n0.log")); err != nil || !bytes.Contains(b, []byte("node started")) {
		t.Fatalf("n0.log: %v\n%s", err, b)
	}
}

// TestWhisperRelay runs the devp2p+whisper stack, whose privacy layer is
// not none: the testnet adds a relay, the clients peer with it, and a
// message goes through.
func TestWhisperRelay(t *testing.T) {
	ctx := context.Background()
	var log sdktest.SyncBuffer
	n := startNet(t, testnet.Options{Stack: stackFile(t, "devp2p-whisper-dr-mvds.yaml"), Nodes: 2, Relays: testnet.AutoRelays, Log: &log})
	relays := n.Relays()
	if len(relays) != 1 || relays[0].Name != "r0" || relays[0].Role != testnet.RoleRelay || n.Member("r0") != relays[0] {
		t.Fatalf("relays %v; want r0", relays)
	}
	r0 := relays[0]
	st, err := r0.Client().Stats(ctx, &appv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRole() != "relay" || len(st.GetLayers()) != 2 {
		t.Fatalf("r0: role %s, %d layers; want a relay with p2p and privacy", st.GetRole(), len(st.GetLayers()))
	}
	for _, c := range n.Clients() {
		b, err := os.ReadFile(c.ConfigPath)
		if err != nil || !bytes.Contains(b, []byte(r0.Card())) {
			t.Fatalf("%s's config does not list r0's card in node.peers", c.Name)
		}
	}
	if r0.LogPath() != "" || !strings.Contains(log.String(), "r0 | ") || !strings.Contains(log.String(), "n1 | ") {
		t.Fatalf("Options.Log did not get the prefixed output:\n%.2000s", log.String())
	}
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1 := n.Member("n0"), n.Member("n1")
	conv := []byte("whispered")
	conversation(t, ctx, conv, n0, n1)
	if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("psst")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, conv, "psst", n1)
	pids := allPIDs(n)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := running(pids); len(left) > 0 {
		t.Fatalf("after Close, processes still run: %v", left)
	}
}

// TestBadOptions checks that mistakes fail with an error that says what
// is wrong, and that a node that cannot start is named with its log.
func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	stack := stackFile(t, "libp2p-none-dr.yaml")
	for _, c := range []struct {
		name string
		opts testnet.Options
		want string
	}{
		{"no nodes", testnet.Options{Stack: stack, Nodes: 0, Dir: t.TempDir()}, "Nodes is 0"},
		{"missing stack", testnet.Options{Stack: filepath.Join(t.TempDir(), "nope.yaml"), Nodes: 2, Dir: t.TempDir()}, "no such file"},
		{"no stack", testnet.Options{Nodes: 2, Dir: t.TempDir()}, "no stack config"},
		{"no dir", testnet.Options{Stack: stack, Nodes: 2}, "no Dir"},
		{"relay stack", testnet.Options{Stack: stackFile(t, "libp2p-none.yaml"), Nodes: 2, Dir: t.TempDir()}, "layers.secure"},
		{"bad relays", testnet.Options{Stack: stack, Nodes: 2, Relays: -2, Dir: t.TempDir()}, "Relays is -2"},
		{"owned key", testnet.Options{Stack: stack, Nodes: 2, Dir: t.TempDir(), Set: []string{"node.name=x"}}, "node.name"},
		{"bad host key", testnet.Options{Stack: stack, Nodes: 2, Dir: t.TempDir(), Set: []string{"log.levl=debug"}}, "did you mean log.level"},
		{"bad binary", testnet.Options{Stack: stack, Nodes: 2, Dir: t.TempDir(), Binary: filepath.Join(t.TempDir(), "strata")}, "Binary"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Binary == "" {
				c.opts.Binary = strataBin
			}
			n, err := testnet.Start(ctx, c.opts)
			if err == nil {
				n.Close(ctx)
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}

	// A value only the plugin refuses: the host fails at start, and the
	// error names the node and quotes its log.
	dir := t.TempDir()
	_, err := testnet.Start(ctx, testnet.Options{Stack: stack, Nodes: 2, Dir: dir, Binary: strataBin, Set: []string{"layers.p2p.config.dht=sideways"}})
	if err == nil {
		t.Fatal("Start with a bad plugin value succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "testnet: n") || !strings.Contains(msg, "layers.p2p.config.dht") || !strings.Contains(msg, "last lines of") {
		t.Fatalf("error does not name the node and quote its log:\n%s", msg)
	}
	t.Logf("the error:\n%s", msg)
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		t.Fatalf("processes of the failed testnet still run: %s", out)
	}
}
