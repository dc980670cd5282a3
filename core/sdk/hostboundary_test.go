package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/rogue"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// The tests of this file check what the host holds against a plugin
// process it does not trust: the binary that runs is the one that was
// checked, and what the plugin sends, logs and reads is bounded.

var (
	rogueOnce   sync.Once
	rogueBinary string
	rogueErr    error
)

// rogueBin builds the rogue layer once, beside the echo binary (TestMain
// removes that directory).
func rogueBin(t *testing.T) string {
	t.Helper()
	rogueOnce.Do(func() {
		rogueBinary, rogueErr = sdktest.Build(filepath.Dir(echoBinary), "github.com/strata-msg/strata/core/sdk/internal/rogue/cmd/strata-plugin-rogue", rogue.Name)
	})
	if rogueErr != nil {
		t.Fatal(rogueErr)
	}
	return rogueBinary
}

// copyFile copies src to dst with mode, through a temporary file and a
// rename, as an attacker replacing a binary would.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until the log b holds want.
func waitFor(t *testing.T, b *sdktest.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never showed %q; it holds:\n%s", want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: out})
}

// launchRogue starts the rogue layer with attack and count, opens its data
// stream into rec and starts it.
func launchRogue(t *testing.T, cfg sdk.LaunchConfig, attack string, count int, rec func(*commonv1.Batch)) (sdk.Conn, sdk.Link, *commonv1.StartResponse) {
	t.Helper()
	cfg.Path, cfg.Kind, cfg.AllowUnverified = rogueBin(t), commonv1.LayerKind_LAYER_KIND_P2P, true
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	ctx := context.Background()
	conn, err := sdk.Launch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: fmt.Sprintf(`{"attack": %q, "count": %d}`, attack, count), DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		rec = func(*commonv1.Batch) {}
	}
	link, err := conn.Open(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Start(ctx, &commonv1.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return conn, link, resp
}

// TestLaunchRunsTheHashedFile replaces the binary at its path after Launch
// has opened and hashed it, before the process starts: the process that
// runs is the file that was hashed, not the replacement.
func TestLaunchRunsTheHashedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strata-plugin-echo")
	copyFile(t, echoBinary, path, 0o755)
	sum, err := fileHash(path)
	if err != nil {
		t.Fatal(err)
	}
	replacement := rogueBin(t)
	defer sdk.SetLaunchHook(func(p string) { copyFile(t, replacement, p, 0o755) })()
	conn, err := sdk.Launch(context.Background(), sdk.LaunchConfig{Path: path, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, Checksum: sum})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	defer conn.Close()
	if now, _ := fileHash(path); bytes.Equal(now, sum) {
		t.Fatal("the hook did not replace the binary")
	}
	info, err := conn.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "echo" {
		t.Fatalf("the process that runs is %q, not the echo binary that was hashed", info.GetName())
	}
}

// TestLaunchRefusesUnsafeFiles: a binary that someone else could have
// written or replaced is not run, whatever its checksum.
func TestLaunchRefusesUnsafeFiles(t *testing.T) {
	sum, err := fileHash(echoBinary)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the binary's path
	}{
		{"group-writable plugin dir", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "plugins", "strata-plugin-echo")
			mkdir(t, filepath.Dir(p), 0o775)
			copyFile(t, echoBinary, p, 0o755)
			return p
		}},
		{"world-writable plugin dir with the sticky bit", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "plugins", "strata-plugin-echo")
			mkdir(t, filepath.Dir(p), 0o777|os.ModeSticky)
			copyFile(t, echoBinary, p, 0o755)
			return p
		}},
		{"world-writable directory above it", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "open", "plugins", "strata-plugin-echo")
			mkdir(t, filepath.Join(dir, "open"), 0o777)
			mkdir(t, filepath.Dir(p), 0o755)
			copyFile(t, echoBinary, p, 0o755)
			return p
		}},
		{"group-writable binary", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "strata-plugin-echo")
			copyFile(t, echoBinary, p, 0o775)
			return p
		}},
		{"symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "strata-plugin-echo")
			if err := os.Symlink(echoBinary, p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"fifo", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "strata-plugin-echo")
			if err := syscall.Mkfifo(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"owned by another user", func(t *testing.T, dir string) string {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file away")
			}
			p := filepath.Join(dir, "strata-plugin-echo")
			copyFile(t, echoBinary, p, 0o755)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(t, t.TempDir())
			_, err := sdk.Launch(context.Background(), sdk.LaunchConfig{Path: path, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, Checksum: sum})
			if !errors.Is(err, sdk.ErrUnsafeFile) {
				t.Fatalf("got %v, want ErrUnsafeFile", err)
			}
		})
	}
}

