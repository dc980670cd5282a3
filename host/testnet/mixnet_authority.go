package testnet

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	pkitestnet "github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
)

// authorityFile, in the mixnet folder, keeps what the testnet's authority
// needs to publish the documents of later epochs: its own signing key and
// every relay's identity key (the relays' key chain secrets are in their
// keys files). authorityLog records every document it publishes.
const (
	authorityFile = "authority.json"
	authorityLog  = "authority.log"
)

// authorityKeys is authority.json: Ed25519 private keys, hex.
type authorityKeys struct {
	Authority  string            `json:"authority"`
	Identities map[string]string `json:"identities"`
}

// saveAuthority writes authority.json (0600) for the network's authority
// key and members.
func (mn *mixNetwork) saveAuthority(auth ed25519.PrivateKey, members []pkitestnet.Member) error {
	k := authorityKeys{Authority: hex.EncodeToString(auth), Identities: map[string]string{}}
	for _, m := range members {
		k.Identities[m.Name] = hex.EncodeToString(m.Identity)
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	defer clear(b)
	if err := os.WriteFile(filepath.Join(mn.dir, authorityFile), b, 0o600); err != nil {
		return fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	return nil
}

// hasAuthority reports whether the network keeps its authority's keys (a
// network made before the testnet published documents does not).
func (mn *mixNetwork) hasAuthority() bool {
	_, err := os.Stat(filepath.Join(mn.dir, authorityFile))
	return err == nil
}

// publisher rebuilds the network's authority from authority.json, the
// relays' keys files and the current document (the relays' places and
// addresses).
func (mn *mixNetwork) publisher() (*pkitestnet.Publisher, error) {
	b, err := os.ReadFile(filepath.Join(mn.dir, authorityFile))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var k authorityKeys
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("testnet: mixnet %s: %w", authorityFile, err)
	}
	key := func(h string) (ed25519.PrivateKey, error) {
		raw, err := hex.DecodeString(h)
		if err != nil || len(raw) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("testnet: mixnet %s: a key is not %d bytes of hex", authorityFile, ed25519.PrivateKeySize)
		}
		return raw, nil
	}
	auth, err := key(k.Authority)
	if err != nil {
		return nil, err
	}
	defer clear(auth)
	if hex.EncodeToString(auth.Public().(ed25519.PublicKey)) != mn.Authorities[0] {
		return nil, fmt.Errorf("testnet: mixnet %s: not the authority of network.json", authorityFile)
	}
	doc, err := os.ReadFile(mn.documentPath())
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet: %w", err)
	}
	sd, err := pki.ParseSignedDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet %s: %w", mn.documentPath(), err)
	}
	secrets := map[string]pkitestnet.RelaySecrets{}
	defer func() {
		for _, s := range secrets {
			clear(s.Identity)
			clear(s.KeySecret)
		}
	}()
	for _, r := range mn.Relays {
		id, err := key(k.Identities[r.Name])
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, r.Name)
		}
		kb, err := os.ReadFile(mn.keysPath(r.Name))
		if err != nil {
			return nil, fmt.Errorf("testnet: mixnet: %w", err)
		}
		var rk mixnet.RelayKeys
		err = json.Unmarshal(kb, &rk)
		clear(kb)
		if err != nil {
			return nil, fmt.Errorf("testnet: mixnet %s: %w", mn.keysPath(r.Name), err)
		}
		secret, err := hex.DecodeString(rk.SecretHex)
		if err != nil {
			return nil, fmt.Errorf("testnet: mixnet %s: %w", mn.keysPath(r.Name), err)
		}
		secrets[r.Name] = pkitestnet.RelaySecrets{Identity: id, KeySecret: secret, KeyEpoch: rk.Epoch}
	}
	p, err := pkitestnet.NewPublisher(sd.Document, secrets, []ed25519.PrivateKey{auth})
	if err != nil {
		return nil, fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	return p, nil
}

// runAuthority makes the testnet the mixnet's authority while it runs:
// before it returns, the document file holds the current epoch's document
// (a network started again on its directory after its document's epochs
// gets a current one); from then on the next epoch's document is written
// half an epoch before the epoch begins, and each node takes it up when
// its epoch turns (plugins/mixnet re-reads the file). Each document is
// recorded in mixnet/authority.log. stop ends the publishing and erases
// the keys it held; it waits for the publisher to return. A network
// without authority.json gets no authority (stop does nothing).
func (mn *mixNetwork) runAuthority() (stop func(), err error) {
	if !mn.hasAuthority() {
		return func() {}, nil
	}
	p, err := mn.publisher()
	if err != nil {
		return nil, err
	}
	epochs, err := pki.NewEpochs(time.Duration(mn.EpochPeriod)*time.Second, time.Unix(mn.GenesisUnix, 0), nil)
	if err != nil {
		p.Erase()
		return nil, fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(mn.dir, authorityLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		p.Erase()
		return nil, fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	var mu sync.Mutex
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logf, "%s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, args...)...)
	}
	published := func(e uint64) { note("published the document of epoch %d", e) }
	// The current document first, before any node reads the file.
	if err := catchUp(p, mn.documentPath(), epochs, published); err != nil {
		p.Erase()
		logf.Close()
		return nil, fmt.Errorf("testnet: mixnet authority: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx, mn.documentPath(), epochs, epochs.Period()/2, published); err != nil {
			note("stopped publishing: %v", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			p.Erase()
			logf.Close()
		})
	}, nil
}

// catchUp writes the current epoch's document to path if path holds an
// older one (or none, or not this network's).
func catchUp(p *pkitestnet.Publisher, path string, epochs *pki.Epochs, published func(uint64)) error {
	cur := epochs.Current()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err == nil {
		if sd, err := pki.ParseSignedDocument(b); err == nil && sd.Document.Epoch >= cur {
			return nil
		}
	}
	doc, err := p.Document(cur)
	if err != nil {
		return err
	}
	if err := pkitestnet.WriteDocument(path, doc); err != nil {
		return err
	}
	published(cur)
	return nil
}
