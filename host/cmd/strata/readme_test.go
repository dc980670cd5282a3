package main_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// readmeBlocks returns the lines of every ```sh block of the README
// section that starts with the heading head, in order, block by block.
func readmeBlocks(t *testing.T, path, head string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+head+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", path, head)
	}
	text = text[i+len(head)+2:]
	if j := strings.Index(text, "\n## "); j >= 0 {
		text = text[:j]
	}
	var blocks [][]string
	for _, part := range strings.Split(text, "```sh\n")[1:] {
		body, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("an unclosed block in %s", head)
		}
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		blocks = append(blocks, lines)
	}
	return blocks
}

// quoted is the last single-quoted text of a line: the message a `send`
// line sends.
var quoted = regexp.MustCompile(`'([^']*)'`)

// TestReadmeUse runs the README's "Use" section line by line, as a user
// pastes it into a shell at the top of a fresh clone: two nodes, a 1:1
// message that the receiver's `listen` shows with no step the receiver
// took first, a group created by one member that reaches the other two,
// and both again on the devp2p + whisper stack through its relay. Only
// `make build` is replaced (the test builds bin/ itself), and job control
// (`&`, `kill %N`, `wait`) is done by the test for the lines that use it.
func TestReadmeUse(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	plugins := filepath.Join(bin, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(strataBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "strata"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, pkg := range map[string]string{
		"libp2p":        "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p",
		"none":          "github.com/strata-msg/strata/plugins/none/cmd/strata-plugin-none",
		"doubleratchet": "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet",
		"mvds":          "github.com/strata-msg/strata/plugins/mvds/cmd/strata-plugin-mvds",
		"devp2p":        "github.com/strata-msg/strata/plugins/devp2p/cmd/strata-plugin-devp2p",
		"whisper":       "github.com/strata-msg/strata/plugins/whisper/cmd/strata-plugin-whisper",
	} {
		if _, err := sdktest.Build(plugins, pkg, name); err != nil {
			t.Fatal(err)
		}
	}
	configs := filepath.Join(root, "configs")
	if err := os.MkdirAll(configs, 0o755); err != nil {
		t.Fatal(err)
	}
	stacks, err := filepath.Glob("../../../configs/*.yaml")
	if err != nil || len(stacks) == 0 {
		t.Fatalf("no shipped configs: %v", err)
	}
	for _, s := range stacks {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(configs, filepath.Base(s)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	sh := &shell{t: t, dir: root}
	t.Cleanup(sh.killAll)
	var lastMessage string
	for bi, block := range readmeBlocks(t, "../../../README.md", "## Use") {
		for _, line := range block {
			t.Logf("block %d: %s", bi+1, line)
			command, _, _ := strings.Cut(line, " #")
			command = strings.TrimSpace(command)
			switch {
			case command == "make build":
				continue // built above
			case strings.HasPrefix(command, "bin/strata send "):
				m := quoted.FindAllStringSubmatch(command, -1)
				if len(m) == 0 {
					t.Fatalf("a send line with no quoted message: %s", line)
				}
				lastMessage = m[len(m)-1][1]
				sh.run(command)
			case strings.HasPrefix(command, "bin/strata listen ") && !strings.Contains(command, "--no-follow"):
				sh.listenFor(command, lastMessage)
			default:
				for _, part := range strings.Split(command, ";") {
					part = strings.TrimSpace(part)
					switch {
					case strings.HasPrefix(part, "kill %"):
						sh.killAll()
					case part == "wait":
						// killAll waits for what it stops.
					case strings.HasSuffix(part, "&"):
						sh.background(strings.TrimSpace(strings.TrimSuffix(part, "&")))
					default:
						sh.run(part)
					}
				}
			}
		}
	}
}

// shell runs README lines with bash in a directory, keeping the
// background jobs.
type shell struct {
	t    *testing.T
	dir  string
	jobs []*exec.Cmd
}

func (s *shell) command(ctx context.Context, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir = s.dir
	cmd.Env = []string{"HOME=" + s.dir, "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// run runs a line and fails the test if it fails.
func (s *shell) run(line string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.command(ctx, line).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: %v\n%s%s", line, err, out, s.logs())
	}
	s.t.Logf("  → %s", strings.TrimSpace(string(out)))
}

// background starts a line as a job. bash runs it with exec: a command
// with a redirection (`strata run ... 2>alice.log`) is otherwise run by a
// bash that waits for it, and SIGTERM ends that bash at once, so that
// waiting for the job returned while the node was still stopping (and
// removing its socket under the README's `rm -r data`).
func (s *shell) background(line string) {
	s.t.Helper()
	cmd := s.command(context.Background(), "exec "+line)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	s.jobs = append(s.jobs, cmd)
}

// listenFor runs a `listen` line until it prints want, as a user watches
// it, then ends it as Ctrl-C would.
func (s *shell) listenFor(line, want string) {
	s.t.Helper()
	if want == "" {
		s.t.Fatalf("%s: no message was sent before it", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := s.command(ctx, line)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	found := make(chan bool, 1)
	var seen []string
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), want) {
				found <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		found <- false
	}()
	var ok bool
	select {
	case ok = <-found:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	_ = cmd.Wait()
	if !ok {
		s.t.Fatalf("%s never showed %q; it showed:\n%s\n%s%s", line, want, strings.Join(seen, "\n"), stderr.String(), s.logs())
	}
	s.t.Logf("  → showed %q", want)
}

// killAll stops every job (SIGTERM, as kill does) and waits for it.
func (s *shell) killAll() {
	for _, cmd := range s.jobs {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, cmd := range s.jobs {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	s.jobs = nil
}

// logs are the nodes' logs, for a failure's message.
func (s *shell) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, f := range files {
		text, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		b.WriteString("\n--- " + filepath.Base(f) + " (last lines)\n" + strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}
