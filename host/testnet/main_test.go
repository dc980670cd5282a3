package testnet_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

var (
	// strataBin is the strata executable the tests build.
	strataBin string
	// pluginDir holds every plugin binary of the repository, locked.
	pluginDir string
)

// TestMain builds bin/strata and the plugins once, in parallel, into a
// temporary directory, and locks them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-testnet-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func build(dir string) error {
	pluginDir = filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	strataBin = filepath.Join(dir, "strata")
	jobs := map[string]func() error{
		"strata": func() error {
			out, err := exec.Command("go", "build", "-o", strataBin, "github.com/strata-msg/strata/host/cmd/strata").CombinedOutput()
			if err != nil {
				return fmt.Errorf("build strata: %v\n%s", err, out)
			}
			return nil
		},
	}
	for _, name := range []string{"libp2p", "none", "doubleratchet", "mls", "mvds", "bsp", "devp2p", "whisper", "mixnet"} {
		jobs[name] = func() error {
			_, err := sdktest.Build(pluginDir, "github.com/strata-msg/strata/plugins/"+name+"/cmd/strata-plugin-"+name, name)
			return err
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for _, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := job(); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	if out, err := exec.Command(strataBin, "plugins", "lock", "--dir", pluginDir).CombinedOutput(); err != nil {
		return fmt.Errorf("plugins lock: %v\n%s", err, out)
	}
	return nil
}

// stackFile copies a stack of configs/ into the test's directory with
// plugins.dir pointing at the test's plugins.
func stackFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "dir: ../bin/plugins", "dir: "+pluginDir, 1)
	if text == string(b) {
		t.Fatalf("configs/%s has no plugins.dir line to replace", name)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// running lists those of pids that still run (not zombies).
func running(pids []int) []int {
	var out []int
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			continue
		}
		out = append(out, p)
	}
	return out
}
