// Package testnet generates signed PKI documents for local mixnets: the
// authority keys sign, the mix layers and providers get identities,
// Sphinx key chains and overlay addresses (given or generated from a
// reader, which a test seeds for reproducible networks).
package testnet

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// DefaultBasePort is the first TCP port of generated addresses.
const DefaultBasePort = 30400

// DefaultKeyEpochs is how many epochs of Sphinx keys each node publishes,
// from the document's epoch: the epoch, the next, and one more so that a
// client sampling delays near a boundary finds a key (as Katzenpost).
const DefaultKeyEpochs = 3

// DefaultParams returns Katzenpost's default traffic rates converted to
// per second (λP 1/s, λL 0.5/s, λD 0.5/s, λM 0.2/s, μ 5/s, a mean hop
// delay of 200 ms) with geometryID.
func DefaultParams(geometryID []byte) pki.Params {
	return pki.Params{
		LambdaPPerSecond: 1,
		LambdaLPerSecond: 0.5,
		LambdaDPerSecond: 0.5,
		LambdaMPerSecond: 0.2,
		MuPerSecond:      5,
		GeometryID:       append([]byte(nil), geometryID...),
	}
}

// Node is what a node brings to the network. Zero fields are generated.
type Node struct {
	// Name is the node's name; "mix-<layer>-<i>" or "provider-<i>" if
	// empty.
	Name string
	// Identity is the node's Ed25519 identity key; generated if nil. A
	// generated node also uses it as its libp2p host key.
	Identity ed25519.PrivateKey
	// KeySecret is the secret (≥ 32 bytes) its Sphinx KeyChain starts
	// from at the document's epoch; generated if nil.
	KeySecret []byte
	// Libp2pPeerID and Libp2pAddrs are its libp2p addresses; if both are
	// empty, the peer id of Identity and /ip4/127.0.0.1/tcp/<port> are
	// used.
	Libp2pPeerID string
	Libp2pAddrs  []string
	// Enode is its devp2p enode URL; if empty (and Devp2pKey nil) a
	// secp256k1 key is generated and the URL points at 127.0.0.1:<port>.
	Enode string
	// Devp2pKey is its devp2p secp256k1 key, from which Enode is made if
	// Enode is empty.
	Devp2pKey *ecdsa.PrivateKey
}

// Config describes the network to generate.
type Config struct {
	// NetworkID names the network.
	NetworkID string
	// Epoch is the epoch the document is for.
	Epoch uint64
	// Layers, MixesPerLayer and Providers shape the topology (each ≥ 1).
	Layers, MixesPerLayer, Providers int
	// Params are the traffic parameters (see DefaultParams).
	Params pki.Params
	// Authorities sign the document, each in turn (at least one).
	Authorities []ed25519.PrivateKey
	// KeyEpochs is how many epochs of Sphinx keys, from Epoch, each node
	// publishes: 2..pki.MaxSphinxKeys, DefaultKeyEpochs if zero.
	KeyEpochs int
	// Nodes, if not empty, has exactly Layers·MixesPerLayer + Providers
	// entries: layer 0's mixes, then layer 1's, …, then the providers.
	Nodes []Node
	// Rand supplies every generated key; crypto/rand if nil. A seeded
	// deterministic reader gives a reproducible network.
	Rand io.Reader
	// BasePort is the TCP port of the first generated address (the i-th
	// node gets BasePort+i); DefaultBasePort if zero.
	BasePort int
}

// Member is one generated node: its configuration with every generated
// field filled in, its place, its signed descriptor and its key chain.
type Member struct {
	Node
	// Layer is its mix layer, or pki.LayerProvider.
	Layer uint8
	// Provider is true for providers.
	Provider bool
	// Descriptor is its self-signed descriptor as published.
	Descriptor *pki.SignedDescriptor
	// Keys is its Sphinx key chain, at the document's epoch.
	Keys *pki.KeyChain
}

// Testnet is a generated network.
type Testnet struct {
	// Document is the signed document.
	Document *pki.SignedDocument
	// Encoded is Document's encoding, what Verify takes.
	Encoded []byte
	// Members are the nodes in Config.Nodes order.
	Members []Member
}

