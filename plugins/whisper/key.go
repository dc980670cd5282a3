// The node's whisper key, kept in the layer's data directory.

package whisper

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

// keyPurpose names the whisper key to atrest.
const keyPurpose = "whisper key"

// loadKey loads the node's whisper key from dir, or creates it. The file
// holds the key in go-ethereum's form (hex, as crypto.SaveECDSA writes
// it); with an at-rest key (the user's passphrase) that text is sealed
// under it, and a plain file from before the passphrase was set is sealed
// on this load. The file must be the user's own with mode 0600: another
// mode is refused with the fix.
func loadKey(dir string, sealKey *atrest.Key) (*ecdsa.PrivateKey, error) {
	if dir == "" {
		return crypto.GenerateKey()
	}
	path := filepath.Join(dir, KeyFile)
	text, err := atrest.ReadFile(path, sealKey, keyPurpose)
	if err == nil {
		defer clear(text)
		raw := make([]byte, hex.DecodedLen(len(bytes.TrimSpace(text))))
		defer clear(raw)
		if _, err := hex.Decode(raw, bytes.TrimSpace(text)); err != nil {
			return nil, fmt.Errorf("whisper: key %s: not a hex key: %w", path, err)
		}
		key, err := crypto.ToECDSA(raw)
		if err != nil {
			return nil, fmt.Errorf("whisper: key %s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, atrest.ErrLocked) {
			return nil, fmt.Errorf("whisper: key %s: %w (fix: set node.passphrase_file or node.key_file to the one it was encrypted with)", path, err)
		}
		return nil, fmt.Errorf("whisper: key %s: %w", path, err)
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	raw := crypto.FromECDSA(key)
	defer clear(raw)
	text = make([]byte, hex.EncodedLen(len(raw)))
	defer clear(text)
	hex.Encode(text, raw)
	if err := atrest.WriteFile(path, sealKey, keyPurpose, text); err != nil {
		return nil, fmt.Errorf("whisper: saving key: %w", err)
	}
	return key, nil
}
