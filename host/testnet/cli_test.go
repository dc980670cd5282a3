package testnet_test

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestCLI runs `strata testnet` in its default temporary directory, reads
// the table it prints, sends it SIGINT, and checks that every process it
// listed is gone and that the directory was removed.
func TestCLI(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command(strataBin, "testnet", "-c", stackFile(t, "libp2p-none-dr.yaml"), "--nodes", "2")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr sdktest.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out []string
	var pids []int
	timeout := time.After(60 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("strata testnet ended early:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
			}
			out = append(out, l)
			if f := strings.Fields(l); len(f) > 2 && nodeName.MatchString(f[0]) && (f[1] == "client" || f[1] == "relay") {
				for _, p := range strings.Split(f[len(f)-1], ",") {
					n, err := strconv.Atoi(p)
					if err != nil {
						t.Fatalf("PIDS column of %q: %v", l, err)
					}
					pids = append(pids, n)
				}
			}
			if strings.Contains(l, "Ctrl-C stops the testnet") {
				break wait
			}
		case <-timeout:
			t.Fatalf("no table within 60 s:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
		}
	}
	text := strings.Join(out, "\n")
	if len(pids) != 2*4 || !strings.Contains(text, "send --api unix:") || !strings.Contains(text, "--to n1") {
		t.Fatalf("table and examples: %d pids\n%s", len(pids), text)
	}
	dir := ""
	for _, f := range strings.Fields(text) {
		if strings.HasPrefix(f, tmp) {
			dir = strings.TrimSuffix(f, "/<name>.log.")
			break
		}
	}
	if dir == "" {
		t.Fatalf("no directory under %s in the output:\n%s", tmp, text)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			out = append(out, l)
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("strata testnet: %v\n%s\n%s", err, strings.Join(out, "\n"), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("strata testnet did not stop within 60 s of SIGINT")
	}
	text = strings.Join(out, "\n")
	if !strings.Contains(text, "stopped 2 node(s)") || !strings.Contains(text, "removed "+dir) {
		t.Fatalf("output after SIGINT:\n%s", text)
	}
	if left := running(pids); len(left) > 0 {
		t.Fatalf("processes still run after SIGINT: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there: %v", dir, err)
	}
}

// nodeName matches the name of a testnet node in the first column.
var nodeName = regexp.MustCompile(`^[nr][0-9]+$`)
