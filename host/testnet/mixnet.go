package testnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	pkitestnet "github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Defaults of MixnetOptions: a network of the shape with rates
// for a quick test, not for privacy (docs/testnet.md).
const (
	DefaultMixLayers     = 3
	DefaultMixesPerLayer = 2
	DefaultProviders     = 2
	// DefaultLambdaP etc. are the test network's rates per second, the
	// PKI document's and every node's: a fragment waits 50 ms on average
	// for its slot, and a hop holds a packet 20 ms on average.
	DefaultLambdaP = 20.0
	DefaultLambdaL = 2.0
	DefaultLambdaD = 2.0
	DefaultLambdaM = 1.0
	DefaultMu      = 50.0
	// DefaultPullInterval is how often a client pulls its mailbox.
	DefaultPullInterval = 200 * time.Millisecond
	// DefaultEpochPeriod is the test network's epoch. The document is made
	// for the epoch the testnet starts in, with keys for two more, so a
	// testnet runs for two to three epochs.
	DefaultEpochPeriod = time.Hour
	// testAckTimeout is every client's ack_timeout unless the stack sets
	// it.
	testAckTimeout = "5s"
	// minReplayTags is the smallest replay filter a relay gets (360 KB
	// an epoch; the plugin's default is 7.2 MB for 2 million packets).
	minReplayTags = 100000
	// maxReplayTags is the plugin's bound of replay_expected_tags.
	maxReplayTags = 1000000000
)

// mixnetDir is the folder, in the testnet's directory, of the mixnet's
// files: the signed document, the relays' key files, network.json.
const mixnetDir = "mixnet"

// MixnetOptions shape the mixnet a testnet builds when the stack's
// privacy layer is mixnet and Options.Relays is AutoRelays. Zero fields
// take the defaults above.
type MixnetOptions struct {
	// Layers is the number of mix layers, MixesPerLayer the mixes of each
	// and Providers the providers.
	Layers, MixesPerLayer, Providers int
	// LambdaP, LambdaL, LambdaD, LambdaM and Mu are the PKI document's
	// rates per second, and every node's unless the stack's privacy
	// config sets them.
	LambdaP, LambdaL, LambdaD, LambdaM, Mu float64
	// PullInterval is every client's pull_interval unless the stack sets
	// it.
	PullInterval time.Duration
	// EpochPeriod is every node's epoch_period unless the stack sets it.
	EpochPeriod time.Duration
}

// withDefaults fills the zero fields.
func (o MixnetOptions) withDefaults() MixnetOptions {
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setFloat := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&o.Layers, DefaultMixLayers)
	setInt(&o.MixesPerLayer, DefaultMixesPerLayer)
	setInt(&o.Providers, DefaultProviders)
	setFloat(&o.LambdaP, DefaultLambdaP)
	setFloat(&o.LambdaL, DefaultLambdaL)
	setFloat(&o.LambdaD, DefaultLambdaD)
	setFloat(&o.LambdaM, DefaultLambdaM)
	setFloat(&o.Mu, DefaultMu)
	if o.PullInterval == 0 {
		o.PullInterval = DefaultPullInterval
	}
	if o.EpochPeriod == 0 {
		o.EpochPeriod = DefaultEpochPeriod
	}
	return o
}

// mixNetwork is the mixnet of a testnet, as network.json keeps it: what
// every node's privacy config needs besides its own place.
type mixNetwork struct {
	NetworkID   string   `json:"network_id"`
	Authorities []string `json:"authorities"`
	Overlay     string   `json:"overlay"`
	Layers      int      `json:"layers"`
	// EpochPeriod is in seconds, GenesisUnix in Unix seconds.
	EpochPeriod  int64  `json:"epoch_period_s"`
	GenesisUnix  int64  `json:"genesis_unix"`
	Epoch        uint64 `json:"epoch"`
	Rates        rates  `json:"rates"`
	PullInterval string `json:"pull_interval"`
	// ReplayTags is every relay's replay_expected_tags.
	ReplayTags int64 `json:"replay_expected_tags"`
	// SharedPullRate is every provider's shared_pull_rate (0: the
	// plugin's default).
	SharedPullRate float64 `json:"shared_pull_rate,omitempty"`
	Relays         []relay `json:"relays"`

	// dir is the mixnet folder, absolute; not kept.
	dir string
}

