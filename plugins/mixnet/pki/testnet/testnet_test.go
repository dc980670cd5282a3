package testnet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

func seeded(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

func TestGenerateAddresses(t *testing.T) {
	r := seeded(1)
	_, auth, _ := ed25519.GenerateKey(r)
	net, err := Generate(Config{
		NetworkID: "t", Epoch: 7, Layers: 2, MixesPerLayer: 2, Providers: 1,
		Params: DefaultParams([]byte("g")), Authorities: []ed25519.PrivateKey{auth}, Rand: r, BasePort: 40000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Verify(net.Encoded, pki.VerifyOptions{
		Authorities: []ed25519.PublicKey{auth.Public().(ed25519.PublicKey)}, NetworkID: "t", Epoch: 7, Layers: 2,
	}); err != nil {
		t.Fatal(err)
	}
	if len(net.Members) != 5 {
		t.Fatalf("%d members, want 5", len(net.Members))
	}
	for i, m := range net.Members {
		wantLayer, wantProvider := uint8(i/2), false
		if i == 4 {
			wantLayer, wantProvider = pki.LayerProvider, true
		}
		if m.Layer != wantLayer || m.Provider != wantProvider || m.Descriptor.Layer != wantLayer {
			t.Fatalf("member %d (%s): layer %d provider %v", i, m.Name, m.Layer, m.Provider)
		}
		id, err := peer.Decode(m.Libp2pPeerID)
		if err != nil {
			t.Fatalf("%s: peer id: %v", m.Name, err)
		}
		pub, err := id.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := pub.Raw()
		if !bytes.Equal(raw, m.Descriptor.IdentityKey) {
			t.Fatalf("%s: peer id is not the identity key's", m.Name)
		}
		ma, err := multiaddr.NewMultiaddr(m.Libp2pAddrs[0])
		if err != nil {
			t.Fatalf("%s: multiaddr: %v", m.Name, err)
		}
		if port, _ := ma.ValueForProtocol(multiaddr.P_TCP); port != strconv.Itoa(40000+i) {
			t.Fatalf("%s: tcp port %s, want %d", m.Name, port, 40000+i)
		}
		n, err := enode.ParseV4(m.Enode)
		if err != nil {
			t.Fatalf("%s: enode: %v", m.Name, err)
		}
		if n.TCP() != 40000+i || !n.Pubkey().Equal(&m.Devp2pKey.PublicKey) {
			t.Fatalf("%s: enode %s does not match its key and port", m.Name, m.Enode)
		}
	}
}

func TestGenerateGivenNodes(t *testing.T) {
	r := seeded(2)
	_, auth, _ := ed25519.GenerateKey(r)
	nodes := make([]Node, 3)
	for i := range nodes {
		_, id, _ := ed25519.GenerateKey(r)
		nodes[i] = Node{
			Name:         "given-" + strconv.Itoa(i+1),
			Identity:     id,
			KeySecret:    bytes.Repeat([]byte{byte(i + 1)}, 32),
			Libp2pPeerID: "12D3KooWGiven",
			Libp2pAddrs:  []string{"/dns4/node" + strconv.Itoa(i+1) + ".example/tcp/4001"},
			Enode:        "enode://given@10.0.0.1:30303",
		}
	}
	net, err := Generate(Config{
		NetworkID: "t", Epoch: 3, Layers: 1, MixesPerLayer: 2, Providers: 1,
		Params: DefaultParams([]byte("g")), Authorities: []ed25519.PrivateKey{auth}, Nodes: nodes, KeyEpochs: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range net.Members {
		d := m.Descriptor
		if d.Name != nodes[i].Name || d.Enode != nodes[i].Enode || d.Libp2pAddrs[0] != nodes[i].Libp2pAddrs[0] || len(d.SphinxKeys) != 2 {
			t.Fatalf("member %d does not carry the given node: %+v", i, d.Descriptor)
		}
		chain, _ := pki.NewKeyChain(nodes[i].KeySecret, 3)
		k, _ := chain.Key(4)
		if pub, _ := d.SphinxKey(4); pub != k.Public {
			t.Fatalf("member %d: sphinx key not from its secret", i)
		}
	}
}

func TestGenerateConfigErrors(t *testing.T) {
	_, auth, _ := ed25519.GenerateKey(seeded(3))
	base := Config{NetworkID: "t", Layers: 1, MixesPerLayer: 1, Providers: 1, Params: DefaultParams([]byte("g")), Authorities: []ed25519.PrivateKey{auth}}
	for _, tt := range []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"no layers", func(c *Config) { c.Layers = 0 }, pki.ErrConfig},
		{"no providers", func(c *Config) { c.Providers = 0 }, pki.ErrConfig},
		{"too many nodes", func(c *Config) { c.MixesPerLayer = pki.MaxNodes }, pki.ErrConfig},
		{"wrong node count", func(c *Config) { c.Nodes = make([]Node, 1) }, pki.ErrConfig},
		{"no authority", func(c *Config) { c.Authorities = nil }, pki.ErrConfig},
		{"one key epoch", func(c *Config) { c.KeyEpochs = 1 }, pki.ErrConfig},
		{"bad params", func(c *Config) { c.Params.MuPerSecond = 0 }, pki.ErrBadParams},
		{"bad network id", func(c *Config) { c.NetworkID = "" }, pki.ErrBadField},
		{"short key secret", func(c *Config) { c.Nodes = []Node{{KeySecret: []byte{1}}, {}} }, pki.ErrConfig},
		{"exhausted random source", func(c *Config) { c.Rand = bytes.NewReader(make([]byte, 40)) }, io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if _, err := Generate(c); !errors.Is(err, tt.want) {
				t.Fatalf("Generate: %v, want %v", err, tt.want)
			}
		})
	}
}
