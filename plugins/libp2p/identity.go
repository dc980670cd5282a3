package libp2pplugin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// identityFile is the name, inside the layer's data directory, of the file
// that holds the node's private key in libp2p's protobuf key encoding.
const identityFile = "identity.key"

// loadOrCreateIdentity returns the private key kept in dir/identity.key. On
// first use it creates dir (mode 0700) and the file (mode 0600) with a fresh
// Ed25519 key; created reports that it did. A file that exists but does not
// decode is an error: the layer never replaces an identity silently.
func loadOrCreateIdentity(dir string) (key crypto.PrivKey, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("no data directory to keep the identity in")
	}
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return nil, false, fmt.Errorf("write identity: %w", err)
	}
	return key, true, nil
}

// writeFileAtomic writes b to path with mode 0600 through a synced
// temporary file and a rename, so that a crash never leaves half a key.
func writeFileAtomic(path string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
