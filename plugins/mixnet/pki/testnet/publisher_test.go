package testnet

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// publisherFor returns a generated network and a publisher of it.
func publisherFor(t *testing.T, epoch uint64) (*Testnet, *Publisher, ed25519.PrivateKey) {
	t.Helper()
	r := seeded(3)
	_, auth, _ := ed25519.GenerateKey(r)
	net, err := Generate(Config{
		NetworkID: "t", Epoch: epoch, Layers: 3, MixesPerLayer: 2, Providers: 2,
		Params: DefaultParams([]byte("g")), Authorities: []ed25519.PrivateKey{auth}, Rand: r,
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]RelaySecrets{}
	for _, m := range net.Members {
		secrets[m.Name] = RelaySecrets{Identity: m.Identity, KeySecret: m.KeySecret, KeyEpoch: epoch}
	}
	p, err := NewPublisher(net.Document.Document, secrets, []ed25519.PrivateKey{auth})
	if err != nil {
		t.Fatal(err)
	}
	return net, p, auth
}

// TestPublisherDocuments: the documents of the next epochs verify, carry
// for every relay the keys its own chain gives for the epoch before, the
// epoch and the two after, and keep every other field of the relay's
// first descriptor; the keys before the previous epoch are erased.
func TestPublisherDocuments(t *testing.T) {
	const first = 100
	net, p, auth := publisherFor(t, first)
	opts := pki.VerifyOptions{Authorities: []ed25519.PublicKey{auth.Public().(ed25519.PublicKey)}, NetworkID: "t", Layers: 3}
	for epoch := uint64(first); epoch < first+5; epoch++ {
		b, err := p.Document(epoch)
		if err != nil {
			t.Fatal(err)
		}
		opts.Epoch = epoch
		doc, err := pki.Verify(b, opts)
		if err != nil {
			t.Fatalf("epoch %d: %v", epoch, err)
		}
		if len(doc.Nodes()) != len(net.Members) {
			t.Fatalf("epoch %d: %d relays, want %d", epoch, len(doc.Nodes()), len(net.Members))
		}
		for _, m := range net.Members {
			var d *pki.SignedDescriptor
			for _, n := range doc.Nodes() {
				if n.Name == m.Name {
					d = n
				}
			}
			if d == nil {
				t.Fatalf("epoch %d: no %s", epoch, m.Name)
			}
			if d.Layer != m.Layer || d.Provider != m.Provider || d.Libp2pPeerID != m.Libp2pPeerID || d.Enode != m.Enode {
				t.Fatalf("epoch %d: %s's place or addresses changed", epoch, m.Name)
			}
			from := epoch
			if epoch > first {
				from--
			}
			if len(d.SphinxKeys) != int(epoch+DefaultKeyEpochs-from) {
				t.Fatalf("epoch %d: %s has %d keys", epoch, m.Name, len(d.SphinxKeys))
			}
			chain, _ := pki.NewKeyChain(m.KeySecret, first)
			for i, k := range d.SphinxKeys {
				kp, _ := chain.Key(from + uint64(i))
				if k.Epoch != from+uint64(i) || k.Public != kp.Public {
					t.Fatalf("epoch %d: %s's key %d is not its chain's for epoch %d", epoch, m.Name, i, from+uint64(i))
				}
			}
		}
	}
	if _, err := p.Document(first + 2); err == nil {
		t.Fatal("the document of an epoch whose keys were erased was made")
	}
	p.Erase()
	if _, err := p.Document(first + 5); err == nil {
		t.Fatal("an erased publisher made a document")
	}
}

// TestPublisherRefusesWrongSecrets: a missing relay or an identity key
// that is not the descriptor's is refused.
func TestPublisherRefusesWrongSecrets(t *testing.T) {
	net, _, auth := publisherFor(t, 1)
	secrets := map[string]RelaySecrets{}
	for _, m := range net.Members[1:] {
		secrets[m.Name] = RelaySecrets{Identity: m.Identity, KeySecret: m.KeySecret, KeyEpoch: 1}
	}
	if _, err := NewPublisher(net.Document.Document, secrets, []ed25519.PrivateKey{auth}); err == nil {
		t.Fatal("a relay without secrets was accepted")
	}
	m := net.Members[0]
	secrets[m.Name] = RelaySecrets{Identity: net.Members[1].Identity, KeySecret: m.KeySecret, KeyEpoch: 1}
	if _, err := NewPublisher(net.Document.Document, secrets, []ed25519.PrivateKey{auth}); err == nil {
		t.Fatal("another relay's identity key was accepted")
	}
	if _, err := NewPublisher(net.Document.Document, secrets, nil); err == nil {
		t.Fatal("no authority was accepted")
	}
}

// TestPublisherRun: with 1-second epochs and a lead of 400 ms, each next
// epoch's document is written 400 ms before its epoch (not earlier; later
// only by the scheduling delays of a loaded machine) and the file holds
// it from then on.
func TestPublisherRun(t *testing.T) {
	epochs, err := pki.NewEpochs(time.Second, time.Unix(pki.DefaultGenesisUnix, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := publisherFor(t, epochs.Current())
	path := filepath.Join(t.TempDir(), "document.pkidoc")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	type write struct {
		epoch uint64
		at    time.Time
	}
	got := make(chan write, 16)
	go func() {
		done <- p.Run(ctx, path, epochs, 400*time.Millisecond, func(e uint64) { got <- write{e, time.Now()} })
	}()
	first := (<-got).epoch
	for want := first + 1; want < first+4; want++ {
		var w write
		select {
		case w = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("no document for epoch %d", want)
		}
		e := w.epoch
		if e != want {
			t.Fatalf("published epoch %d, want %d", e, want)
		}
		if until := epochs.Start(e).Sub(w.at); until > 400*time.Millisecond || until < -900*time.Millisecond {
			t.Fatalf("epoch %d's document written %v before the epoch; want 400 ms (less on a loaded machine)", e, until)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := pki.ParseSignedDocument(b)
		if err != nil || sd.Document.Epoch < e {
			t.Fatalf("the file holds %v, %v; want epoch %d", sd, err, e)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
