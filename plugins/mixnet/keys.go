// The node's secrets, kept in the layer's data directory: a client's
// mailbox token and sealing key, a relay's Sphinx key chain.

package mixnet

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// Files under the layer's data directory.
const (
	// ClientKeyFile holds a client's mailbox token and sealing key.
	ClientKeyFile = "client.key"
	// KeyChainFile holds a relay's Sphinx key chain, advanced with the
	// epochs (so that past epochs' keys cannot be derived from it).
	KeyChainFile = "keychain"
	// MailboxFile is a provider's mailbox database.
	MailboxFile = "mailboxes.db"
	// ReplayDir holds a relay's replay tag store.
	ReplayDir = "replay"
)

const (
	clientKeyPurpose = "mixnet client key"
	chainPurpose     = "mixnet sphinx key chain"
)

// clientSecrets are a client's mailbox token and sealing key pair.
type clientSecrets struct {
	token [loopix.TokenLength]byte
	keys  *loopix.KeyPair
}

func (s *clientSecrets) wipe() {
	clear(s.token[:])
	if s.keys != nil {
		s.keys.Wipe()
	}
}

// loadClientSecrets loads the client's secrets from dir, or creates them:
// the file holds token ‖ X25519 private key, in hex, sealed with the
// at-rest key if there is one.
func loadClientSecrets(dir string, k *atrest.Key, rand io.Reader) (*clientSecrets, error) {
	path := filepath.Join(dir, ClientKeyFile)
	text, err := atrest.ReadFile(path, k, clientKeyPurpose)
	if err == nil {
		defer clear(text)
		raw := make([]byte, hex.DecodedLen(len(text)))
		defer clear(raw)
		if n, err := hex.Decode(raw, text); err != nil || n != loopix.TokenLength+loopix.KeyLength {
			return nil, fmt.Errorf("mixnet: %s is not a client key file", path)
		}
		s := &clientSecrets{}
		copy(s.token[:], raw)
		s.keys = loopix.KeyPairFromPrivate([loopix.KeyLength]byte(raw[loopix.TokenLength:]))
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mixnet: client key %s: %w", path, err)
	}
	s := &clientSecrets{}
	if _, err := io.ReadFull(rand, s.token[:]); err != nil {
		return nil, fmt.Errorf("mixnet: client key: %w", err)
	}
	if s.keys, err = loopix.NewKeyPair(rand); err != nil {
		return nil, err
	}
	raw := append(append([]byte{}, s.token[:]...), s.keys.Private[:]...)
	defer clear(raw)
	text = []byte(hex.EncodeToString(raw))
	defer clear(text)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mixnet: client key: %w", err)
	}
	if err := atrest.WriteFile(path, k, clientKeyPurpose, text); err != nil {
		return nil, fmt.Errorf("mixnet: client key: %w", err)
	}
	return s, nil
}

// RelayKeys is the content of a relay's keys_path file (JSON): the secret
// its Sphinx key chain starts from at Epoch, as the testnet generator
// published the relay's keys (testnet.Member.KeySecret, the document's
// epoch).
type RelayKeys struct {
	// SecretHex is the key chain secret, hex, at least 32 bytes.
	SecretHex string `json:"secret"`
	// Epoch is the epoch the chain starts at.
	Epoch uint64 `json:"epoch"`
}

// WriteRelayKeys writes a relay's keys file (mode 0600).
func WriteRelayKeys(path string, secret []byte, epoch uint64) error {
	b, err := json.Marshal(RelayKeys{SecretHex: hex.EncodeToString(secret), Epoch: epoch})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// loadKeyChain returns the relay's key chain: the one kept in dir, or
// else the one keysPath starts, which is then kept in dir.
func loadKeyChain(dir, keysPath string, k *atrest.Key) (*pki.KeyChain, error) {
	path := filepath.Join(dir, KeyChainFile)
	state, err := atrest.ReadFile(path, k, chainPurpose)
	if err == nil {
		defer clear(state)
		var c pki.KeyChain
		if err := c.UnmarshalBinary(state); err != nil {
			return nil, fmt.Errorf("mixnet: key chain %s: %w", path, err)
		}
		return &c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mixnet: key chain %s: %w", path, err)
	}
	b, err := os.ReadFile(keysPath)
	if err != nil {
		return nil, fmt.Errorf("mixnet: keys_path: %w", err)
	}
	defer clear(b)
	var rk RelayKeys
	if err := json.Unmarshal(b, &rk); err != nil {
		return nil, fmt.Errorf("mixnet: keys_path %s: %w", keysPath, err)
	}
	secret, err := hex.DecodeString(rk.SecretHex)
	clear([]byte(rk.SecretHex))
	if err != nil {
		return nil, fmt.Errorf("mixnet: keys_path %s: secret: %w", keysPath, err)
	}
	defer clear(secret)
	c, err := pki.NewKeyChain(secret, rk.Epoch)
	if err != nil {
		return nil, fmt.Errorf("mixnet: keys_path %s: %w", keysPath, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mixnet: key chain: %w", err)
	}
	if err := saveKeyChain(dir, c, k); err != nil {
		return nil, err
	}
	return c, nil
}

// saveKeyChain replaces the kept key chain (atomically: atrest.WriteFile
// writes a new file and renames it).
func saveKeyChain(dir string, c *pki.KeyChain, k *atrest.Key) error {
	state, err := c.MarshalBinary()
	if err != nil {
		return fmt.Errorf("mixnet: key chain: %w", err)
	}
	defer clear(state)
	if err := atrest.WriteFile(filepath.Join(dir, KeyChainFile), k, chainPurpose, state); err != nil {
		return fmt.Errorf("mixnet: key chain: %w", err)
	}
	return nil
}
