package identity

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// SaltFileName is the file, in the host's directory, that keeps the salt
// of the passphrase's derivation.
const SaltFileName = "atrest.salt"

// MasterKey returns the node's key for secrets at rest, from the
// passphrase in passphraseFile (Argon2id, with the salt kept in
// dir/SaltFileName) or from the random bytes in keyFile; nil when neither
// is set. Both files must be regular, owned by this user and mode 0600 or
// stricter. A passphrase file's trailing newline is not part of the
// passphrase.
func MasterKey(dir, passphraseFile, keyFile string) (*atrest.Key, error) {
	switch {
	case passphraseFile != "":
		pass, err := readSecretFile(passphraseFile, "node.passphrase_file")
		if err != nil {
			return nil, err
		}
		defer clear(pass)
		pass = bytes.TrimRight(pass, "\r\n")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		salt, err := atrest.LoadSalt(filepath.Join(dir, SaltFileName))
		if err != nil {
			return nil, fmt.Errorf("node.passphrase_file: %w", err)
		}
		k, err := atrest.FromPassphrase(pass, salt, atrest.DefaultParams)
		if err != nil {
			return nil, fmt.Errorf("node.passphrase_file: %s: %w", passphraseFile, err)
		}
		return k, nil
	case keyFile != "":
		material, err := readSecretFile(keyFile, "node.key_file")
		if err != nil {
			return nil, err
		}
		defer clear(material)
		k, err := atrest.FromKeyFile(material)
		if err != nil {
			return nil, fmt.Errorf("node.key_file: %s: %w", keyFile, err)
		}
		return k, nil
	}
	return nil, nil
}

// readSecretFile reads a passphrase or key file after checking its type,
// owner and mode; configKey names the setting in errors.
func readSecretFile(path, configKey string) ([]byte, error) {
	if err := atrest.CheckFile(path); err != nil {
		return nil, fmt.Errorf("%s: %w", configKey, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configKey, err)
	}
	return b, nil
}

// LayerKey returns the subkey of master that the layer named layer (the
// config's layer key, such as "secure") gets for its secrets at rest, or
// nil when master is nil. Each layer gets its own, so that a plugin never
// holds the key of another layer's secrets.
func LayerKey(master *atrest.Key, layer string) (*atrest.Key, error) {
	return master.Derive("layer\x00" + layer)
}

// HostKey returns the subkey of master for the host's own secrets.
func HostKey(master *atrest.Key) (*atrest.Key, error) {
	return master.Derive("host")
}
