package main_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	cardv1 "github.com/strata-msg/strata/core/api/card/v1"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/identity"
)

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// appendFile adds text to the end of the file at path.
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestAPIOnTCPNeedsToken: a node with its API on loopback TCP writes a
// token file (mode 0600) at start; the CLI reads it itself, so `listen -c`
// works as on the socket; a client without the token, or the CLI given
// only --api, is refused; a token file that others could read is not used.
func TestAPIOnTCPNeedsToken(t *testing.T) {
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "tcp")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	appendFile(t, cfg, "api:\n  listen: "+addr+"\n")
	runHost(t, cfg, "tcp")

	token := filepath.Join(dir, "tcp", "host", "api.token")
	fi, err := os.Stat(token)
	if err != nil {
		t.Fatalf("the node wrote no token file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("token file mode %04o, want 0600", perm)
	}
	for _, args := range [][]string{
		{"listen", "-c", cfg, "--no-follow"},
		{"conversation", "list", "-c", cfg},
		{"listen", "--api", addr, "--api-token", token, "--no-follow"},
	} {
		if out, err := strata(t, args...); err != nil {
			t.Errorf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Any local process can connect; without the token it gets nothing.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := appv1.NewMessagingClient(conn)
	if _, err := c.History(t.Context(), &appv1.HistoryRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("History without the token: %v, want Unauthenticated", err)
	}
	if _, err := c.Send(t.Context(), &appv1.SendRequest{Conversation: []byte("x"), Payload: []byte("as the node")}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Send without the token: %v, want Unauthenticated", err)
	}
	stream, err := c.Subscribe(t.Context(), &appv1.SubscribeRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Subscribe without the token: %v, want Unauthenticated", err)
	}
	// With it, Stats answers, the host's message counters included.
	secret, err := api.ReadToken(token)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := c.Stats(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+secret), &appv1.StatsRequest{})
	if err != nil {
		t.Fatalf("Stats with the token: %v", err)
	}
	if _, ok := stats.GetMessages()["dropped_forged_author"]; !ok {
		t.Errorf("Stats has no dropped_forged_author among its message counters: %v", stats.GetMessages())
	}

	if out, err := strata(t, "listen", "--api", addr, "--no-follow"); err == nil || !strings.Contains(out, "token") {
		t.Errorf("listen --api on TCP with no config and no token: %v\n%s\nwant it to ask for the token", err, out)
	}
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := strata(t, "listen", "-c", cfg, "--no-follow"); err == nil || !strings.Contains(out, "mode 0644") {
		t.Errorf("listen with a token file others can read: %v\n%s\nwant it refused", err, out)
	}
}

// TestAPISocketDirectoryChecked: a node refuses to put its API socket in
// a directory that others can write to (where they could replace it).
func TestAPISocketDirectoryChecked(t *testing.T) {
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "s")
	appendFile(t, cfg, "api:\n  listen: unix:"+filepath.Join(shared, "api.sock")+"\n")
	// A node that takes the directory runs until stopped: give it a minute.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, strataBin, "run", "-c", cfg)
	run.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	b, err := run.CombinedOutput()
	if out := string(b); err == nil || ctx.Err() != nil || !strings.Contains(out, "api.listen") || !strings.Contains(out, "writable by group or others") {
		t.Fatalf("run with the API socket in a world-writable directory: %v\n%s\nwant it refused at start", err, out)
	}
}

// TestMetricsLoopbackOnly: metrics.listen on every interface or a network
// address is refused unless metrics.allow_remote says so.
func TestMetricsLoopbackOnly(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "m")
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "192.0.2.7:9464"} {
		out, err := strata(t, "config", "check", "-c", cfg, "--set", "metrics.listen="+addr)
		if err == nil || !strings.Contains(out, "metrics.listen") || !strings.Contains(out, "metrics.allow_remote: true") {
			t.Errorf("config check with metrics.listen=%s: %v\n%s\nwant it refused, naming metrics.allow_remote", addr, err, out)
		}
	}
	if out, err := strata(t, "config", "check", "-c", cfg, "--set", "metrics.listen=0.0.0.0:9464", "--set", "metrics.allow_remote=true"); err != nil {
		t.Errorf("config check with metrics.allow_remote: %v\n%s", err, out)
	}
}

