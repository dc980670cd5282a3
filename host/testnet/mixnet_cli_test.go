package testnet_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestCLIMixnetShape runs `strata testnet` on a mixnet stack with the
// mixnet's shape from the flags — one layer of one mix, one provider,
// 5-second epochs — and checks the network it built (network.json) and
// that SIGINT stops it.
func TestCLIMixnetShape(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mixnet through the CLI: not in -short")
	}
	dir := t.TempDir()
	cmd := exec.Command(strataBin, "testnet", "-c", stackFile(t, "libp2p-mixnet-dr-mvds.yaml"), "--nodes", "1", "--dir", dir,
		"--mix-layers", "1", "--mixes-per-layer", "1", "--providers", "1", "--mix-epoch", "5s")
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
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ctrl-C stops the testnet") {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("strata testnet ended early:\n%s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no table within 60 s:\n%s", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "mixnet", "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nw struct {
		Layers int   `json:"layers"`
		Epoch  int64 `json:"epoch_period_s"`
		Relays []struct {
			Name string `json:"name"`
		} `json:"relays"`
	}
	if err := json.Unmarshal(b, &nw); err != nil {
		t.Fatal(err)
	}
	if nw.Layers != 1 || nw.Epoch != 5 || len(nw.Relays) != 2 || nw.Relays[0].Name != "mix-0-0" || nw.Relays[1].Name != "provider-0" {
		t.Fatalf("network.json: %s", b)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("strata testnet: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("strata testnet did not stop within 60 s of SIGINT")
	}
}
