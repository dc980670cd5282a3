package p2pkit_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

func TestCheckProtocolName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"shh", true},
		{"direct.v1_x-y", true},
		{"", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{strings.Repeat("a", p2pkit.MaxProtocolName), true},
		{strings.Repeat("a", p2pkit.MaxProtocolName+1), false},
	}
	for _, tt := range tests {
		if err := p2pkit.CheckProtocolName(tt.name); (err == nil) != tt.ok {
			t.Errorf("%q: %v", tt.name, err)
		}
	}
}

func TestProtocols(t *testing.T) {
	p := func(name string, version, codes uint32) *commonv1.Protocol {
		return &commonv1.Protocol{Name: name, Version: version, MessageCodes: codes}
	}
	tests := []struct {
		name string
		in   []*commonv1.Protocol
		want string // names and versions, or "error"
	}{
		{"none", nil, ""},
		{"sorted", []*commonv1.Protocol{p("shh", 6, 128), p("direct", 1, 1)}, "direct/1/1 shh/6/128"},
		{"exact repeat", []*commonv1.Protocol{p("x", 1, 0), p("x", 1, 1)}, "x/1/1"},
		{"two versions", []*commonv1.Protocol{p("x", 1, 1), p("x", 2, 1)}, "error"},
		{"two code counts", []*commonv1.Protocol{p("x", 1, 1), p("x", 1, 2)}, "error"},
		{"bad name", []*commonv1.Protocol{p("a/b", 1, 1)}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p2pkit.Protocols(tt.in)
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("accepted: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, g := range got {
				s = append(s, fmt.Sprintf("%s/%d/%d", g.GetName(), g.GetVersion(), g.GetMessageCodes()))
			}
			if strings.Join(s, " ") != tt.want {
				t.Fatalf("got %v, want %s", s, tt.want)
			}
		})
	}
}

func TestShapes(t *testing.T) {
	tests := []struct {
		shape    func(string) string
		in, want string
	}{
		{p2pkit.HostPortShape, "127.0.0.1:30303", "127.0.0.1:0"},
		{p2pkit.HostPortShape, "[::1]:1", "[::1]:0"},
		{p2pkit.HostPortShape, "junk", "junk"},
		{p2pkit.MultiaddrShape, "/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/0"},
		{p2pkit.MultiaddrShape, "/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1"},
		{p2pkit.MultiaddrShape, "/dns4/tcp/tcp/5", "/dns4/tcp/tcp/0"},
	}
	for _, tt := range tests {
		if got := tt.shape(tt.in); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestSticky(t *testing.T) {
	dir := t.TempDir()
	s := p2pkit.Sticky{Dir: dir, Shape: p2pkit.MultiaddrShape}
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/7000"}
	got, err := s.Resolve(listen)
	if err != nil || strings.Join(got, " ") != strings.Join(listen, " ") {
		t.Fatalf("first start: %v, %v", got, err)
	}
	if err := s.Save([]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4002/quic-v1", "/ip4/127.0.0.1/tcp/7000"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Resolve(listen)
	want := "/ip4/127.0.0.1/tcp/4001 /ip4/127.0.0.1/udp/4002/quic-v1 /ip4/127.0.0.1/tcp/7000"
	if err != nil || strings.Join(got, " ") != want {
		t.Fatalf("restart: %v, %v; want %s", got, err, want)
	}
	// Another host is another shape: it gets a new port.
	if got, _ := s.Resolve([]string{"/ip4/0.0.0.0/tcp/0"}); got[0] != "/ip4/0.0.0.0/tcp/0" {
		t.Fatalf("another host: %v", got)
	}

	// The file devp2p wrote before.
	old := p2pkit.Sticky{Dir: t.TempDir(), Shape: p2pkit.HostPortShape}
	if err := os.WriteFile(filepath.Join(old.Dir, p2pkit.StickyFile), []byte(`{"listen":"127.0.0.1:30399"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := old.Resolve([]string{"127.0.0.1:0"}); err != nil || got[0] != "127.0.0.1:30399" {
		t.Fatalf("old file: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(old.Dir, p2pkit.StickyFile), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Resolve([]string{"127.0.0.1:0"}); err == nil {
		t.Fatal("a corrupt file is no error")
	}
}
