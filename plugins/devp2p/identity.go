package devp2p

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// nodeKeyFile is the name, inside the layer's data directory, of the file
// that holds the node's secp256k1 key (hex, as go-ethereum writes it).
const nodeKeyFile = "nodekey"

// nodeKeyPurpose names the node key to atrest.
const nodeKeyPurpose = "devp2p node key"

// loadOrCreateNodeKey returns the key kept in dir/nodekey, creating dir
// (0700) and the file (0600) with a fresh key on first use. A file that
// exists but does not decode is an error: the identity is never replaced
// silently. With an at-rest key (the user's passphrase) the hex text is
// sealed under it, and a plain file from before is sealed on this load; a
// file others may read is refused.
func loadOrCreateNodeKey(dir string, sealKey *atrest.Key) (key *ecdsa.PrivateKey, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("no data directory to keep the node key in")
	}
	path := filepath.Join(dir, nodeKeyFile)
	text, err := atrest.ReadFile(path, sealKey, nodeKeyPurpose)
	switch {
	case err == nil:
		defer clear(text)
		raw := make([]byte, hex.DecodedLen(len(bytes.TrimSpace(text))))
		defer clear(raw)
		if _, err := hex.Decode(raw, bytes.TrimSpace(text)); err != nil {
			return nil, false, fmt.Errorf("read node key %s: not a hex key: %w", path, err)
		}
		key, err := crypto.ToECDSA(raw)
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
	raw := crypto.FromECDSA(key)
	defer clear(raw)
	text = make([]byte, hex.EncodedLen(len(raw)))
	defer clear(text)
	hex.Encode(text, raw)
	// go-ethereum's form (hex), written whole or not at all.
	if err := atrest.WriteFile(path, sealKey, nodeKeyPurpose, text); err != nil {
		return nil, false, fmt.Errorf("write node key: %w", err)
	}
	return key, true, nil
}
