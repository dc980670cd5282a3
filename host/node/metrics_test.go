package node_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
)

// TestMetrics checks that the boundary counters reach Prometheus with the
// same values the node reports.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	in := newInbox()
	start := func(name string, r prometheus.Registerer, deliver func(node.Delivery)) *node.Node {
		n, err := node.New(loadConfig(t, name, config.ModeInProc, dir, ""), node.Options{
			Catalog: catalog(), Registerer: r, Deliver: deliver, HealthInterval: 50 * time.Millisecond,
			Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(context.Background()) })
		return n
	}
	a := start("a", reg, nil)
	b := start("b", nil, in.deliver)
	ctx := context.Background()
	if _, err := a.AddContact(ctx, b.CardText()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddContact(ctx, a.CardText()); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, 1)
	if err := a.SetConversation(ctx, testConv, []ed25519.PublicKey{b.Identity()}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := a.Send(ctx, testConv, msg("a", i), node.SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := in.waitFor(10, 10*time.Second); len(got) != 10 {
		t.Fatalf("%d of 10 arrived", len(got))
	}
	if _, err := a.LayerCounters(ctx, "p2p"); err != nil { // a health poll, now
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "strata_boundary_frames_total":
				found[f.GetName()+"/"+labels["boundary"]+"/"+labels["direction"]] = m.GetCounter().GetValue()
			case "strata_boundary_unknown_sender_total":
				found[f.GetName()+"/"+labels["boundary"]] = m.GetCounter().GetValue() + 1 // +1: present
			case "strata_plugin_up":
				found[f.GetName()+"/"+labels["layer"]] = m.GetGauge().GetValue()
			case "strata_layer_counter":
				if labels["layer"] == "p2p" && labels["name"] == "frames_sent" {
					found["p2p frames_sent"] = m.GetGauge().GetValue()
				}
			}
		}
	}
	for key, want := range map[string]float64{
		"strata_boundary_frames_total/privacy|app/down":    10,
		"strata_boundary_frames_total/p2p|privacy/down":    10,
		"strata_plugin_up/p2p":                             1,
		"strata_boundary_unknown_sender_total/privacy|app": 1, // present, zero

		"strata_plugin_up/privacy": 1,
		"p2p frames_sent":          10,
	} {
		if found[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, found[key], want, found)
		}
	}
}