// Generate builds, signs and checks a network document.
func Generate(cfg Config) (*Testnet, error) {
	if cfg.Layers < 1 || cfg.Layers > pki.MaxLayers || cfg.MixesPerLayer < 1 || cfg.Providers < 1 {
		return nil, fmt.Errorf("%w: %d layers of %d mixes and %d providers", pki.ErrConfig, cfg.Layers, cfg.MixesPerLayer, cfg.Providers)
	}
	total := cfg.Layers*cfg.MixesPerLayer + cfg.Providers
	if total > pki.MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes, over %d", pki.ErrConfig, total, pki.MaxNodes)
	}
	if len(cfg.Nodes) != 0 && len(cfg.Nodes) != total {
		return nil, fmt.Errorf("%w: %d nodes given for %d places", pki.ErrConfig, len(cfg.Nodes), total)
	}
	if len(cfg.Authorities) == 0 {
		return nil, fmt.Errorf("%w: no authority key", pki.ErrConfig)
	}
	keyEpochs := cfg.KeyEpochs
	if keyEpochs == 0 {
		keyEpochs = DefaultKeyEpochs
	}
	if keyEpochs < 2 || keyEpochs > pki.MaxSphinxKeys {
		return nil, fmt.Errorf("%w: key epochs %d not in 2..%d", pki.ErrConfig, keyEpochs, pki.MaxSphinxKeys)
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	port := cfg.BasePort
	if port == 0 {
		port = DefaultBasePort
	}
	doc := &pki.Document{
		Version:   pki.DocumentVersion,
		NetworkID: cfg.NetworkID,
		Epoch:     cfg.Epoch,
		Params:    cfg.Params,
		Layers:    make([][]*pki.SignedDescriptor, cfg.Layers),
	}
	members := make([]Member, total)
	for i := range total {
		var n Node
		if len(cfg.Nodes) > 0 {
			n = cfg.Nodes[i]
		}
		m := Member{Layer: pki.LayerProvider, Provider: true}
		if i < cfg.Layers*cfg.MixesPerLayer {
			m.Layer, m.Provider = uint8(i/cfg.MixesPerLayer), false
		}
		if n.Name == "" {
			if m.Provider {
				n.Name = fmt.Sprintf("provider-%d", i-cfg.Layers*cfg.MixesPerLayer)
			} else {
				n.Name = fmt.Sprintf("mix-%d-%d", m.Layer, i%cfg.MixesPerLayer)
			}
		}
		if err := fill(&n, r, port+i); err != nil {
			return nil, fmt.Errorf("node %d (%s): %w", i, n.Name, err)
		}
		m.Node = n
		chain, err := pki.NewKeyChain(n.KeySecret, cfg.Epoch)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		m.Keys = chain
		desc := &pki.Descriptor{
			Version:      pki.DescriptorVersion,
			NetworkID:    cfg.NetworkID,
			Name:         n.Name,
			IdentityKey:  n.Identity.Public().(ed25519.PublicKey),
			Provider:     m.Provider,
			Layer:        m.Layer,
			Libp2pPeerID: n.Libp2pPeerID,
			Libp2pAddrs:  n.Libp2pAddrs,
			Enode:        n.Enode,
		}
		for e := cfg.Epoch; e < cfg.Epoch+uint64(keyEpochs); e++ {
			kp, err := chain.Key(e)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n.Name, err)
			}
			desc.SphinxKeys = append(desc.SphinxKeys, pki.EpochKey{Epoch: e, Public: kp.Public})
		}
		sd, err := pki.SignDescriptor(desc, n.Identity)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		m.Descriptor = sd
		if m.Provider {
			doc.Providers = append(doc.Providers, sd)
		} else {
			doc.Layers[m.Layer] = append(doc.Layers[m.Layer], sd)
		}
		members[i] = m
	}
	doc.Sort()
	signed, err := pki.NewSignedDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("generate testnet: %w", err)
	}
	for i, a := range cfg.Authorities {
		if err := signed.Sign(a); err != nil {
			return nil, fmt.Errorf("generate testnet: authority %d: %w", i, err)
		}
	}
	return &Testnet{Document: signed, Encoded: signed.Marshal(), Members: members}, nil
}

// fill generates the node's missing keys and addresses.
func fill(n *Node, r io.Reader, port int) error {
	if n.Identity == nil {
		_, priv, err := ed25519.GenerateKey(r)
		if err != nil {
			return fmt.Errorf("identity key: %w", err)
		}
		n.Identity = priv
	}
	if len(n.Identity) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: identity key is %d bytes", pki.ErrConfig, len(n.Identity))
	}
	if n.KeySecret == nil {
		n.KeySecret = make([]byte, 32)
		if _, err := io.ReadFull(r, n.KeySecret); err != nil {
			return fmt.Errorf("key secret: %w", err)
		}
	}
	if n.Libp2pPeerID == "" && len(n.Libp2pAddrs) == 0 {
		pub, err := crypto.UnmarshalEd25519PublicKey(n.Identity.Public().(ed25519.PublicKey))
		if err != nil {
			return fmt.Errorf("libp2p key: %w", err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			return fmt.Errorf("libp2p peer id: %w", err)
		}
		n.Libp2pPeerID = id.String()
		n.Libp2pAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	}
	if n.Enode == "" {
		if n.Devp2pKey == nil {
			// ToECDSA of 32 drawn bytes rather than ecdsa.GenerateKey,
			// which mixes extra randomness in and would make a seeded
			// network irreproducible.
			for try := 0; n.Devp2pKey == nil; try++ {
				if try == 8 {
					return errors.New("devp2p key: the random source gives only invalid scalars")
				}
				var seed [32]byte
				if _, err := io.ReadFull(r, seed[:]); err != nil {
					return fmt.Errorf("devp2p key: %w", err)
				}
				if k, err := ethcrypto.ToECDSA(seed[:]); err == nil {
					n.Devp2pKey = k
				}
			}
		}
		n.Enode = enode.NewV4(&n.Devp2pKey.PublicKey, net.IPv4(127, 0, 0, 1), port, port).URLv4()
	}
	return nil
}
