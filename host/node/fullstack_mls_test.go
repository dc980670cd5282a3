package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/plugins/mls/layer"
)

// mlsConfig is libp2p + none + mls + mvds with test-sized timings.
const mlsConfig = `
node:
  name: %[1]s
  data_dir: %[2]s
plugins:
  dir: %[3]s
  restart:
    initial: 50ms
    max: 1s
layers:
  p2p:
    plugin: libp2p
    mode: %[4]s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
    mode: %[4]s
  secure:
    plugin: mls
    mode: %[4]s
    config:
      settle_window: 5s
      branch_retention: 30s
      retransmit_initial: 300ms
      retransmit_max: 2s
      takeover_timeout: 5s
  sync:
    plugin: mvds
    mode: %[4]s
    config:
      epoch: 50ms
      backoff_max: 8
api:
  listen: "off"
%[5]s`

// startMLS starts a node of mlsConfig in process, with the mls layer in
// the catalog.
func startMLS(t *testing.T, dir, name, extra string) *fullNode {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(mlsConfig, name, filepath.Join(dir, name), pluginDir, config.ModeInProc, extra)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fullNode{cfg: cfg, got: map[string]int{}}
	n, err := node.New(cfg, node.Options{
		Catalog:        catalog().Add(func() sdk.Layer { return layer.New() }),
		Logger:         hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error, Output: os.Stderr}),
		Deliver:        f.deliver,
		HealthInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	f.Node = n
	return f
}

// TestFullStackMLS runs libp2p+none+mls+mvds through the host, in process,
// with loss, duplication and reordering at every node's p2p boundary: a
// group of four made by the hosts' SetConversation, every message reaching
// every member's application once, after its parents; the group's Commit
// and Welcomes get through the loss by the layer's own retransmission.
func TestFullStackMLS(t *testing.T) {
	if testing.Short() {
		t.Skip("a full stack of four nodes; runs without -short")
	}
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 4 {
		nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("m%d", i), fmt.Sprintf(lossy, i+1)))
	}
	logOnFailure(t, nodes...)
	conv := []byte("mls group")
	mesh(t, nodes, conv)
	want := post(t, nodes, conv, 5)
	waitAll(t, nodes, want, 90*time.Second)
	var commits, joined uint64
	for _, n := range nodes {
		c, err := n.LayerCounters(context.Background(), "secure")
		if err != nil {
			t.Fatal(err)
		}
		commits += c["commits_made"]
		joined += c["welcomes_joined"]
		if c["sealed"] == 0 || c["opened"] == 0 {
			t.Errorf("%s: sealed %d, opened %d", n.Name(), c["sealed"], c["opened"])
		}
	}
	if commits == 0 || joined < 3 {
		t.Fatalf("commits %d, welcomes joined %d: the group was not made by the layer", commits, joined)
	}
}