// rates are the document's parameters.
type rates struct {
	LambdaP float64 `json:"lambda_p"`
	LambdaL float64 `json:"lambda_l"`
	LambdaD float64 `json:"lambda_d"`
	LambdaM float64 `json:"lambda_m"`
	Mu      float64 `json:"mu"`
}

// relay is one mix or provider of the network.
type relay struct {
	Name     string `json:"name"`
	Provider bool   `json:"provider"`
	// Layer is the mix layer; -1 for a provider.
	Layer int `json:"layer"`
	Port  int `json:"port"`
	// Addr is the overlay address others dial: a full libp2p multiaddr
	// ending in /p2p/<peer id>, or an enode URL.
	Addr string `json:"addr"`
}

// documentPath, keysPath: the mixnet's files.
func (mn *mixNetwork) documentPath() string { return filepath.Join(mn.dir, "document.pkidoc") }
func (mn *mixNetwork) keysPath(name string) string {
	return filepath.Join(mn.dir, name+".keys")
}

// stages returns the relays in the groups they start in: the last layer
// first, so that every node finds the relays it dials listening (each
// layer dials the next; providers dial the first and the last layer),
// then the providers.
func (mn *mixNetwork) stages() [][]relay {
	var out [][]relay
	for l := mn.Layers - 1; l >= 0; l-- {
		var s []relay
		for _, r := range mn.Relays {
			if !r.Provider && r.Layer == l {
				s = append(s, r)
			}
		}
		out = append(out, s)
	}
	var ps []relay
	for _, r := range mn.Relays {
		if r.Provider {
			ps = append(ps, r)
		}
	}
	return append(out, ps)
}

// providers returns the providers in document order.
func (mn *mixNetwork) providers() []relay {
	var out []relay
	for _, r := range mn.Relays {
		if r.Provider {
			out = append(out, r)
		}
	}
	return out
}

// dials returns the overlay addresses a node keeps connected: a client
// its provider, a mix the mixes of the next layer (none for the last
// layer, which the providers dial), a provider the first and the last
// layer. Next hops are then always peers the node is connected to.
func (mn *mixNetwork) dials(self relay, client bool) []string {
	var out []string
	for _, r := range mn.Relays {
		switch {
		case client:
			if r.Name == self.Name {
				out = append(out, r.Addr)
			}
		case self.Provider:
			if !r.Provider && (r.Layer == 0 || r.Layer == mn.Layers-1) {
				out = append(out, r.Addr)
			}
		default:
			if !r.Provider && r.Layer == self.Layer+1 {
				out = append(out, r.Addr)
			}
		}
	}
	return out
}

