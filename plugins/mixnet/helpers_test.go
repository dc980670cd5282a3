package mixnet_test

import (
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
	docPath string
	auth    string
	authKey ed25519.PrivateKey
	params  pki.Params
	members []testnet.Member
	keys    map[string]string // relay name → keys file
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
	n := &network{docPath: filepath.Join(dir, "pki.doc"), auth: hex.EncodeToString(pub), authKey: priv, params: tn.Document.Document.Params, members: tn.Members, keys: map[string]string{}}
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

// publish writes the network's document for epoch (at or after the first
// document's), each node's descriptor with the keys its chain gives for
// epoch and the two after.
func (n *network) publish(t testing.TB, epoch uint64) {
	t.Helper()
	doc := &pki.Document{Version: pki.DocumentVersion, NetworkID: "test", Epoch: epoch, Params: n.params, Layers: make([][]*pki.SignedDescriptor, 3)}
	for _, m := range n.members {
		d := m.Descriptor.Descriptor
		d.SphinxKeys = nil
		for e := epoch; e < epoch+3; e++ {
			kp, err := m.Keys.Key(e)
			if err != nil {
				t.Fatal(err)
			}
			d.SphinxKeys = append(d.SphinxKeys, pki.EpochKey{Epoch: e, Public: kp.Public})
		}
		sd, err := pki.SignDescriptor(&d, m.Identity)
		if err != nil {
			t.Fatal(err)
		}
		if m.Provider {
			doc.Providers = append(doc.Providers, sd)
		} else {
			doc.Layers[m.Layer] = append(doc.Layers[m.Layer], sd)
		}
	}
	doc.Sort()
	signed, err := pki.NewSignedDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := signed.Sign(n.authKey); err != nil {
		t.Fatal(err)
	}
	tmp := n.docPath + ".new"
	if err := os.WriteFile(tmp, signed.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, n.docPath); err != nil {
		t.Fatal(err)
	}
}
