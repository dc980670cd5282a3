package testnet

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// mixStack writes a mixnet stack on overlay with the given privacy config
// lines and reads it.
func mixStack(t *testing.T, overlay, privacy string) *stack {
	t.Helper()
	text := "layers:\n  p2p:\n    plugin: " + overlay + "\n  privacy:\n    plugin: mixnet\n    config:\n" + privacy +
		"  secure:\n    plugin: doubleratchet\n"
	path := filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readStack(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPlanMixnet checks the generated network: a document its nodes
// accept, whose descriptors carry the peer ids of the overlay keys written
// into the relays' data directories and the Sphinx keys of their keys
// files; who dials whom; the nodes' configs; reuse of the directory.
func TestPlanMixnet(t *testing.T) {
	for _, overlay := range []string{"libp2p", "devp2p"} {
		t.Run(overlay, func(t *testing.T) {
			dir := t.TempDir()
			st := mixStack(t, overlay, "      lambda_p: 5\n")
			mn, err := planMixnet(st, dir, MixnetOptions{MixesPerLayer: 3}, 20)
			if err != nil {
				t.Fatal(err)
			}
			if len(mn.Relays) != 3*3+2 || mn.Layers != 3 || mn.Overlay != overlay {
				t.Fatalf("%d relays, %d layers over %s; want 11, 3 over %s", len(mn.Relays), mn.Layers, mn.Overlay, overlay)
			}
			// 20 clients of 5+2+2 packets/s and 11 relays' loops, twice
			// over, for an hour, over 2 providers.
			if want := int64(2 * (20*9 + 11*1) * 3600 / 2); mn.ReplayTags != want {
				t.Fatalf("replay_expected_tags %d; want %d", mn.ReplayTags, want)
			}
			// The stack's λP wins over the default; the rest are the
			// defaults.
			if want := (rates{LambdaP: 5, LambdaL: DefaultLambdaL, LambdaD: DefaultLambdaD, LambdaM: DefaultLambdaM, Mu: DefaultMu}); mn.Rates != want {
				t.Fatalf("rates %+v; want %+v", mn.Rates, want)
			}
			b, err := os.ReadFile(mn.documentPath())
			if err != nil {
				t.Fatal(err)
			}
			auth, _ := hex.DecodeString(mn.Authorities[0])
			doc, err := pki.Verify(b, pki.VerifyOptions{Authorities: []ed25519.PublicKey{auth}, NetworkID: mn.NetworkID, Epoch: mn.Epoch, Layers: 3})
			if err != nil {
				t.Fatal(err)
			}
			if doc.Params.LambdaPPerSecond != 5 || doc.Params.MuPerSecond != DefaultMu {
				t.Fatalf("document rates %+v", doc.Params)
			}
			byName := map[string]*pki.SignedDescriptor{}
			for _, d := range doc.Nodes() {
				byName[d.Name] = d
			}
			ports := map[int]bool{}
			for _, r := range mn.Relays {
				d := byName[r.Name]
				if d == nil || d.Provider != r.Provider || (!r.Provider && int(d.Layer) != r.Layer) {
					t.Fatalf("%s: descriptor %+v does not match %+v", r.Name, d, r)
				}
				if ports[r.Port] {
					t.Fatalf("port %d twice", r.Port)
				}
				ports[r.Port] = true
				checkOverlayKey(t, overlay, filepath.Join(dir, r.Name), d, r)
				checkKeysFile(t, mn.keysPath(r.Name), mn.Epoch, d)
			}

			// Who dials whom.
			dials := func(name string, client bool) []string {
				for _, r := range mn.Relays {
					if r.Name == name {
						var names []string
						for _, a := range mn.dials(r, client) {
							for _, o := range mn.Relays {
								if o.Addr == a {
									names = append(names, o.Name)
								}
							}
						}
						return names
					}
				}
				t.Fatalf("no relay %s", name)
				return nil
			}
			for _, c := range []struct {
				name   string
				client bool
				want   []string
			}{
				{"provider-1", true, []string{"provider-1"}},
				{"provider-0", false, []string{"mix-0-0", "mix-0-1", "mix-0-2", "mix-2-0", "mix-2-1", "mix-2-2"}},
				{"mix-0-1", false, []string{"mix-1-0", "mix-1-1", "mix-1-2"}},
				{"mix-1-2", false, []string{"mix-2-0", "mix-2-1", "mix-2-2"}},
				{"mix-2-0", false, nil},
			} {
				if got := dials(c.name, c.client); !slices.Equal(got, c.want) {
					t.Errorf("%s (client %v) dials %v; want %v", c.name, c.client, got, c.want)
				}
			}
			var order []string
			for _, s := range mn.stages() {
				var names []string
				for _, r := range s {
					names = append(names, r.Name)
				}
				order = append(order, strings.Join(names, ","))
			}
			if got := strings.Join(order, " | "); got != "mix-2-0,mix-2-1,mix-2-2 | mix-1-0,mix-1-1,mix-1-2 | mix-0-0,mix-0-1,mix-0-2 | provider-0,provider-1" {
				t.Fatalf("start order %s", got)
			}

			// A relay's and a client's configs.
			relayCfg := map[string]any{"lambda_p": 5}
			mix := mn.Relays[4]
			mn.privacyConfig(relayCfg, mix, false)
			for k, want := range map[string]any{"role": mixnet.RoleMix, "name": mix.Name, "keys_path": mn.keysPath(mix.Name), "pki_document": mn.documentPath(),
				"network_id": mn.NetworkID, "overlay": overlay, "layers": 3, "epoch_period": "1h0m0s", "lambda_p": 5, "lambda_l": DefaultLambdaL, "durability": "normal", "replay_expected_tags": mn.ReplayTags} {
				if relayCfg[k] != want {
					t.Errorf("relay %s = %v; want %v", k, relayCfg[k], want)
				}
			}
			if _, ok := relayCfg["shared_pull_rate"]; ok {
				t.Error("a mix got shared_pull_rate")
			}
			// A provider answers 20 clients' pulls of one shared mailbox
			// every 200 ms, twice over.
			provCfg := map[string]any{}
			mn.privacyConfig(provCfg, mn.providers()[0], false)
			if provCfg["shared_pull_rate"] != float64(200) || provCfg["shared_pull_burst"] != int64(200) {
				t.Errorf("provider shared_pull_rate %v, burst %v; want 200 and 200", provCfg["shared_pull_rate"], provCfg["shared_pull_burst"])
			}
			clientCfg := map[string]any{}
			prov := mn.providers()[1]
			mn.privacyConfig(clientCfg, prov, true)
			for k, want := range map[string]any{"role": mixnet.RoleClient, "provider": prov.Name, "pull_interval": "200ms", "ack_timeout": "5s"} {
				if clientCfg[k] != want {
					t.Errorf("client %s = %v; want %v", k, clientCfg[k], want)
				}
			}
			if _, ok := clientCfg["keys_path"]; ok {
				t.Error("a client got keys_path")
			}
			p2p := map[string]any{}
			mn.p2pConfig(p2p, prov, false)
			key, listen := "bootstrap", any([]any{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(prov.Port)})
			if overlay == "devp2p" {
				key, listen = "static", "127.0.0.1:"+strconv.Itoa(prov.Port)
			}
			if l, _ := json.Marshal(p2p["listen"]); string(l) != mustJSON(listen) || len(p2p[key].([]any)) != 6 {
				t.Fatalf("provider's p2p config %v", p2p)
			}

			// The directory again: the same network.
			again, err := planMixnet(st, dir, MixnetOptions{}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if again.NetworkID != mn.NetworkID || len(again.Relays) != len(mn.Relays) || again.Relays[3] != mn.Relays[3] {
				t.Fatalf("a second start made another network")
			}
			// ... unless its document is too old, or the overlay differs.
			if _, err := planMixnet(mixStack(t, map[string]string{"libp2p": "devp2p", "devp2p": "libp2p"}[overlay], ""), dir, MixnetOptions{}, 2); err == nil || !strings.Contains(err.Error(), "runs over") {
				t.Fatalf("another overlay: %v", err)
			}
			old := *mn
			old.Epoch -= 2
			nb, _ := json.Marshal(&old)
			if err := os.WriteFile(filepath.Join(dir, mixnetDir, "network.json"), nb, 0o600); err != nil {
				t.Fatal(err)
			}
			// A network past its document's epochs is used again while
			// its authority's keys are there (the testnet publishes a
			// current document: TestMixnetAuthority), and refused
			// without them.
			if _, err := planMixnet(st, dir, MixnetOptions{}, 2); err != nil {
				t.Fatalf("a network with its authority, past its first document: %v", err)
			}
			if err := os.Remove(filepath.Join(dir, mixnetDir, authorityFile)); err != nil {
				t.Fatal(err)
			}
			if _, err := planMixnet(st, dir, MixnetOptions{}, 2); err == nil || !strings.Contains(err.Error(), "use a new directory") {
				t.Fatalf("a stale network: %v", err)
			}
		})
	}
}

// TestPlanMixnetRefuses checks the mistakes planMixnet reports.
func TestPlanMixnetRefuses(t *testing.T) {
	for _, c := range []struct {
		name, overlay, privacy string
		opts                   MixnetOptions
		want                   string
	}{
		{"layers disagree", "libp2p", "      layers: 4\n", MixnetOptions{Layers: 3}, "MixnetOptions.Layers"},
		{"bad rate", "libp2p", "      mu: fast\n", MixnetOptions{}, "layers.privacy.config.mu"},
		{"bad epoch", "libp2p", "      epoch_period: 1500ms\n", MixnetOptions{}, "whole number of seconds"},
		{"other overlay", "none", "", MixnetOptions{}, "libp2p or devp2p"},
		{"negative shape", "libp2p", "", MixnetOptions{Providers: -1}, "positive numbers"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := planMixnet(mixStack(t, c.overlay, c.privacy), t.TempDir(), c.opts, 2)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one saying %q", err, c.want)
			}
		})
	}
	// The stack's layers are the network's when the options leave them.
	mn, err := planMixnet(mixStack(t, "libp2p", "      layers: 2\n"), t.TempDir(), MixnetOptions{MixesPerLayer: 1, Providers: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if mn.Layers != 2 || len(mn.Relays) != 3 {
		t.Fatalf("%d layers, %d relays; want 2 and 3", mn.Layers, len(mn.Relays))
	}
}

// checkOverlayKey checks that the overlay key in a relay's data directory
// gives the descriptor's peer id, and that the relay's address is its
// descriptor's.
func checkOverlayKey(t *testing.T, overlay, dataDir string, d *pki.SignedDescriptor, r relay) {
	t.Helper()
	switch overlay {
	case "libp2p":
		b, err := os.ReadFile(filepath.Join(dataDir, "p2p", "libp2p", "identity.key"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil || id.String() != d.Libp2pPeerID {
			t.Fatalf("%s: identity.key gives %s; the descriptor has %s", r.Name, id, d.Libp2pPeerID)
		}
		if want := d.Libp2pAddrs[0] + "/p2p/" + d.Libp2pPeerID; r.Addr != want || !strings.HasSuffix(d.Libp2pAddrs[0], "/tcp/"+strconv.Itoa(r.Port)) {
			t.Fatalf("%s: address %s; want %s on port %d", r.Name, r.Addr, want, r.Port)
		}
	default:
		b, err := os.ReadFile(filepath.Join(dataDir, "p2p", "devp2p", "nodekey"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ethcrypto.HexToECDSA(string(b))
		if err != nil {
			t.Fatal(err)
		}
		n, err := enode.ParseV4(d.Enode)
		if err != nil {
			t.Fatal(err)
		}
		if enode.PubkeyToIDV4(&k.PublicKey) != n.ID() || n.TCP() != r.Port || r.Addr != d.Enode {
			t.Fatalf("%s: nodekey and port do not give the descriptor's enode %s", r.Name, d.Enode)
		}
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "p2p", overlay)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: overlay key folder: %v %v", r.Name, fi, err)
	}
}

// checkKeysFile checks that the relay's keys file starts the key chain
// whose public keys the descriptor publishes.
func checkKeysFile(t *testing.T, path string, epoch uint64, d *pki.SignedDescriptor) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rk mixnet.RelayKeys
	if err := json.Unmarshal(b, &rk); err != nil {
		t.Fatal(err)
	}
	secret, _ := hex.DecodeString(rk.SecretHex)
	chain, err := pki.NewKeyChain(secret, rk.Epoch)
	if err != nil || rk.Epoch != epoch {
		t.Fatalf("%s: %v (epoch %d, want %d)", path, err, rk.Epoch, epoch)
	}
	for e := epoch; e < epoch+3; e++ {
		kp, err := chain.Key(e)
		pub, ok := d.SphinxKey(e)
		if err != nil || !ok || kp.Public != pub {
			t.Fatalf("%s: the chain's key of epoch %d is not the descriptor's", path, e)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