// TestStickyTmpAboveIsAccepted: a root-owned sticky directory that anyone
// may write (/tmp) may lie above a plugin directory, since nobody else can
// replace what we own in it.
func TestStickyTmpAboveIsAccepted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a root-owned sticky directory")
	}
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "tmp"), 0o777|os.ModeSticky)
	p := filepath.Join(dir, "tmp", "mine", "strata-plugin-echo")
	mkdir(t, filepath.Dir(p), 0o755)
	copyFile(t, echoBinary, p, 0o755)
	f, err := sdk.OpenBinary(p)
	if err != nil {
		t.Fatalf("a plugin below a sticky world-writable directory: %v", err)
	}
	f.Close()
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestUnverifiedLaunchWarns: a binary started without a checksum is still
// checked, and every such launch says so in the log, naming the binary,
// its hash and what allowed it.
func TestUnverifiedLaunchWarns(t *testing.T) {
	var out sdktest.SyncBuffer
	conn, err := sdk.Launch(context.Background(), sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
		AllowUnverified: true, UnverifiedReason: "STRATA_PLUGINS__ALLOW_UNVERIFIED", Logger: testLogger(&out)})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	sum, _ := fileHash(echoBinary)
	for _, want := range []string{"UNVERIFIED", echoBinary, fmt.Sprintf("%x", sum), "STRATA_PLUGINS__ALLOW_UNVERIFIED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log does not name %q:\n%s", want, out.String())
		}
	}
	dir := filepath.Join(t.TempDir(), "open")
	mkdir(t, dir, 0o777)
	p := filepath.Join(dir, "strata-plugin-echo")
	copyFile(t, echoBinary, p, 0o755)
	if _, err := sdk.Launch(context.Background(), sdk.LaunchConfig{Path: p, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, AllowUnverified: true}); !errors.Is(err, sdk.ErrUnsafeFile) {
		t.Fatalf("allowing unverified binaries skipped the file checks: %v", err)
	}
}

// refusals collects what Launch's Refused reports.
type refusals struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *refusals) add(rf sdk.Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]int{}
	}
	r.got[rf.Reason+"/"+rf.Direction.String()] += rf.Frames + rf.Events
}

func (r *refusals) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[key]
}

// TestPluginFramesBeyondLimitsAreDropped: an UP frame above the max_payload
// the plugin declared, and one with an oversized routing header, are
// dropped on receipt and reported; the good frames around them arrive.
func TestPluginFramesBeyondLimitsAreDropped(t *testing.T) {
	var refused refusals
	rec := &sdktest.Recorder{}
	launchRogue(t, sdk.LaunchConfig{Refused: refused.add}, "frames", 0, rec.Handle)
	rec.Next(t, 10*time.Second, "the first frame", func(f *commonv1.Frame) bool { return string(f.GetPayload()) == "first" })
	rec.Next(t, 10*time.Second, "the frame of max_payload bytes", func(f *commonv1.Frame) bool { return len(f.GetPayload()) == rogue.MaxPayload })
	rec.Next(t, 10*time.Second, "the last frame", func(f *commonv1.Frame) bool { return string(f.GetPayload()) == "last" })
	if rest := rec.Take(); len(rest) != 0 {
		t.Fatalf("%d frames beyond the limits were delivered", len(rest))
	}
	if n := refused.count(sdk.RefusedPayload + "/DIRECTION_UP"); n != 1 {
		t.Errorf("oversize payloads reported: %d, want 1", n)
	}
	if n := refused.count(sdk.RefusedHeader + "/DIRECTION_UP"); n != 1 {
		t.Errorf("oversize headers reported: %d, want 1", n)
	}
}

