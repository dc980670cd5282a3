// Package identity holds a node's long-term identity: an Ed25519 key pair
// whose public half names the node to its contacts and whose private half
// signs the node's contact card.
//
// The private key lives in one file, <dir>/identity.key, holding the 32-byte
// Ed25519 seed (RFC 8032) and nothing else. Load creates it on first use and
// refuses to use a key file that other users could read or change. The
// private key never leaves an Identity: the type offers signing, not the key,
// and formats itself as its fingerprint.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// FileName is the name of the key file inside the directory given to Load.
const FileName = "identity.key"

var (
	// ErrInsecurePermissions reports a key file that users other than its
	// owner may read or write.
	ErrInsecurePermissions = errors.New("identity: key file is accessible to other users")
	// ErrInvalidKeyFile reports a key file that does not hold a key: not a
	// regular file, or not exactly ed25519.SeedSize bytes.
	ErrInvalidKeyFile = errors.New("identity: invalid key file")
)

// Identity is a node's long-term Ed25519 key pair.
//
// An Identity is safe for concurrent use. Close erases the private key; after
// Close, Public and Fingerprint still work and Sign panics. An Identity must
// not be copied: it formats itself (String, GoString, Format) as its
// fingerprint, never as its key.
type Identity struct {
	// pub is the public key, kept apart from the private key so that it
	// outlives Close.
	pub ed25519.PublicKey

	mu sync.RWMutex
	// key holds the private key; nil once closed. It is a pointer so that
	// even a reflective dump of an Identity (a copy printed with %+v) shows
	// an address, not key bytes.
	key *privateKey
}

// privateKey owns the bytes of a private key so that they can be erased.
type privateKey struct {
	priv ed25519.PrivateKey
}

// erase overwrites the private key with zeros.
func (k *privateKey) erase() { clear(k.priv) }

// Load returns the identity stored in dir, creating dir (mode 0700) and a new
// key (mode 0600) when there is none yet.
//
// Load refuses, with an error wrapping ErrInsecurePermissions, a key file
// whose mode grants any access to group or others, and, with an error
// wrapping ErrInvalidKeyFile, one that is not a regular file of exactly
// ed25519.SeedSize bytes. It never replaces an existing key file. Two
// processes that call Load on the same new directory at once end up with the
// same key.
func Load(dir string) (*Identity, error) { return LoadSealed(dir, nil) }

// LoadSealed is Load with the seed encrypted at rest under key (see
// core/sdk/atrest): a new key file is written sealed, a sealed one is
// opened with key, and a plain one (written before the user set a
// passphrase) is sealed in place. A nil key is Load: the file is plain,
// and opening a sealed one fails with atrest.ErrLocked.
func LoadSealed(dir string, key *atrest.Key) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create key directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	seed, err := readSeed(path, key)
	if errors.Is(err, fs.ErrNotExist) {
		seed, err = createSeed(dir, path, key)
	}
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return newIdentity(seed), nil
}

// newIdentity returns the identity whose private key derives from seed. The
// caller keeps ownership of seed.
func newIdentity(seed []byte) *Identity {
	key := &privateKey{priv: ed25519.NewKeyFromSeed(seed)}
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	copy(pub, key.priv[ed25519.SeedSize:])
	id := &Identity{pub: pub, key: key}
	// An Identity dropped without Close still has its key erased once the
	// garbage collector finds it unreachable. The cleanup refers to the key
	// only, never to id, as runtime.AddCleanup requires.
	runtime.AddCleanup(id, (*privateKey).erase, key)
	return id
}

// readSeed reads the seed from the key file at path, checking the file's type,
// size and permissions on the open file so that what is checked is what is
// read.
func readSeed(path string, key *atrest.Key) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (mode %v)", ErrInvalidKeyFile, path, fi.Mode())
	}
	// Windows does not express file access in mode bits; there the
	// directory's ACL is what protects the key.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600 (run: chmod 600 %s)",
			ErrInsecurePermissions, path, fi.Mode().Perm(), path)
	}
	if fi.Size() != ed25519.SeedSize && fi.Size() != sealedSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d (or %d encrypted)", ErrInvalidKeyFile, path, fi.Size(), ed25519.SeedSize, sealedSize)
	}
	blob := make([]byte, fi.Size())
	defer clear(blob)
	if _, err := io.ReadFull(f, blob); err != nil {
		return nil, fmt.Errorf("identity: read key file %s: %w", path, err)
	}
	seed, err := key.Open(sealPurpose, blob, true)
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s: %w", path, err)
	}
	if len(seed) != ed25519.SeedSize {
		clear(seed)
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrInvalidKeyFile, path, len(seed), ed25519.SeedSize)
	}
	if key != nil && !atrest.Sealed(blob) {
		// Written before the user set a passphrase: seal it now, so that
		// no plain copy outlives this start.
		if err := atrest.WriteFile(path, key, sealPurpose, seed); err != nil {
			clear(seed)
			return nil, fmt.Errorf("identity: encrypting key file %s: %w", path, err)
		}
	}
	return seed, nil
}

