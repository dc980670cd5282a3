package mixnet_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// network is a generated test network on disk: its signed PKI document
// for the current epoch (default epoch period and genesis) and every
// relay's keys file.
type network struct {
	docPath  string
	auth     string
	authKey  ed25519.PrivateKey
	template *pki.Document // the first document
	epoch    uint64        // its epoch, where the key chains start
	members  []testnet.Member
	keys     map[string]string // relay name → keys file
}

func newNetwork(t testing.TB) *network { return newNetworkPeriod(t, 0) }

// newNetworkPeriod is newNetwork with epochs of period (the default if 0).
func newNetworkPeriod(t testing.TB, period time.Duration) *network {
	t.Helper()
	dir := t.TempDir()
	geo, err := sphinx.NewGeometry(2000, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	epochs, err := pki.NewEpochs(period, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := epochs.Current()
	tn, err := testnet.Generate(testnet.Config{
		NetworkID: "test", Epoch: epoch, Layers: 3, MixesPerLayer: 2, Providers: 2,
		Params: testnet.DefaultParams(loopix.GeometryID(geo)), Authorities: []ed25519.PrivateKey{priv},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{docPath: filepath.Join(dir, "pki.doc"), auth: hex.EncodeToString(pub), authKey: priv, template: tn.Document.Document, epoch: epoch, members: tn.Members, keys: map[string]string{}}
	if err := os.WriteFile(n.docPath, tn.Encoded, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range tn.Members {
		path := filepath.Join(dir, m.Name+".keys")
		if err := mixnet.WriteRelayKeys(path, m.KeySecret, epoch); err != nil {
			t.Fatal(err)
		}
		n.keys[m.Name] = path
	}
	return n
}

// config returns the config section of a node: a client of provider (a
// provider's name) if name is "", else the relay name.
func (n *network) config(role, name string, extra map[string]any) map[string]any {
	c := map[string]any{
		"role": role, "pki_document": n.docPath, "network_id": "test", "authorities": []any{n.auth},
		"durability": "normal", "replay_expected_tags": 10000,
	}
	if role == mixnet.RoleClient {
		c["provider"] = name
	} else {
		c["name"], c["keys_path"] = name, n.keys[name]
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// peerID is a relay's overlay peer id as the libp2p layer gives it.
func (n *network) peerID(t testing.TB, name string) string {
	for _, m := range n.members {
		if m.Name == name {
			id, err := peer.Decode(m.Descriptor.Libp2pPeerID)
			if err != nil {
				t.Fatal(err)
			}
			return string(id)
		}
	}
	t.Fatalf("no member %s", name)
	return ""
}

func (n *network) relays() []testnet.Member { return n.members }

func relayRole(m testnet.Member) string {
	if m.Provider {
		return mixnet.RoleProvider
	}
	return mixnet.RoleMix
}

// runAuthority publishes, until the test ends, each next epoch's
// document lead before the epoch begins, as a testnet's authority does
// (pki/testnet.Publisher.Run).
func (n *network) runAuthority(t testing.TB, epochs *pki.Epochs, lead time.Duration) {
	t.Helper()
	secrets := map[string]testnet.RelaySecrets{}
	for _, m := range n.members {
		secrets[m.Name] = testnet.RelaySecrets{Identity: m.Identity, KeySecret: m.KeySecret, KeyEpoch: n.epoch}
	}
	p, err := testnet.NewPublisher(n.template, secrets, []ed25519.PrivateKey{n.authKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, n.docPath, epochs, lead, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("authority: %v", err)
		}
	})
}