// privacyConfig is the part of a node's privacy config the network
// decides: role and place, the document, the network's keys and epochs,
// and, unless the stack sets them, the rates. own is the stack's privacy
// config, whose rate and tuning keys win.
func (mn *mixNetwork) privacyConfig(own map[string]any, self relay, client bool) {
	auths := make([]any, len(mn.Authorities))
	for i, a := range mn.Authorities {
		auths[i] = a
	}
	set := map[string]any{
		"overlay":      mn.Overlay,
		"pki_document": mn.documentPath(),
		"network_id":   mn.NetworkID,
		"authorities":  auths,
		"layers":       mn.Layers,
		"epoch_period": (time.Duration(mn.EpochPeriod) * time.Second).String(),
		"genesis_unix": mn.GenesisUnix,
	}
	if client {
		set["role"] = mixnet.RoleClient
		set["provider"] = self.Name
	} else {
		set["role"] = mixnet.RoleMix
		if self.Provider {
			set["role"] = mixnet.RoleProvider
		}
		set["name"] = self.Name
		set["keys_path"] = mn.keysPath(self.Name)
	}
	for k, v := range set {
		own[k] = v
	}
	defaults := map[string]any{
		"lambda_p": mn.Rates.LambdaP, "lambda_l": mn.Rates.LambdaL, "lambda_d": mn.Rates.LambdaD,
		"lambda_m": mn.Rates.LambdaM, "mu": mn.Rates.Mu,
	}
	if client {
		defaults["pull_interval"] = mn.PullInterval
		// A round trip takes about 2/λP + 8/μ + a pull interval, half a
		// second at the test rates, not the minute the plugin's
		// default allows for.
		defaults["ack_timeout"] = testAckTimeout
	} else {
		defaults["replay_expected_tags"] = mn.ReplayTags
		defaults["durability"] = "normal"
		if self.Provider && mn.SharedPullRate > 0 {
			defaults["shared_pull_rate"] = mn.SharedPullRate
			defaults["shared_pull_burst"] = int64(max(100, mn.SharedPullRate))
		}
	}
	for k, v := range defaults {
		if _, ok := own[k]; !ok {
			own[k] = v
		}
	}
}

