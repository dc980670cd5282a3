package devp2p

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

func testNodeRecord(t testing.TB) *enode.Node {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return enode.NewV4(&k.PublicKey, []byte{127, 0, 0, 1}, 30303, 30303)
}

func TestContactRoundTrip(t *testing.T) {
	n := testNodeRecord(t)
	b, err := encodeContact(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeContact(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != n.ID() || got.URLv4() != n.URLv4() {
		t.Fatalf("decoded %s, want %s", got.URLv4(), n.URLv4())
	}
}

func TestContactRejects(t *testing.T) {
	n, other := testNodeRecord(t), testNodeRecord(t)
	id := n.ID()
	enc := func(pi *p2pv1.PeerInfo) []byte {
		b, err := proto.Marshal(pi)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"empty":          nil,
		"junk":           []byte("not a protobuf \xff\xff"),
		"huge":           bytes.Repeat([]byte{0}, maxContactSize+1),
		"short id":       enc(&p2pv1.PeerInfo{Id: id[:8], Addresses: []string{n.URLv4()}}),
		"no address":     enc(&p2pv1.PeerInfo{Id: id[:]}),
		"other node":     enc(&p2pv1.PeerInfo{Id: id[:], Addresses: []string{other.URLv4()}}),
		"bad url":        enc(&p2pv1.PeerInfo{Id: id[:], Addresses: []string{"enode://zz@1.2.3.4:5"}}),
		"multiaddr":      enc(&p2pv1.PeerInfo{Id: id[:], Addresses: []string{"/ip4/127.0.0.1/tcp/1"}}),
		"too many":       enc(&p2pv1.PeerInfo{Id: id[:], Addresses: make([]string, maxContactAddrs+1)}),
		"incomplete url": enc(&p2pv1.PeerInfo{Id: id[:], Addresses: []string{strings.Split(n.URLv4(), "@")[0]}}),
	}
	for name, b := range cases {
		if _, err := decodeContact(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestSplitFrame(t *testing.T) {
	tab, err := newProtocolTable([]*commonv1.Protocol{{Name: "shh", Version: 6, MessageCodes: 128}, {Name: "direct", Version: 1}})
	if err != nil {
		t.Fatal(err)
	}
	shh, direct := tab.byName["shh"], tab.byName["direct"]
	if code, body, err := shh.splitFrame([]byte{127, 1, 2}); err != nil || code != 127 || !bytes.Equal(body, []byte{1, 2}) {
		t.Fatalf("split: %d %x %v", code, body, err)
	}
	if _, _, err := shh.splitFrame([]byte{128}); err == nil {
		t.Fatal("code 128 accepted")
	}
	if _, _, err := shh.splitFrame(nil); err == nil {
		t.Fatal("empty coded frame accepted")
	}
	if code, body, err := direct.splitFrame([]byte{200}); err != nil || code != 0 || !bytes.Equal(body, []byte{200}) {
		t.Fatalf("opaque split: %d %x %v", code, body, err)
	}
	for _, bad := range [][]*commonv1.Protocol{
		{{Name: ""}},
		{{Name: "a/b"}},
		{{Name: "x", MessageCodes: 257}},
		{{Name: "x", Version: 1}, {Name: "x", Version: 2}},
	} {
		if _, err := newProtocolTable(bad); err == nil {
			t.Errorf("protocols %v accepted", bad)
		}
	}
	if _, err := newProtocolTable([]*commonv1.Protocol{{Name: "x", Version: 1}, {Name: "x", Version: 1}}); err != nil {
		t.Errorf("exact repeat refused: %v", err)
	}
}