// sealPurpose names the identity seed to atrest, so that a sealed blob of
// another secret never opens as a seed.
const sealPurpose = "identity seed"

// sealedSize is the size of a key file holding the seed sealed by atrest.
var sealedSize = func() int64 {
	k, _ := atrest.NewKey(make([]byte, atrest.KeySize))
	b, _ := k.Seal(sealPurpose, make([]byte, ed25519.SeedSize))
	return int64(len(b))
}()

// createSeed generates a seed and stores it at path, unless another process
// got there first, in which case it returns that process's seed.
//
// The seed is written to a temporary file in dir, synced, and then linked to
// path. Linking, unlike renaming, fails when path exists, so a key file, once
// there, is never replaced; and path never holds a partly written key.
func createSeed(dir, path string, key *atrest.Key) ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed) // Never fails: crypto/rand aborts the program instead.
	blob, err := key.Seal(sealPurpose, seed)
	if err != nil {
		clear(seed)
		return nil, fmt.Errorf("identity: encrypt key file: %w", err)
	}
	defer clear(blob)

	tmp, err := os.CreateTemp(dir, "."+FileName+".tmp-*") // mode 0600
	if err != nil {
		clear(seed)
		return nil, fmt.Errorf("identity: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(blob)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		clear(seed)
		return nil, fmt.Errorf("identity: write key file: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		clear(seed)
		if errors.Is(err, fs.ErrExist) {
			return readSeed(path, key)
		}
		return nil, fmt.Errorf("identity: install key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		clear(seed)
		return nil, fmt.Errorf("identity: sync key directory: %w", err)
	}
	return seed, nil
}

// syncDir makes a new directory entry in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		// Windows cannot open a directory for syncing; NTFS makes the
		// entry durable with the file's metadata.
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Public returns the identity's public key. The caller may modify the
// returned slice.
func (id *Identity) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), id.pub...)
}

// Sign returns the Ed25519 signature of msg by the identity's private key.
// Sign panics if the identity has been closed.
func (id *Identity) Sign(msg []byte) []byte {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if id.key == nil {
		panic("identity: Sign called after Close")
	}
	return ed25519.Sign(id.key.priv, msg)
}

// Fingerprint returns the short human-readable form of the identity's public
// key; see the package-level Fingerprint.
func (id *Identity) Fingerprint() string {
	return Fingerprint(id.pub)
}

// Close erases the private key from memory. It is safe to call more than
// once, and it waits for signatures in progress to finish.
func (id *Identity) Close() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.key != nil {
		id.key.erase()
		id.key = nil
	}
	return nil
}

// String returns "identity(" + the fingerprint + ")".
func (id *Identity) String() string {
	if id == nil {
		return "identity(nil)"
	}
	return "identity(" + id.Fingerprint() + ")"
}

// GoString returns the same as String, so that %#v does not reveal the key.
func (id *Identity) GoString() string { return id.String() }

// Format writes String whatever the verb, so that no verb (%x, %v, %+v, %#v,
// %d, ...) reveals the key.
func (id *Identity) Format(f fmt.State, verb rune) { io.WriteString(f, id.String()) }

// fingerprintBytes is how many bytes of the key's SHA-256 a fingerprint shows.
const fingerprintBytes = 16

// Fingerprint returns a short human-readable form of an Ed25519 public key,
// for people to compare when they exchange contact cards: the first 16 bytes
// of the key's SHA-256, in lower-case hex, in space-separated groups of four
// digits, such as "3f2a 9c41 07be d5e8 1a6c 44f0 b2d9 8e13".
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	digits := hex.EncodeToString(sum[:fingerprintBytes])
	var b strings.Builder
	b.Grow(len(digits) + len(digits)/4)
	for i := 0; i < len(digits); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(digits[i : i+4])
	}
	return b.String()
}