// TestPluginBatchBeyondMaxFramesIsCut: a plugin that packs more frames into
// a batch than the host told it gets the excess dropped and reported.
func TestPluginBatchBeyondMaxFramesIsCut(t *testing.T) {
	const sent, limit = 1000, 100
	var (
		refused   refusals
		mu        sync.Mutex
		delivered int
		largest   int
	)
	launchRogue(t, sdk.LaunchConfig{
		Refused: refused.add,
		Batch:   sdk.BatchOptions{MaxFrames: limit},
		Env:     []string{rogue.EnvBatchFrames + "=5000"},
	}, "many", sent, func(b *commonv1.Batch) {
		mu.Lock()
		defer mu.Unlock()
		delivered += len(b.GetFrames())
		largest = max(largest, len(b.GetFrames()))
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		d, l := delivered, largest
		mu.Unlock()
		cut := refused.count(sdk.RefusedTooMany + "/DIRECTION_UP")
		if d+cut == sent {
			if cut == 0 {
				t.Fatal("the plugin's oversized batches were taken whole")
			}
			if l > limit {
				t.Fatalf("a batch of %d frames was delivered; the limit is %d", l, limit)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d and cut %d of %d frames", d, cut, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPluginOversizedBatchEndsTheStream: a batch message larger than the
// plugin's limits allow is refused by the transport before the host reads
// it; the data stream ends with ResourceExhausted and nothing is
// delivered.
func TestPluginOversizedBatchEndsTheStream(t *testing.T) {
	rec := &sdktest.Recorder{}
	// The host knows the layer below it: 1 KiB frames too, so that no
	// limit of the plugin's is near 8 MiB.
	_, link, _ := launchRogue(t, sdk.LaunchConfig{Limits: sdk.FrameLimits{DownPayload: rogue.MaxPayload}}, "big", 8<<20, rec.Handle)
	select {
	case <-link.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("an 8 MiB batch from a plugin that declared 1 KiB frames was accepted")
	}
	if code := status.Code(link.Err()); code != codes.ResourceExhausted {
		t.Fatalf("the stream ended with %v (%v), want ResourceExhausted", code, link.Err())
	}
	if got := rec.Take(); len(got) != 0 {
		t.Fatalf("%d frames delivered", len(got))
	}
}

// TestPluginLogIsCleaned: terminal escapes, C1 and bidi controls and
// newlines in a plugin's log reach the host's log as visible escapes, a
// JSON line with a number where go-plugin expects a string (which would
// panic the host) is logged, and an overlong line is cut.
func TestPluginLogIsCleaned(t *testing.T) {
	var out sdktest.SyncBuffer
	conn, _, _ := launchRogue(t, sdk.LaunchConfig{Logger: testLogger(&out)}, "log", 0, nil)
	waitFor(t, &out, "log attack done")
	conn.Close()
	log := out.String()
	for _, bad := range []string{"\x1b", "\u009b", "\u202e", "\u202c", "\x07"} {
		if strings.Contains(log, bad) {
			t.Errorf("the host log holds %q:\n%s", bad, log)
		}
	}
	if regexp.MustCompile(`(?m)^2099-01-01`).MatchString(log) {
		t.Errorf("a plugin faked a line of the host log:\n%s", log)
	}
	// The JSON line with a number for its message is logged with the
	// number as text.
	for _, want := range []string{`\x1b[31mred`, `\n2099-01-01`, `\x1b]0;owned`, `\u202eevil`, "strata-plugin-rogue: 5", "[truncated]"} {
		if !strings.Contains(log, want) {
			t.Errorf("the host log lacks %q:\n%s", want, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if len(line) > 64<<10 {
			t.Errorf("a log line of %d bytes", len(line))
		}
	}
}

// TestPluginErrorTextIsCleaned: the text of an error a plugin returns
// reaches the host without terminal escapes or newlines.
func TestPluginErrorTextIsCleaned(t *testing.T) {
	for _, attack := range []string{"error", "config_error"} {
		t.Run(attack, func(t *testing.T) {
			cfg := sdk.LaunchConfig{Path: rogueBin(t), Kind: commonv1.LayerKind_LAYER_KIND_P2P, AllowUnverified: true}
			ctx := context.Background()
			conn, err := sdk.Launch(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: fmt.Sprintf(`{"attack": %q}`, attack), DataDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			_, err = conn.Start(ctx, &commonv1.StartRequest{})
			if err == nil {
				t.Fatal("Start did not fail")
			}
			if strings.ContainsAny(err.Error(), "\x1b\n\u202e\x07") || !strings.Contains(err.Error(), `\x1b`) {
				t.Fatalf("the error reads %q", err)
			}
		})
	}
}

// TestPluginLogFloodIsLimited: a plugin that logs faster than its limit
// has the excess dropped, and the host logs how many lines it dropped.
func TestPluginLogFloodIsLimited(t *testing.T) {
	const lines, burst = 5000, 20
	var out sdktest.SyncBuffer
	start := time.Now()
	conn, _, _ := launchRogue(t, sdk.LaunchConfig{Logger: testLogger(&out), LogLimit: sdk.LogLimit{PerSecond: 1, Burst: burst}}, "flood", lines, nil)
	waitFor(t, &out, "plugin log lines dropped")
	conn.Close() // the last count is logged when the plugin's stderr ends
	elapsed := time.Since(start)
	log := out.String()
	passed := strings.Count(log, "flood")
	dropped := 0
	for _, m := range regexp.MustCompile(`dropped=(\d+)`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		dropped += n
	}
	if limit := burst + int(elapsed.Seconds()) + 1; passed > limit {
		t.Fatalf("%d flood lines reached the log in %v; the limit allows %d", passed, elapsed, limit)
	}
	// Every flood line is logged or counted; the count may also hold a few
	// of the plugin's other lines (its start and stop messages).
	if all := passed + dropped; all < lines+1 || all > lines+1+5 {
		t.Fatalf("%d flood lines logged and %d lines counted as dropped, of %d", passed, dropped, lines+1)
	}
}

// TestPluginStdinIsDevNull: a plugin reads end of file on its stdin, not
// the host's input.
func TestPluginStdinIsDevNull(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.WriteString("host secret"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	_, _, resp := launchRogue(t, sdk.LaunchConfig{}, "stdin", 0, nil)
	if got := resp.GetDisplayAddress(); got != "EOF" {
		t.Fatalf("the plugin's stdin gave %s, want EOF", got)
	}
}

// TestRunAs starts a plugin as the user nobody (when the test runs as
// root and the user exists).
func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can start a process as another user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	_, _, resp := launchRogue(t, sdk.LaunchConfig{RunAs: &sdk.RunAs{Name: "nobody", UID: uint32(uid), GID: uint32(gid)}}, "whoami", 0, nil)
	if want := fmt.Sprintf("uid=%d gid=%d", uid, gid); resp.GetDisplayAddress() != want {
		t.Fatalf("the plugin runs as %s, want %s", resp.GetDisplayAddress(), want)
	}
}
