// The node's whisper key, kept in the layer's data directory.

package whisper

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/crypto"
)

func loadKey(dir string) (*ecdsa.PrivateKey, error) {
	if dir == "" {
		return crypto.GenerateKey()
	}
	path := filepath.Join(dir, KeyFile)
	key, err := crypto.LoadECDSA(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("whisper: key %s: %w", path, err)
	}
	if key, err = crypto.GenerateKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := crypto.SaveECDSA(path, key); err != nil {
		return nil, fmt.Errorf("whisper: saving key: %w", err)
	}
	return key, nil
}
