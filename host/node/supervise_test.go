package node_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
)

// TestRestartLimit kills the overlay plugin more often than the policy
// allows: the node gives up and says which layer failed.
func TestRestartLimit(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "r", config.ModeProcess, dir, "")
	cfg.Plugins.Restart.Limit = 1
	cfg.Plugins.Restart.Window = time.Minute
	n := startNode(t, cfg)
	for kill := 1; kill <= 2; kill++ {
		pid := n.PluginPID("p2p")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if kill == 1 {
			deadline := time.Now().Add(20 * time.Second)
			for n.Restarts("p2p") < 1 || !n.Running() {
				if time.Now().After(deadline) {
					t.Fatal("first kill: not restarted")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	select {
	case err := <-n.Failed():
		if !strings.Contains(err.Error(), "layers.p2p") || !strings.Contains(err.Error(), "giving up") {
			t.Fatalf("failure %q does not name the layer", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not give up after exceeding the restart limit")
	}
}

// TestHungPluginIsRestarted runs a privacy plugin that stops answering
// health checks while its process lives: the host takes it for hung and
// restarts it.
func TestHungPluginIsRestarted(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "h", config.ModeProcess, dir, "")
	priv := cfg.Layers["privacy"]
	priv.Plugin = "echo"
	priv.Config = map[string]any{"hang_health": true}
	cfg.Layers["privacy"] = priv
	n, err := node.New(cfg, node.Options{
		Catalog:        catalog(),
		Logger:         hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: os.Stderr}),
		HealthInterval: 50 * time.Millisecond,
		HealthTimeout:  100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	first := n.PluginPID("privacy")
	deadline := time.Now().Add(30 * time.Second)
	for n.Restarts("privacy") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a plugin that answers no health check was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n.Restarts("p2p") != 0 {
		t.Fatalf("the healthy p2p plugin was restarted too")
	}
	if again := n.PluginPID("privacy"); again == first {
		t.Fatalf("privacy plugin pid unchanged (%d) after the restart", first)
	}
}
