package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
)

// shardSize is the most stacks a run holds in one process, and
// shardStacks how many one process of a sharded run holds. Every SQLite
// database of a process shares modernc's allocator lock and SQLite's
// static mutexes, and every stack shares its garbage collector: at 200
// stacks in one process both stalled the run, and at 50 a process's 150
// databases still queued on those mutexes long enough for a Send to miss
// its deadline (docs/plugins/mls.md). A user's node runs each layer in a
// process of its own, with one database each.
const (
	shardSize   = 50
	shardStacks = 25
)

// shardEnv names the environment variable that makes TestMLSGroupShard a
// shard of a run: "dir,shard,shards,size".
const shardEnv = "STRATA_MLS_SHARD"

// runSharded runs a group of size members through the host as
// ceil(size/shardStacks) processes of this test binary (TestMLSGroupShard),
// each holding its share of the stacks. The processes meet in a
// directory: each writes its nodes' cards, adds every other node as a
// contact, waits until its hosts know the conversation (the first node's
// host is given it; the others learn it), posts two messages from each
// of its nodes, writes their ids, and waits until each of its nodes holds
// every message of every process. A process stays up until every process
// is done, so that none leaves while another still needs its
// retransmissions.
func runSharded(t *testing.T, size int) {
	dir := t.TempDir()
	shards := (size + shardStacks - 1) / shardStacks
	start := time.Now()
	var cmds []*exec.Cmd
	done := make(chan error, shards)
	for i := range shards {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMLSGroupShard$", "-test.v", "-test.timeout", "80m")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d,%d", shardEnv, dir, i, shards, size))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				// libp2p's QUIC logs about buffer sizes and interfaces
				// are noise here.
				if strings.Contains(line, "level=") && !strings.Contains(line, "strata") {
					continue
				}
				t.Logf("shard %d: %s", i, line)
			}
			done <- cmd.Wait()
		}()
	}
	for range shards {
		if err := <-done; err != nil {
			for _, c := range cmds {
				c.Process.Kill()
			}
			t.Fatalf("a shard failed: %v", err)
		}
	}
	t.Logf("a group of %d in %d processes: every message reached every member in %v in all",
		size, shards, time.Since(start).Round(time.Second))
}