// p2pConfig makes a node's overlay listen where the document says (a
// relay) and keep connected to the relays it sends to.
func (mn *mixNetwork) p2pConfig(lcfg map[string]any, self relay, client bool) {
	if !client {
		if mn.Overlay == "devp2p" {
			lcfg["listen"] = fmt.Sprintf("127.0.0.1:%d", self.Port)
		} else {
			lcfg["listen"] = []any{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", self.Port)}
		}
	}
	key := "bootstrap"
	if mn.Overlay == "devp2p" {
		key = "static"
	}
	var list []any
	if l, ok := lcfg[key].([]any); ok {
		list = l
	}
	for _, a := range mn.dials(self, client) {
		list = append(list, a)
	}
	if len(list) > 0 {
		lcfg[key] = list
	}
}

// stackMixnet reads what the network needs of the stack's own privacy
// config: the geometry, and the rates, epoch and pull interval, which it
// may set (they then win over o's). The stack's layers must agree with
// o.Layers when both are set.
func stackMixnet(st *stack, o MixnetOptions) (layers, userPayload int, r rates, epoch time.Duration, pull string, err error) {
	l, _ := section(st.raw, "layers")["privacy"].(map[string]any)
	own, _ := l["config"].(map[string]any)
	num := func(key string, d float64) (float64, error) {
		switch v := own[key].(type) {
		case nil:
			return d, nil
		case int:
			return float64(v), nil
		case int64:
			return float64(v), nil
		case float64:
			return v, nil
		}
		return 0, fmt.Errorf("testnet: stack %s: layers.privacy.config.%s is %v, not a number", st.path, key, own[key])
	}
	dur := func(key string, d time.Duration) (time.Duration, error) {
		switch v := own[key].(type) {
		case nil:
			return d, nil
		case string:
			t, err := time.ParseDuration(v)
			if err != nil {
				return 0, fmt.Errorf("testnet: stack %s: layers.privacy.config.%s: %w", st.path, key, err)
			}
			return t, nil
		}
		return 0, fmt.Errorf("testnet: stack %s: layers.privacy.config.%s is %v, not a duration", st.path, key, own[key])
	}
	stackLayers, err := num("layers", 0)
	if err != nil {
		return
	}
	switch layers = int(stackLayers); {
	case layers == 0:
		layers = o.Layers
	case o.Layers != 0 && o.Layers != layers:
		err = fmt.Errorf("testnet: the stack's layers.privacy.config.layers is %d and MixnetOptions.Layers %d", layers, o.Layers)
		return
	}
	if layers == 0 {
		layers = DefaultMixLayers
	}
	o = o.withDefaults()
	var f [6]float64
	for i, k := range []struct {
		key string
		d   float64
	}{{"user_payload", 2000}, {"lambda_p", o.LambdaP}, {"lambda_l", o.LambdaL}, {"lambda_d", o.LambdaD}, {"lambda_m", o.LambdaM}, {"mu", o.Mu}} {
		if f[i], err = num(k.key, k.d); err != nil {
			return
		}
	}
	userPayload = int(f[0])
	r = rates{LambdaP: f[1], LambdaL: f[2], LambdaD: f[3], LambdaM: f[4], Mu: f[5]}
	if epoch, err = dur("epoch_period", o.EpochPeriod); err != nil {
		return
	}
	var p time.Duration
	if p, err = dur("pull_interval", o.PullInterval); err != nil {
		return
	}
	return layers, userPayload, r, epoch, p.String(), nil
}

// planMixnet generates the testnet's mixnet in dir/mixnet, or reads the
// one a former run left there: an authority key, each relay's identity,
// Sphinx key chain secret, overlay key and loopback port, the signed PKI
// document naming them, each relay's keys file, and the relays' overlay
// keys in their data directories, where their p2p layer finds them.
// mixnet/authority.json keeps the authority's key and the relays'
// identities, from which the testnet publishes each epoch's document while
// it runs (runAuthority); a network made before that file existed is used
// only as long as its document is (the epoch it was made in and the
// next).
func planMixnet(st *stack, dir string, opts MixnetOptions, clients int) (*mixNetwork, error) {
	if opts.Layers < 0 || opts.MixesPerLayer < 0 || opts.Providers < 0 || opts.EpochPeriod < 0 {
		return nil, fmt.Errorf("testnet: a mixnet of %d layers of %d mixes, %d providers and %v epochs; want positive numbers (or 0 for the defaults)", opts.Layers, opts.MixesPerLayer, opts.Providers, opts.EpochPeriod)
	}
	o := opts.withDefaults()
	overlay := st.plugin("p2p")
	if overlay != "libp2p" && overlay != "devp2p" {
		return nil, fmt.Errorf("testnet: the mixnet runs over libp2p or devp2p, and the stack's p2p layer is %q", overlay)
	}
	mdir := filepath.Join(dir, mixnetDir)
	if mn, err := loadMixnet(mdir); err == nil {
		return mn, mn.checkCurrent(overlay)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	layers, userPayload, r, period, pull, err := stackMixnet(st, opts)
	if err != nil {
		return nil, err
	}
	if period%time.Second != 0 || period < time.Second {
		return nil, fmt.Errorf("testnet: the mixnet's epoch period %v is not a whole number of seconds", period)
	}
	geo, err := sphinx.NewGeometry(userPayload, layers+2, true)
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet geometry: %w", err)
	}
	epochs, err := pki.NewEpochs(period, time.Unix(pki.DefaultGenesisUnix, 0), nil)
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet epochs: %w", err)
	}
	mn := &mixNetwork{
		NetworkID: "strata-testnet-" + hex.EncodeToString(random(8)), Overlay: overlay, Layers: layers,
		EpochPeriod: int64(period / time.Second), GenesisUnix: pki.DefaultGenesisUnix, Epoch: epochs.At(time.Now()),
		Rates: r, PullInterval: pull, dir: mdir,
	}
	total := layers*o.MixesPerLayer + o.Providers
	mn.ReplayTags = replayTags(clients, total, min(o.MixesPerLayer, o.Providers), r, period)
	if d, err := time.ParseDuration(pull); err == nil && d > 0 {
		mn.SharedPullRate = sharedPullRate(clients, d)
	}
	nodes := make([]pkitestnet.Node, total)
	ports, err := freePorts(total)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		rl := relay{Layer: -1, Provider: true, Port: ports[i]}
		if i < layers*o.MixesPerLayer {
			rl.Layer, rl.Provider = i/o.MixesPerLayer, false
			rl.Name = fmt.Sprintf("mix-%d-%d", rl.Layer, i%o.MixesPerLayer)
		} else {
			rl.Name = fmt.Sprintf("provider-%d", i-layers*o.MixesPerLayer)
		}
		n, addr, err := overlayIdentity(rl.Name, overlay, rl.Port, filepath.Join(dir, rl.Name))
		if err != nil {
			return nil, err
		}
		rl.Addr = addr
		nodes[i] = n
		mn.Relays = append(mn.Relays, rl)
	}
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet authority key: %w", err)
	}
	defer clear(auth)
	mn.Authorities = []string{hex.EncodeToString(auth.Public().(ed25519.PublicKey))}
	params := pkitestnet.DefaultParams(loopix.GeometryID(geo))
	params.LambdaPPerSecond, params.LambdaLPerSecond, params.LambdaDPerSecond = r.LambdaP, r.LambdaL, r.LambdaD
	params.LambdaMPerSecond, params.MuPerSecond = r.LambdaM, r.Mu
	net, err := pkitestnet.Generate(pkitestnet.Config{
		NetworkID: mn.NetworkID, Epoch: mn.Epoch, Layers: layers, MixesPerLayer: o.MixesPerLayer, Providers: o.Providers,
		Params: params, Authorities: []ed25519.PrivateKey{auth}, Nodes: nodes,
	})
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet PKI document: %w", err)
	}
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %w", err)
	}
	if err := mn.saveAuthority(auth, net.Members); err != nil {
		return nil, err
	}
	for _, m := range net.Members {
		err := mixnet.WriteRelayKeys(mn.keysPath(m.Name), m.KeySecret, mn.Epoch)
		clear(m.KeySecret)
		clear(m.Identity)
		if err != nil {
			return nil, fmt.Errorf("testnet: mixnet: %s's keys: %w", m.Name, err)
		}
	}
	if err := os.WriteFile(mn.documentPath(), net.Encoded, 0o644); err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %w", err)
	}
	b, err := json.MarshalIndent(mn, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %w", err)
	}
	// Written last: a network.json means the network is whole.
	if err := os.WriteFile(filepath.Join(mdir, "network.json"), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %w", err)
	}
	return mn, nil
}

