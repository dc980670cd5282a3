package libp2pplugin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// identityFile is the name, inside the layer's data directory, of the file
// that holds the node's private key in libp2p's protobuf key encoding.
const identityFile = "identity.key"

// identityPurpose names the libp2p key to atrest.
const identityPurpose = "libp2p identity"

// loadOrCreateIdentity returns the private key kept in dir/identity.key. On
// first use it creates dir (mode 0700) and the file (mode 0600) with a fresh
// Ed25519 key; created reports that it did. A file that exists but does not
// decode is an error: the layer never replaces an identity silently. With
// an at-rest key (the user's passphrase) the file is sealed under it, and a
// plain one from before is sealed on this load; a file others may read is
// refused.
func loadOrCreateIdentity(dir string, sealKey *atrest.Key) (key crypto.PrivKey, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("no data directory to keep the identity in")
	}
	path := filepath.Join(dir, identityFile)
	b, err := atrest.ReadFile(path, sealKey, identityPurpose)
	switch {
	case err == nil:
		defer clear(b)
		key, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("read identity %s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read identity: %w", err)
	}

	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate identity: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("encode identity: %w", err)
	}
	defer clear(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	if err := atrest.WriteFile(path, sealKey, identityPurpose, b); err != nil {
		return nil, false, fmt.Errorf("write identity: %w", err)
	}
	return key, true, nil
}
