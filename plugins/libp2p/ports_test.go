package libp2pplugin

import (
	"context"
	"net"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// tcpPort returns the TCP port of the node's first listen address.
func tcpPort(t *testing.T, tn *testNode) string {
	t.Helper()
	local, err := tn.l.node.Load().localNode()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range local.GetListenAddresses() {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return p
		}
	}
	t.Fatal("no TCP listen address")
	return ""
}

func stop(t *testing.T, tn *testNode) {
	t.Helper()
	if err := tn.lc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestStickyPorts: a node configured with port 0 listens on the same port
// after a restart, so that the address in its contact card still works;
// if that port has been taken meanwhile it starts on a new one; with
// sticky_ports off it gets a new one each time.
func TestStickyPorts(t *testing.T) {
	dir := t.TempDir()
	first := startNodeT(t, dir, tcpOnly)
	port := tcpPort(t, first)
	stop(t, first)

	again := startNodeT(t, dir, tcpOnly)
	if got := tcpPort(t, again); got != port {
		t.Fatalf("after a restart the node listens on port %s, want %s (the one it had)", got, port)
	}
	stop(t, again)

	// Someone else holds the port now: the node still starts.
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	moved := startNodeT(t, dir, tcpOnly)
	if got := tcpPort(t, moved); got == port {
		t.Fatal("the node claims a port another process listens on")
	}
	stop(t, moved)

	// Off: nothing is remembered.
	off := strings.Replace(tcpOnly, "{", `{"sticky_ports":false,`, 1)
	offDir := t.TempDir()
	stop(t, startNodeT(t, offDir, off))
	sticky := p2pkit.Sticky{Dir: offDir, Shape: p2pkit.MultiaddrShape}
	if got, err := sticky.Resolve([]string{"/ip4/127.0.0.1/tcp/0"}); err != nil || got[0] != "/ip4/127.0.0.1/tcp/0" {
		t.Fatalf("with sticky_ports off, a port was remembered: %v %v", got, err)
	}
}
