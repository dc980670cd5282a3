package testnet

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// TestMixnetAuthority: with 1-second epochs, the testnet's authority
// publishes a current document at once, even on a directory whose
// document is epochs old, then the next epoch's before each epoch
// begins; every document verifies against the network's authority and
// carries each relay's keys from its keys file; authority.json is 0600;
// stop ends the publishing.
func TestMixnetAuthority(t *testing.T) {
	dir := t.TempDir()
	mn, err := planMixnet(mixStack(t, "libp2p", ""), dir, MixnetOptions{EpochPeriod: time.Second}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(mn.dir, authorityFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("authority.json: %v, %v", fi, err)
	}
	epochs, _ := pki.NewEpochs(time.Second, time.Unix(mn.GenesisUnix, 0), nil)
	auth, _ := hex.DecodeString(mn.Authorities[0])
	verify := func(epoch uint64) *pki.Document {
		t.Helper()
		b, err := os.ReadFile(mn.documentPath())
		if err != nil {
			t.Fatal(err)
		}
		doc, err := pki.Verify(b, pki.VerifyOptions{Authorities: []ed25519.PublicKey{auth}, NetworkID: mn.NetworkID, Epoch: epoch, Layers: mn.Layers})
		if err != nil {
			t.Fatalf("document for epoch %d: %v", epoch, err)
		}
		return doc
	}
	// current returns the document in the file once it is for epoch e or
	// later, waiting up to 1.5 s for it (on a loaded machine a write may
	// come late).
	current := func(e uint64) *pki.SignedDocument {
		t.Helper()
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			b, _ := os.ReadFile(mn.documentPath())
			sd, err := pki.ParseSignedDocument(b)
			if err == nil && sd.Document.Epoch >= e {
				return sd
			}
			if time.Now().After(deadline) {
				t.Fatalf("in epoch %d the document is %v (%v)", e, sd, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Let the first document get old.
	time.Sleep(epochs.UntilNext() + 1100*time.Millisecond)
	stop, err := mn.runAuthority()
	if err != nil {
		t.Fatal(err)
	}
	sd := current(epochs.Current())
	verify(sd.Document.Epoch)
	last := sd.Document.Epoch
	for range 3 {
		time.Sleep(epochs.UntilNext() + 50*time.Millisecond)
		// Half an epoch ahead: the document is the next epoch's or,
		// right at the boundary, this one's.
		sd := current(epochs.Current())
		doc := verify(sd.Document.Epoch)
		for _, r := range mn.Relays {
			b, _ := os.ReadFile(mn.keysPath(r.Name))
			var rk mixnet.RelayKeys
			if err := json.Unmarshal(b, &rk); err != nil {
				t.Fatal(err)
			}
			secret, _ := hex.DecodeString(rk.SecretHex)
			chain, _ := pki.NewKeyChain(secret, rk.Epoch)
			d := byName(doc, r.Name)
			for e := doc.Epoch; e < doc.Epoch+3; e++ {
				kp, err := chain.Key(e)
				if pub, ok := d.SphinxKey(e); err != nil || !ok || pub != kp.Public {
					t.Fatalf("%s's key for epoch %d in the document of epoch %d is not its keys file's", r.Name, e, doc.Epoch)
				}
			}
		}
		last = sd.Document.Epoch
	}
	stop()
	stop()
	time.Sleep(1200 * time.Millisecond)
	b, _ := os.ReadFile(mn.documentPath())
	if sd, _ := pki.ParseSignedDocument(b); sd == nil || sd.Document.Epoch > last+1 {
		t.Fatalf("a document was published after stop")
	}
	log, err := os.ReadFile(filepath.Join(mn.dir, authorityLog))
	if err != nil || strings.Count(string(log), "published the document of epoch") < 4 {
		t.Fatalf("authority.log: %v\n%s", err, log)
	}
}

// byName returns the descriptor of name in doc.
func byName(doc *pki.Document, name string) *pki.SignedDescriptor {
	for _, d := range doc.Nodes() {
		if d.Name == name {
			return d
		}
	}
	return nil
}