// replayTags sizes the relays' replay filters for an epoch of the
// network's traffic, twice over: every client's packets (λP + λL + λD)
// and every relay's loops (λM) cross one relay of each layer and a
// provider or two, spread over the perPosition relays of a layer (or the
// providers); within [minReplayTags, maxReplayTags].
func replayTags(clients, relays, perPosition int, r rates, epoch time.Duration) int64 {
	perSecond := float64(clients)*(r.LambdaP+r.LambdaL+r.LambdaD) + float64(relays)*r.LambdaM
	tags := 2 * perSecond * epoch.Seconds() / float64(max(perPosition, 1))
	return int64(min(max(tags, minReplayTags), maxReplayTags))
}

// defaultSharedPullRate is the plugin's shared_pull_rate default.
const defaultSharedPullRate = 20

// sharedPullRate is a provider's shared_pull_rate for a network of
// clients pulling every pull: every client may follow one shared mailbox
// (a group of them all) at its pull schedule, and pull again at once while
// it catches up, so twice that, at least the plugin's default. The
// plugin's default (20/s) is for a public chat's anonymous readers at the
// default pull_interval of 5 s; at the testnet's 200 ms it would answer
// one pull in five of a group of 20.
func sharedPullRate(clients int, pull time.Duration) float64 {
	return max(defaultSharedPullRate, math.Ceil(2*float64(clients)/pull.Seconds()))
}

// loadMixnet reads network.json of a former run.
func loadMixnet(mdir string) (*mixNetwork, error) {
	b, err := os.ReadFile(filepath.Join(mdir, "network.json"))
	if err != nil {
		return nil, err
	}
	var mn mixNetwork
	if err := json.Unmarshal(b, &mn); err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %s: %w", filepath.Join(mdir, "network.json"), err)
	}
	mn.dir = mdir
	return &mn, nil
}

