package testnet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// RelaySecrets are what the publisher needs of one relay to publish its
// descriptor for later epochs: its identity key, which signs the
// descriptor, and the secret its Sphinx key chain starts from at
// KeyEpoch, which gives its public keys.
type RelaySecrets struct {
	Identity  ed25519.PrivateKey
	KeySecret []byte
	KeyEpoch  uint64
}

// Publisher is a test network's authority after the first document: it
// makes and signs the document of any later epoch, every relay's
// descriptor carrying the Sphinx keys of the epoch before the document's
// (for a node that takes up a document published ahead, while the
// previous epoch still runs), the document's epoch and the
// DefaultKeyEpochs-1 after it. It holds the authority keys, the relays'
// identity keys and their key chains, advanced as documents are made so
// that the keys of epochs before the last document's previous one can no
// longer be derived. A Publisher is not safe for concurrent use.
type Publisher struct {
	template *pki.Document
	relays   map[string]*publishedRelay
	auths    []ed25519.PrivateKey
}

type publishedRelay struct {
	identity ed25519.PrivateKey
	chain    *pki.KeyChain
}

// NewPublisher returns a publisher of the network template describes (any
// of its documents: the network id, the parameters and every relay's
// place and addresses are taken from it, its epoch and keys are not).
// secrets has an entry for every relay of template, by name; authorities
// sign every document. The keys are copied; the caller may erase its own.
func NewPublisher(template *pki.Document, secrets map[string]RelaySecrets, authorities []ed25519.PrivateKey) (*Publisher, error) {
	if len(authorities) == 0 {
		return nil, fmt.Errorf("%w: no authority key", pki.ErrConfig)
	}
	p := &Publisher{template: template, relays: map[string]*publishedRelay{}}
	for _, a := range authorities {
		if len(a) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: authority key is %d bytes", pki.ErrConfig, len(a))
		}
		p.auths = append(p.auths, append(ed25519.PrivateKey(nil), a...))
	}
	for _, sd := range template.Nodes() {
		s, ok := secrets[sd.Name]
		if !ok {
			return nil, fmt.Errorf("%w: no secrets for relay %q", pki.ErrConfig, sd.Name)
		}
		if len(s.Identity) != ed25519.PrivateKeySize || !s.Identity.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(sd.IdentityKey)) {
			return nil, fmt.Errorf("%w: relay %q: the identity key is not the descriptor's", pki.ErrConfig, sd.Name)
		}
		chain, err := pki.NewKeyChain(s.KeySecret, s.KeyEpoch)
		if err != nil {
			return nil, fmt.Errorf("relay %q: %w", sd.Name, err)
		}
		p.relays[sd.Name] = &publishedRelay{identity: append(ed25519.PrivateKey(nil), s.Identity...), chain: chain}
	}
	return p, nil
}

// Erase overwrites the keys the publisher holds; it can make no document
// afterwards.
func (p *Publisher) Erase() {
	for _, a := range p.auths {
		clear(a)
	}
	for _, r := range p.relays {
		clear(r.identity)
		// A chain far past any epoch in use derives no key that was
		// published.
		_ = r.chain.Advance(r.chain.Epoch() + pki.MaxKeyChainAhead)
	}
	p.auths, p.relays = nil, nil
}

// Document makes the signed document for epoch, encoded. Epochs must not
// go back by more than one: making the document of epoch e erases every
// relay's keys before e-1.
func (p *Publisher) Document(epoch uint64) ([]byte, error) {
	if len(p.auths) == 0 {
		return nil, fmt.Errorf("%w: the publisher's keys were erased", pki.ErrConfig)
	}
	doc := &pki.Document{
		Version:   pki.DocumentVersion,
		NetworkID: p.template.NetworkID,
		Epoch:     epoch,
		Params:    p.template.Params,
		Layers:    make([][]*pki.SignedDescriptor, len(p.template.Layers)),
	}
	for _, tsd := range p.template.Nodes() {
		r := p.relays[tsd.Name]
		d := tsd.Descriptor
		d.SphinxKeys = nil
		from := epoch
		if from > 0 && from-1 >= r.chain.Epoch() {
			from--
		}
		for e := from; e < epoch+DefaultKeyEpochs; e++ {
			kp, err := r.chain.Key(e)
			if err != nil {
				return nil, fmt.Errorf("document for epoch %d: relay %q: %w", epoch, d.Name, err)
			}
			d.SphinxKeys = append(d.SphinxKeys, pki.EpochKey{Epoch: e, Public: kp.Public})
			clear(kp.Private[:])
		}
		sd, err := pki.SignDescriptor(&d, r.identity)
		if err != nil {
			return nil, fmt.Errorf("document for epoch %d: relay %q: %w", epoch, d.Name, err)
		}
		if d.Provider {
			doc.Providers = append(doc.Providers, sd)
		} else {
			doc.Layers[d.Layer] = append(doc.Layers[d.Layer], sd)
		}
	}
	doc.Sort()
	signed, err := pki.NewSignedDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("document for epoch %d: %w", epoch, err)
	}
	for i, a := range p.auths {
		if err := signed.Sign(a); err != nil {
			return nil, fmt.Errorf("document for epoch %d: authority %d: %w", epoch, i, err)
		}
	}
	if epoch > 0 {
		for _, r := range p.relays {
			if r.chain.Epoch() < epoch-1 {
				if err := r.chain.Advance(epoch - 1); err != nil {
					return nil, fmt.Errorf("document for epoch %d: %w", epoch, err)
				}
			}
		}
	}
	return signed.Marshal(), nil
}

// Run keeps the document in path current until ctx ends: at once the
// current epoch's (or, past the epoch's last lead, the next one's) unless
// path already holds that epoch's or a later one, and then each next
// epoch's lead before the epoch begins, so that a node that reads the
// file at an epoch boundary finds the new document there. Each document
// replaces the file atomically. published, if not nil, is called with the
// epoch of every document written. Run returns nil when ctx ends, or the
// first error.
func (p *Publisher) Run(ctx context.Context, path string, epochs *pki.Epochs, lead time.Duration, published func(epoch uint64)) error {
	if lead <= 0 || lead >= epochs.Period() {
		return fmt.Errorf("%w: lead %v not within the epoch period %v", pki.ErrConfig, lead, epochs.Period())
	}
	have := uint64(0)
	if b, err := os.ReadFile(path); err == nil {
		if sd, err := pki.ParseSignedDocument(b); err == nil && sd.Document.NetworkID == p.template.NetworkID {
			have = sd.Document.Epoch
		}
	}
	for {
		now := time.Now()
		want := epochs.At(now)
		if !now.Before(epochs.Start(want + 1).Add(-lead)) {
			want++
		}
		if want > have {
			b, err := p.Document(want)
			if err != nil {
				return err
			}
			if err := WriteDocument(path, b); err != nil {
				return err
			}
			have = want
			if published != nil {
				published(want)
			}
		}
		t := time.NewTimer(time.Until(epochs.Start(have + 1).Add(-lead)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// WriteDocument replaces the file at path with b atomically (a new file
// in the same folder, synced, then renamed over it), so a node reading
// it sees the old document or the new one, never part of one.
func WriteDocument(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write document: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write document: %w", err)
	}
	return nil
}