// TestMLSGroupShard is one process of runSharded; without STRATA_MLS_SHARD
// it is skipped.
func TestMLSGroupShard(t *testing.T) {
	spec := os.Getenv(shardEnv)
	if spec == "" {
		t.Skip("one process of a sharded run (runSharded)")
	}
	parts := strings.Split(spec, ",")
	if len(parts) != 4 {
		t.Fatalf("%s=%q: want dir,shard,shards,size", shardEnv, spec)
	}
	dir := parts[0]
	shard, err1 := strconv.Atoi(parts[1])
	shards, err2 := strconv.Atoi(parts[2])
	size, err3 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("%s=%q: want dir,shard,shards,size", shardEnv, spec)
	}
	first, last := shard*size/shards, (shard+1)*size/shards
	start := time.Now()
	var nodes []*fullNode
	for i := first; i < last; i++ {
		nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("s%d", i), "", largeGroup(size)))
	}
	logOnFailure(t, nodes...)
	stop := make(chan struct{})
	defer close(stop)
	go progress(t, nodes, start, stop)
	if dir := os.Getenv("STRATA_MLS_PROFILE_DIR"); dir != "" {
		go heapProfiles(t, dir, start, stop)
	}
	t.Logf("%d stacks started in %v", len(nodes), time.Since(start).Round(time.Millisecond))

	// Cards: one line per node, "identity-hex card-text".
	var lines []string
	for _, n := range nodes {
		lines = append(lines, hex.EncodeToString(n.Identity())+" "+n.CardText())
	}
	writeShardFile(t, dir, "cards", shard, lines)
	all := readShardFiles(t, dir, "cards", shards, 10*time.Minute)
	var cards []string
	var members []ed25519.PublicKey
	for _, l := range all {
		idHex, card, ok := strings.Cut(l, " ")
		id, err := hex.DecodeString(idHex)
		if !ok || err != nil {
			t.Fatalf("bad card line %q", l)
		}
		members = append(members, ed25519.PublicKey(id))
		cards = append(cards, card)
	}
	if len(members) != size {
		t.Fatalf("%d cards, want %d", len(members), size)
	}

	ctx := context.Background()
	phase := time.Now()
	errs := make(chan error, len(nodes))
	for _, a := range nodes {
		go func() {
			for j, card := range cards {
				if slices.Equal(members[j], a.Identity()) {
					continue
				}
				// 200 stacks on two CPUs: a layer's call can miss the
				// host's 30 s deadline while every node adds its 199
				// contacts. Adding a card again is harmless, so a call
				// that timed out is made again, at most twice.
				for try := 0; ; try++ {
					_, err := a.AddContact(ctx, card)
					if err == nil {
						break
					}
					late := status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
					if try == 2 || !late {
						errs <- fmt.Errorf("%s adds a contact: %w", a.Name(), err)
						return
					}
					t.Logf("%s adds a contact again: %v", a.Name(), err)
				}
			}
			errs <- nil
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d contacts added in %v", len(nodes)*(size-1), time.Since(phase).Round(time.Millisecond))
	waitMeshed(t, nodes, size-1)
	writeShardFile(t, dir, "connected", shard, nil)
	readShardFiles(t, dir, "connected", shards, 10*time.Minute)
	t.Logf("every node connected to every other after %v", time.Since(start).Round(time.Millisecond))

	// One user makes the group, as in an application: the first node's
	// host is given the conversation, and every other member's host
	// learns it from the group (its mls layer's Welcome, or the
	// announcement). Giving it to every host would have each announce it
	// to the group: 200 group messages that every member opens and
	// acknowledges to the group before anyone has posted.
	conv := []byte(fmt.Sprintf("mls group of %d", size))
	if shard == 0 {
		slowest := giveConversation(t, nodes[:1], conv, members)
		t.Logf("conversation given to %s after %v (%v)", nodes[0].Name(), time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond))
	}
	waitConversation(t, nodes, conv, size, 10*time.Minute)
	t.Logf("every host of this process knows the conversation after %v", time.Since(start).Round(time.Millisecond))

	phase = time.Now()
	var sentLines []string
	for r := range 2 {
		for _, n := range nodes {
			m, err := n.Send(ctx, conv, []byte(fmt.Sprintf("%s round %d", n.Name(), r)), node.SendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sentLines = append(sentLines, hex.EncodeToString(m.MessageID)+" "+hex.EncodeToString(n.Identity()))
		}
	}
	writeShardFile(t, dir, "sent", shard, sentLines)
	type want struct{ id, author []byte }
	var wants []want
	for _, l := range readShardFiles(t, dir, "sent", shards, 30*time.Minute) {
		a, b, _ := strings.Cut(l, " ")
		id, err1 := hex.DecodeString(a)
		author, err2 := hex.DecodeString(b)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad sent line %q", l)
		}
		wants = append(wants, want{id: id, author: author})
	}
	if len(wants) != 2*size {
		t.Fatalf("%d messages sent, want %d", len(wants), 2*size)
	}
	deadline := time.Now().Add(time.Duration(10*size) * time.Second)
	for _, n := range nodes {
		for {
			hist, err := n.History(ctx, nil, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]int{}
			for _, m := range hist {
				have[string(m.MessageID)]++
			}
			missing := 0
			n.mu.Lock()
			for _, w := range wants {
				own := slices.Equal(w.author, n.Identity())
				if have[string(w.id)] == 0 || (!own && n.got[string(w.id)] == 0) {
					missing++
				}
				if have[string(w.id)] > 1 || n.got[string(w.id)] > 1 {
					n.mu.Unlock()
					t.Fatalf("%s: message %x twice", n.Name(), w.id[:8])
				}
			}
			n.mu.Unlock()
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages missing", n.Name(), missing, len(wants))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("the %d messages reached every member of this process %v after its first post (%v in all)",
		len(wants), time.Since(phase).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	logMLSCounters(t, nodes)
	writeShardFile(t, dir, "done", shard, nil)
	readShardFiles(t, dir, "done", shards, 30*time.Minute)
}

// waitConversation waits until every node's host holds the conversation
// with size members.
func waitConversation(t *testing.T, nodes []*fullNode, conv []byte, size int, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	next := start.Add(30 * time.Second)
	for i, n := range nodes {
		for {
			convs, err := n.Conversations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			known := slices.ContainsFunc(convs, func(c *conversations.Conversation) bool {
				return bytes.Equal(c.ID, conv) && len(c.Members) == size
			})
			if known {
				break
			}
			if time.Now().After(start.Add(timeout)) {
				t.Fatalf("%s does not know the conversation after %v", n.Name(), timeout)
			}
			if time.Now().After(next) {
				t.Logf("learning the conversation for %v: %s does not know it yet (%d of %d before it do)", time.Since(start).Round(time.Second), n.Name(), i, len(nodes))
				next = time.Now().Add(30 * time.Second)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// writeShardFile writes lines to dir/<name>-<shard>, whole or not at all.
func writeShardFile(t *testing.T, dir, name string, shard int, lines []string) {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d", name, shard))
	text := strings.Join(lines, "\n")
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// readShardFiles waits for dir/<name>-<k> of every shard and returns
// their lines.
func readShardFiles(t *testing.T, dir, name string, shards int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out []string
	for k := range shards {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d", name, k))
		for {
			b, err := os.ReadFile(path)
			if err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if l != "" {
						out = append(out, l)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s from shard %d after %v", name, k, timeout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return out
}

// heapProfiles writes a heap profile to dir every 20 s until stop is
// closed (heap-<process id>-<seconds since start>.pprof): where the memory
// of a run that outgrows the machine goes.
func heapProfiles(t *testing.T, dir string, start time.Time, stop <-chan struct{}) {
	tk := time.NewTicker(20 * time.Second)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%d-%04d.pprof", os.Getpid(), int(time.Since(start).Seconds()))))
		if err != nil {
			t.Logf("heap profile: %v", err)
			return
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Logf("heap profile: %v", err)
		}
		f.Close()
	}
}