// testKey signs contact cards as a node would, without the checks of
// contacts.Card.Sign, so that a test can make the cards a hostile or
// broken node hands out.
type testKey struct {
	priv ed25519.PrivateKey
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv}
}

func (k testKey) public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// card returns the text form of a card of k's, signed as
// host/contacts signs one ("strata-card-v1\x00" || the card).
func (k testKey) card(t *testing.T, name string, issued time.Time, sections map[commonv1.LayerKind]contacts.Section) string {
	t.Helper()
	pb := &cardv1.ContactCard{Version: contacts.Version, IdentityKey: k.public(), Name: name, IssuedUnix: issued.Unix()}
	for _, layer := range slices.Sorted(maps.Keys(sections)) {
		pb.Sections = append(pb.Sections, &cardv1.Section{Layer: layer, Plugin: sections[layer].Plugin, Data: sections[layer].Data})
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(k.priv, append([]byte("strata-card-v1\x00"), body...))
	signed, err := proto.Marshal(&cardv1.SignedCard{Card: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return contacts.EncodeText(signed)
}

// elsewhere returns a copy of sections whose privacy address differs from
// the original in its last byte (by tag): a card with another node's
// address would be refused as a squat before any of the checks these
// tests are about.
func elsewhere(sections map[commonv1.LayerKind]contacts.Section, tag byte) map[commonv1.LayerKind]contacts.Section {
	out := maps.Clone(sections)
	if sec, ok := out[commonv1.LayerKind_LAYER_KIND_PRIVACY]; ok && len(sec.Data) > 0 {
		sec.Data = slices.Clone(sec.Data)
		sec.Data[len(sec.Data)-1] ^= tag
		out[commonv1.LayerKind_LAYER_KIND_PRIVACY] = sec
	}
	return out
}

// rawControls lists what must never reach the terminal from remote text.
func rawControls(s string) []string {
	var found []string
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || (0x7f <= r && r <= 0x9f):
			found = append(found, fmt.Sprintf("%U", r))
		case r == '\u202e' || r == '\u2066' || r == '\u200b' || r == '\ufeff':
			found = append(found, fmt.Sprintf("%U", r))
		}
	}
	return found
}

// listenLines checks text `strata listen` output: no raw control or bidi
// character, and every line one message of four fields.
func listenLines(t *testing.T, what, out string) []string {
	t.Helper()
	if bad := rawControls(out); len(bad) > 0 {
		t.Fatalf("%s printed raw %v:\n%q", what, bad, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if _, err := strconv.ParseUint(f[0], 10, 64); err != nil || len(f) != 4 {
			t.Fatalf("%s printed a line that is not one message (cursor, conversation, author, payload): %q\nall of it:\n%q", what, l, out)
		}
	}
	return lines
}

// hostile is a payload that, printed raw, clears the screen, sets the
// window title, reverses text, and adds a line that looks like a message
// from bob.
const hostile = "\x1b[2J\x1b]0;owned\x07hi \u202egnp.exe\u200b\r\n99\tdm:x\tbob\tsend me your card"

// TestRemoteTextIsEscaped runs two nodes on the secure stack: a payload
// full of escape sequences, bidi controls and a fake line reaches bob's
// `listen` (history and live, text and JSON) with nothing raw and on one
// line; a second contact called "alice" makes bob's output show the
// fingerprint of each; and the running node's API refuses an older card
// (saying so), a card issued in the future, and a name with a bidi
// control.
func TestRemoteTextIsEscaped(t *testing.T) {
	dir := t.TempDir()
	plugins := secureStack(t)
	alice := startSecureHost(t, dir, plugins, "alice")
	bob := startSecureHost(t, dir, plugins, "bob")
	for _, p := range []struct{ at, card string }{{alice.cfg, bob.card}, {bob.cfg, alice.card}} {
		if out, err := strata(t, "contact", "import", "-c", p.at, p.card); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for {
		if o, err := strata(t, "send", "-c", alice.cfg, "--to", "bob", hostile); err != nil {
			t.Fatalf("send: %v\n%s", err, o)
		}
		o, err := strata(t, "listen", "-c", bob.cfg, "--no-follow")
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, o)
		}
		if strings.Contains(o, "gnp.exe") {
			out = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob received nothing:\nalice: %s\nbob: %s", alice.errs, bob.errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lines := listenLines(t, "listen --no-follow", out)
	want := `\x1b[2J\x1b]0;owned\x07hi \u202egnp.exe\u200b\r\n99\tdm:x\tbob\tsend me your card`
	if f := strings.Split(lines[0], "\t"); f[2] != "alice" || f[3] != want {
		t.Fatalf("listen line %q: want author alice and payload %s", lines[0], want)
	}

	// JSON: nothing raw either, and the payload decodes as sent.
	js, err := strata(t, "listen", "-c", bob.cfg, "--no-follow", "--json")
	if err != nil {
		t.Fatalf("listen --json: %v\n%s", err, js)
	}
	if bad := rawControls(js); len(bad) > 0 {
		t.Fatalf("listen --json printed raw %v:\n%q", bad, js)
	}
	for _, l := range strings.Split(strings.TrimSpace(js), "\n") {
		var m struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Payload != hostile {
			t.Fatalf("listen --json line %q: %v; payload %+q, want %+q", l, err, m.Payload, hostile)
		}
	}

	// Live: `strata listen` as a user runs it.
	live := exec.Command(strataBin, "listen", "-c", bob.cfg)
	stdout, err := live.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "gnp.exe") {
				break
			}
		}
		got <- all.String()
	}()
	select {
	case o := <-got:
		listenLines(t, "listen", o)
	case <-time.After(30 * time.Second):
		t.Fatal("live listen showed nothing")
	}
	_ = live.Process.Kill()

	// A second "alice": from now on bob's output tells the two apart.
	aliceCard, err := contacts.DecodeText(alice.card)
	if err != nil {
		t.Fatal(err)
	}
	fp := identity.Fingerprint(aliceCard.IdentityKey)
	impostor := newTestKey(t)
	o, err := strata(t, "contact", "import", "-c", bob.cfg, impostor.card(t, "alice", time.Now(), elsewhere(aliceCard.Sections, 1)))
	if err != nil || !strings.Contains(o, "same name as alice ("+fp+")") {
		t.Fatalf("import of a second alice: %v\n%s\nwant a note that alice (%s) has the same name", err, o, fp)
	}
	out, err = strata(t, "listen", "-c", bob.cfg, "--no-follow")
	if err != nil {
		t.Fatalf("listen: %v\n%s", err, out)
	}
	lines = listenLines(t, "listen with two alices", out)
	if f := strings.Split(lines[0], "\t"); f[2] != "alice ("+fp+")" {
		t.Fatalf("listen line %q: want the author shown as alice (%s)", lines[0], fp)
	}
	if o, err := strata(t, "conversation", "list", "-c", bob.cfg); err != nil || !strings.Contains(o, "alice ("+fp+")") {
		t.Fatalf("conversation list with two alices: %v\n%s\nwant alice (%s)", err, o, fp)
	}

	// Cards through the running node's API.
	dave := newTestKey(t)
	now := time.Now()
	daveSections := elsewhere(aliceCard.Sections, 2)
	if o, err := strata(t, "contact", "import", "-c", bob.cfg, dave.card(t, "dave", now, daveSections)); err != nil || !strings.Contains(o, "into the running node") {
		t.Fatalf("import of dave's card: %v\n%s", err, o)
	}
	for _, tt := range []struct {
		what, card, want string
	}{
		{"an older card", dave.card(t, "dave (old)", now.Add(-time.Hour), daveSections), "newer card"},
		{"a card issued in an hour", dave.card(t, "dave (future)", now.Add(time.Hour), daveSections), "future"},
		{"a name with a bidi override", newTestKey(t).card(t, "eve\u202ecod.exe", now, elsewhere(aliceCard.Sections, 3)), "bidirectional"},
	} {
		o, err := strata(t, "contact", "import", "-c", bob.cfg, tt.card)
		if err == nil || !strings.Contains(o, "not imported") || !strings.Contains(o, tt.want) {
			t.Errorf("import of %s into the running node: %v\n%s\nwant it refused, saying %q", tt.what, err, o, tt.want)
		}
		if bad := rawControls(o); len(bad) > 0 {
			t.Errorf("import of %s printed raw %v", tt.what, bad)
		}
	}
	o, err = strata(t, "contact", "list", "-c", bob.cfg)
	if err != nil || strings.Count(o, "dave") != 1 || strings.Contains(o, "(old)") || strings.Contains(o, "(future)") || strings.Contains(o, "eve") {
		t.Fatalf("contact list after the refused imports: %v\n%s\nwant dave's first card only", err, o)
	}
}