// checkCurrent refuses a former run's network that the stack cannot use
// or whose document the nodes would refuse now.
func (mn *mixNetwork) checkCurrent(overlay string) error {
	if mn.Overlay != overlay {
		return fmt.Errorf("testnet: the mixnet in %s runs over %s, and this stack over %s; use another directory", mn.dir, mn.Overlay, overlay)
	}
	epochs, err := pki.NewEpochs(time.Duration(mn.EpochPeriod)*time.Second, time.Unix(mn.GenesisUnix, 0), nil)
	if err != nil {
		return fmt.Errorf("testnet: mixnet in %s: %w", mn.dir, err)
	}
	if now := epochs.At(time.Now()); now > mn.Epoch+1 && !mn.hasAuthority() {
		return fmt.Errorf("testnet: the mixnet in %s has a document for epoch %d, and this is epoch %d: its nodes would refuse it; use a new directory", mn.dir, mn.Epoch, now)
	}
	return nil
}

// overlayIdentity makes a relay's identity key and overlay key, writes
// the overlay key where the node's p2p layer keeps it
// (<data_dir>/p2p/<plugin>/), and returns the node for the generator and
// the address others dial. The identity key doubles as the libp2p host key
// (as the generator does); devp2p gets a secp256k1 key. The generator
// publishes both overlays' addresses on the one port; only the stack's
// overlay listens there.
func overlayIdentity(name, overlay string, port int, dataDir string) (pkitestnet.Node, string, error) {
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: identity: %w", name, err)
	}
	lkey, err := crypto.UnmarshalEd25519PrivateKey(id)
	if err != nil {
		return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: libp2p key: %w", name, err)
	}
	pid, err := peer.IDFromPrivateKey(lkey)
	if err != nil {
		return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: libp2p peer id: %w", name, err)
	}
	dkey, err := ethcrypto.GenerateKey()
	if err != nil {
		return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: devp2p key: %w", name, err)
	}
	n := pkitestnet.Node{
		Name: name, Identity: id,
		Libp2pPeerID: pid.String(), Libp2pAddrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)},
		Enode:     enode.NewV4(&dkey.PublicKey, net.IPv4(127, 0, 0, 1), port, port).URLv4(),
		Devp2pKey: dkey,
	}
	var file, addr string
	var secret []byte
	switch overlay {
	case "libp2p":
		if secret, err = crypto.MarshalPrivateKey(lkey); err != nil {
			return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: libp2p key: %w", name, err)
		}
		file, addr = filepath.Join(dataDir, "p2p", "libp2p", "identity.key"), n.Libp2pAddrs[0]+"/p2p/"+n.Libp2pPeerID
	default:
		secret = []byte(hex.EncodeToString(ethcrypto.FromECDSA(dkey)))
		file, addr = filepath.Join(dataDir, "p2p", "devp2p", "nodekey"), n.Enode
	}
	defer clear(secret)
	if err := writeSecret(file, secret); err != nil {
		return pkitestnet.Node{}, "", fmt.Errorf("testnet: %s: overlay key: %w", name, err)
	}
	return n, addr, nil
}

// writeSecret writes a key file (0600) in a folder of its own (0700); it
// refuses to replace one, which would change a node's identity.
func writeSecret(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// freePorts returns n TCP ports of 127.0.0.1 that were free a moment ago
// (all held at once, so they differ).
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testnet: mixnet: a free port: %w", err)
		}
		ls = append(ls, l)
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// random returns n bytes from crypto/rand.
func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// mixConfig gives a mixnet node's config tree its place in the mixnet:
// its privacy config and the overlay addresses it listens on and dials.
func (n *Net) mixConfig(m *Member, tree map[string]any) {
	self, ok := n.mixAt[m]
	if !ok {
		return
	}
	client := m.Role == RoleClient
	layers := section(tree, "layers")
	for _, l := range []string{"privacy", "p2p"} {
		ls, ok := layers[l].(map[string]any)
		if !ok {
			continue
		}
		lcfg, ok := ls["config"].(map[string]any)
		if !ok {
			lcfg = map[string]any{}
			ls["config"] = lcfg
		}
		if l == "privacy" {
			n.mix.privacyConfig(lcfg, self, client)
		} else {
			n.mix.p2pConfig(lcfg, self, client)
		}
	}
}
