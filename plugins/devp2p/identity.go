package devp2p

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/crypto"
)

// nodeKeyFile is the name, inside the layer's data directory, of the file
// that holds the node's secp256k1 key (hex, as go-ethereum writes it).
const nodeKeyFile = "nodekey"

// loadOrCreateNodeKey returns the key kept in dir/nodekey, creating dir
// (0700) and the file (0600) with a fresh key on first use. A file that
// exists but does not decode is an error: the identity is never replaced
// silently.
func loadOrCreateNodeKey(dir string) (key *ecdsa.PrivateKey, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("no data directory to keep the node key in")
	}
	path := filepath.Join(dir, nodeKeyFile)
	switch _, err := os.Stat(path); {
	case err == nil:
		key, err := crypto.LoadECDSA(path)
		if err != nil {
			return nil, false, fmt.Errorf("read node key %s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read node key: %w", err)
	}
	if key, err = crypto.GenerateKey(); err != nil {
		return nil, false, fmt.Errorf("generate node key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	// SaveECDSA writes with mode 0600; write beside the final name and
	// rename so that a crash never leaves half a key.
	tmp := path + ".tmp"
	if err := crypto.SaveECDSA(tmp, key); err != nil {
		return nil, false, fmt.Errorf("write node key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, false, fmt.Errorf("write node key: %w", err)
	}
	return key, true, nil
}