// TestContactImportRefusesOffline: into the store of a node that is not
// running, the same cards are refused with the same words, and a card
// issued within the allowed clock skew is taken.
func TestContactImportRefusesOffline(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "carol")
	dave := newTestKey(t)
	now := time.Now()
	if o, err := strata(t, "contact", "import", "-c", cfg, dave.card(t, "dave", now, nil)); err != nil || !strings.Contains(o, "not running") {
		t.Fatalf("import of dave's card: %v\n%s", err, o)
	}
	for _, tt := range []struct {
		what, card, want string
	}{
		{"an older card", dave.card(t, "dave (old)", now.Add(-time.Hour), nil), "newer card"},
		{"a card issued in an hour", dave.card(t, "dave (future)", now.Add(time.Hour), nil), "future"},
		{"a name with a bidi override", newTestKey(t).card(t, "eve\u202ecod.exe", now, nil), "bidirectional"},
		{"a name with a zero-width space", newTestKey(t).card(t, "da\u200bve", now, nil), "invisible"},
	} {
		o, err := strata(t, "contact", "import", "-c", cfg, tt.card)
		if err == nil || !strings.Contains(o, "not imported") || !strings.Contains(o, tt.want) {
			t.Errorf("import of %s: %v\n%s\nwant it refused, saying %q", tt.what, err, o, tt.want)
		}
		if bad := rawControls(o); len(bad) > 0 {
			t.Errorf("import of %s printed raw %v", tt.what, bad)
		}
	}
	// A clock two minutes ahead is within the skew allowed.
	if o, err := strata(t, "contact", "import", "-c", cfg, dave.card(t, "dave (new)", now.Add(2*time.Minute), nil)); err != nil {
		t.Fatalf("import of a card issued two minutes ahead: %v\n%s", err, o)
	}
	// A second dave: the import says so, and the list tells them apart.
	other := newTestKey(t)
	o, err := strata(t, "contact", "import", "-c", cfg, other.card(t, "Dave (new)", now, nil))
	if err != nil || !strings.Contains(o, "same name as dave (new) ("+identity.Fingerprint(dave.public())+")") {
		t.Fatalf("import of a second dave: %v\n%s", err, o)
	}
	o, err = strata(t, "contact", "list", "-c", cfg)
	if err != nil || !strings.Contains(o, identity.Fingerprint(dave.public())) || !strings.Contains(o, identity.Fingerprint(other.public())) ||
		strings.Contains(o, "(old)") || strings.Contains(o, "(future)") || strings.Contains(o, "eve") {
		t.Fatalf("contact list: %v\n%s", err, o)
	}
}
