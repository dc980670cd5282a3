package loopix

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// PeerID is an overlay peer id as the layer below gives it (a libp2p peer
// id's bytes, a devp2p node id), opaque to the engines.
type PeerID string

// ErrNoRoute reports that no path could be built: a node lacks a Sphinx
// key for the epoch a packet would reach it in, or the directory lacks a
// node the path needs.
var ErrNoRoute = errors.New("loopix: no route")

// Node is one relay of the directory.
type Node struct {
	// ID is the node's Sphinx node id.
	ID sphinx.NodeID
	// Peer is its overlay peer id.
	Peer PeerID
	// Layer is its mix layer, or -1 for a provider.
	Layer int
	// Descriptor is its signed descriptor.
	Descriptor *pki.SignedDescriptor
}

// Name returns the node's name from its descriptor.
func (n *Node) Name() string { return n.Descriptor.Name }

// Directory is a verified PKI document indexed for routing: the mix
// layers and providers with their node ids and overlay peer ids.
type Directory struct {
	// Document is the verified document.
	Document  *pki.Document
	Layers    [][]*Node
	Providers []*Node
	byID      map[sphinx.NodeID]*Node
	byPeer    map[PeerID]*Node
}

// NewDirectory indexes a verified document. peerOf gives a descriptor's
// overlay peer id on the overlay in use (its libp2p peer id or its devp2p
// node id); a node without one is an error.
func NewDirectory(doc *pki.Document, peerOf func(*pki.Descriptor) (PeerID, error)) (*Directory, error) {
	d := &Directory{Document: doc, byID: map[sphinx.NodeID]*Node{}, byPeer: map[PeerID]*Node{}}
	add := func(sd *pki.SignedDescriptor, layer int) (*Node, error) {
		p, err := peerOf(&sd.Descriptor)
		if err != nil {
			return nil, fmt.Errorf("loopix: directory: node %q: %w", sd.Name, err)
		}
		n := &Node{ID: sd.NodeID(), Peer: p, Layer: layer, Descriptor: sd}
		if _, dup := d.byPeer[p]; dup {
			return nil, fmt.Errorf("loopix: directory: node %q: overlay peer id used twice", sd.Name)
		}
		d.byID[n.ID], d.byPeer[p] = n, n
		return n, nil
	}
	for i, layer := range doc.Layers {
		var nodes []*Node
		for _, sd := range layer {
			n, err := add(sd, i)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, n)
		}
		d.Layers = append(d.Layers, nodes)
	}
	for _, sd := range doc.Providers {
		n, err := add(sd, -1)
		if err != nil {
			return nil, err
		}
		d.Providers = append(d.Providers, n)
	}
	return d, nil
}

// ByID returns the node with Sphinx node id id.
func (d *Directory) ByID(id sphinx.NodeID) (*Node, bool) {
	n, ok := d.byID[id]
	return n, ok
}

// ByPeer returns the node behind overlay peer id p.
func (d *Directory) ByPeer(p PeerID) (*Node, bool) {
	n, ok := d.byPeer[p]
	return n, ok
}

// ByName returns the node named name.
func (d *Directory) ByName(name string) (*Node, bool) {
	for _, n := range d.byID {
		if n.Name() == name {
			return n, true
		}
	}
	return nil, false
}

// randomMixes picks one mix of every layer, uniformly.
func (d *Directory) randomMixes(g *rng) ([]*Node, error) {
	out := make([]*Node, len(d.Layers))
	for i, layer := range d.Layers {
		j, err := g.intn(len(layer))
		if err != nil {
			return nil, err
		}
		out[i] = layer[j]
	}
	return out, nil
}

// randomProvider picks a provider uniformly.
func (d *Directory) randomProvider(g *rng) (*Node, error) {
	j, err := g.intn(len(d.Providers))
	if err != nil {
		return nil, err
	}
	return d.Providers[j], nil
}

// buildPath gives every hop but the last a NodeDelay drawn from Exp(mu)
// and the Sphinx key of the epoch the packet reaches it in (sent at now,
// held the sampled delays at the earlier hops), and the last hop the
// terminal commands. It returns the path and the total delay.
func buildPath(g *rng, epochs *pki.Epochs, mu float64, now time.Time, hops []*Node, terminal sphinx.Commands) ([]sphinx.PathHop, time.Duration, error) {
	path := make([]sphinx.PathHop, len(hops))
	at := now
	var total time.Duration
	for i, n := range hops {
		epoch := epochs.At(at)
		key, ok := n.Descriptor.SphinxKey(epoch)
		if !ok {
			return nil, 0, fmt.Errorf("%w: %q has no key for epoch %d", ErrNoRoute, n.Name(), epoch)
		}
		path[i] = sphinx.PathHop{ID: n.ID, PublicKey: sphinx.PublicKey(key)}
		if i == len(hops)-1 {
			path[i].Commands = terminal
			break
		}
		d, err := g.exp(mu)
		if err != nil {
			return nil, 0, err
		}
		ms := d.Milliseconds()
		d = time.Duration(ms) * time.Millisecond
		path[i].Commands = sphinx.Commands{sphinx.NodeDelay{Delay: uint32(ms)}}
		at = at.Add(d)
		total += d
	}
	return path, total, nil
}

// GeometryID is the PKI document's geometry id for g: its parameters in
// text, e.g. "x25519-sphinx/hops=5/user=2000/surb=1". Nodes refuse a
// document whose geometry id is not their own.
func GeometryID(g *sphinx.Geometry) []byte {
	surb := 0
	if g.WithSURB {
		surb = 1
	}
	return fmt.Appendf(nil, "x25519-sphinx/hops=%d/user=%d/surb=%d", g.NrHops, g.UserForwardPayloadLength, surb)
}
