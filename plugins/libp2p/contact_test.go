package libp2pplugin

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

// randomID returns a fresh Ed25519 peer id.
func randomID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestContactRoundTrip(t *testing.T) {
	id := randomID(t)
	addrs := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001"), ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")}
	b, err := encodeContact(id, addrs)
	if err != nil {
		t.Fatal(err)
	}
	var pi p2pv1.PeerInfo
	if err := proto.Unmarshal(b, &pi); err != nil {
		t.Fatal(err)
	}
	if peer.ID(pi.GetId()) != id || pi.GetDisplayId() != id.String() {
		t.Errorf("PeerInfo id = %x %q", pi.GetId(), pi.GetDisplayId())
	}
	for _, a := range pi.GetAddresses() {
		if !strings.HasSuffix(a, "/p2p/"+id.String()) {
			t.Errorf("address %q is not a full multiaddr", a)
		}
	}
	ai, err := decodeContact(b)
	if err != nil {
		t.Fatalf("decodeContact: %v", err)
	}
	if ai.ID != id || !slices.EqualFunc(ai.Addrs, addrs, ma.Multiaddr.Equal) {
		t.Errorf("decodeContact = %v, want %s %v", ai, id, addrs)
	}
}

func TestDecodeContactErrors(t *testing.T) {
	id, other := randomID(t), randomID(t)
	enc := func(pi *p2pv1.PeerInfo) []byte {
		b, err := proto.Marshal(pi)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tooMany := make([]string, maxContactAddrs+1)
	for i := range tooMany {
		tooMany[i] = "/ip4/127.0.0.1/tcp/1"
	}
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty", nil, "empty"},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, "decode"},
		{"too large", make([]byte, maxContactSize+1), "above the limit"},
		{"no id", enc(&p2pv1.PeerInfo{Addresses: []string{"/ip4/127.0.0.1/tcp/1"}}), "peer id"},
		{"bad id", enc(&p2pv1.PeerInfo{Id: []byte("not a multihash"), Addresses: []string{"/ip4/127.0.0.1/tcp/1"}}), "peer id"},
		{"display id mismatch", enc(&p2pv1.PeerInfo{Id: []byte(id), DisplayId: other.String(), Addresses: []string{"/ip4/127.0.0.1/tcp/1"}}), "does not match"},
		{"bad address", enc(&p2pv1.PeerInfo{Id: []byte(id), Addresses: []string{"/ip4/999.0.0.1/tcp/1"}}), "address"},
		{"address of another peer", enc(&p2pv1.PeerInfo{Id: []byte(id), Addresses: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + other.String()}}), "names peer"},
		{"no address", enc(&p2pv1.PeerInfo{Id: []byte(id)}), "no address"},
		{"only a peer id", enc(&p2pv1.PeerInfo{Id: []byte(id), Addresses: []string{"/p2p/" + id.String()}}), "no address"},
		{"too many addresses", enc(&p2pv1.PeerInfo{Id: []byte(id), Addresses: tooMany}), "addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeContact(tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeContact = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeContact checks that decoding a contact section never panics
// and that what decodes survives a round trip.
func FuzzDecodeContact(f *testing.F) {
	id := randomID(f)
	good, err := encodeContact(id, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x00, 0x00})
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		ai, err := decodeContact(data)
		if err != nil {
			return
		}
		again, err := encodeContact(ai.ID, ai.Addrs)
		if err != nil {
			t.Fatalf("encodeContact of decoded %v: %v", ai, err)
		}
		ai2, err := decodeContact(again)
		if err != nil {
			t.Fatalf("re-encoded contact does not decode: %v", err)
		}
		if ai2.ID != ai.ID || !slices.EqualFunc(ai2.Addrs, ai.Addrs, ma.Multiaddr.Equal) {
			t.Fatalf("round trip changed %v into %v", ai, ai2)
		}
	})
}
