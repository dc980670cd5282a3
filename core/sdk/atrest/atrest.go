// Package atrest keeps a layer's secrets encrypted at rest under a key
// derived from the user's passphrase.
//
// The host derives one master key per node from the passphrase (or key
// file) the user configures, with Argon2id over a salt kept in the data
// directory (see Params and LoadSalt), and hands each layer its own subkey,
// derived with HKDF-SHA256 and the layer's name, in
// ConfigureRequest.at_rest_key. A layer turns those bytes into a Key with
// NewKey and seals each secret with Seal (XChaCha20-Poly1305, a fresh
// random nonce per seal, the secret's purpose as associated data), or
// writes and reads whole secret files with WriteFile and ReadFile.
//
// Without a configured passphrase the key is empty, NewKey returns nil,
// and a nil *Key seals nothing: WriteFile then writes the plain secret with
// mode 0600, and file mode is the only protection, as the docs say.
package atrest

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of a Key and of ConfigureRequest.at_rest_key.
const KeySize = 32

// magic starts every sealed blob; a blob without it is plaintext.
const magic = "strata-sealed-v1\x00"

// adPrefix separates the associated data of a seal from every other use
// of the key.
const adPrefix = "strata-atrest-v1\x00"

var (
	// ErrLocked reports a sealed secret read without a key: the user
	// configured a passphrase when it was written and none now.
	ErrLocked = errors.New("the secret is encrypted and no passphrase is configured")
	// ErrWrongKey reports a sealed secret that does not open with the key:
	// a wrong passphrase, a different purpose, or altered bytes.
	ErrWrongKey = errors.New("the secret does not open with this passphrase (wrong passphrase, or the file was altered)")
	// ErrInsecureFile reports a secret file that other users may read or
	// change, or that is not a regular file owned by this user.
	ErrInsecureFile = errors.New("secret file is accessible to other users")
)

// Key is a 32-byte key for secrets at rest. A nil *Key is valid and means
// "no encryption configured". Wipe erases it.
type Key struct{ b *[KeySize]byte }

// NewKey copies b into a Key. Empty b gives a nil Key (no encryption); any
// other length than KeySize is an error.
func NewKey(b []byte) (*Key, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("at-rest key is %d bytes, want %d", len(b), KeySize)
	}
	k := &Key{b: new([KeySize]byte)}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the key's bytes, for handing a subkey to a
// plugin. The caller erases it when done.
func (k *Key) Bytes() []byte {
	if k == nil || k.b == nil {
		return nil
	}
	return bytes.Clone(k.b[:])
}

// Wipe erases the key. A wiped key seals and opens nothing.
func (k *Key) Wipe() {
	if k == nil || k.b == nil {
		return
	}
	clear(k.b[:])
	k.b = nil
}

// Derive returns the subkey of k for label (HKDF-SHA256, label as info),
// or nil when k is nil.
func (k *Key) Derive(label string) (*Key, error) {
	if k == nil {
		return nil, nil
	}
	if k.b == nil {
		return nil, errors.New("at-rest key was wiped")
	}
	out, err := hkdf.Key(sha256.New, k.b[:], nil, "strata-atrest-subkey-v1\x00"+label, KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(out)
	return NewKey(out)
}

// Sealed reports whether blob was made by Seal.
func Sealed(blob []byte) bool { return bytes.HasPrefix(blob, []byte(magic)) }

// Seal encrypts secret for purpose (a short fixed string naming what the
// secret is, such as "whisper key"). With a nil Key it returns secret
// unchanged.
func (k *Key) Seal(purpose string, secret []byte) ([]byte, error) {
	if k == nil {
		return bytes.Clone(secret), nil
	}
	if k.b == nil {
		return nil, errors.New("at-rest key was wiped")
	}
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(magic)+aead.NonceSize(), len(magic)+aead.NonceSize()+len(secret)+aead.Overhead())
	copy(out, magic)
	nonce := out[len(magic):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, secret, []byte(adPrefix+purpose)), nil
}

// Open reverses Seal. A blob that is not sealed is returned as is when k is
// nil, and refused when k is set unless allowPlain: a plaintext secret
// under a configured passphrase is one written before the passphrase was
// set, which the caller re-seals (see ReadFile).
func (k *Key) Open(purpose string, blob []byte, allowPlain bool) ([]byte, error) {
	if !Sealed(blob) {
		if k != nil && !allowPlain {
			return nil, errors.New("the secret is not encrypted although a passphrase is configured")
		}
		return bytes.Clone(blob), nil
	}
	if k == nil {
		return nil, ErrLocked
	}
	if k.b == nil {
		return nil, errors.New("at-rest key was wiped")
	}
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, err
	}
	body := blob[len(magic):]
	if len(body) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrWrongKey
	}
	out, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], []byte(adPrefix+purpose))
	if err != nil {
		return nil, ErrWrongKey
	}
	return out, nil
}

// WriteFile writes secret to path, sealed under k (plain when k is nil),
// with mode 0600, atomically: a crash leaves the old file or the new one.
func WriteFile(path string, k *Key, purpose string, secret []byte) error {
	blob, err := k.Seal(purpose, secret)
	if err != nil {
		return err
	}
	defer clear(blob)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(blob); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}

// ReadFile reads the secret at path. It refuses a file that is not a
// regular file owned by this user with no group or other permission bits
// (ErrInsecureFile). A sealed file opens with k; a plain file read with a
// key set is re-sealed in place (the user set a passphrase since it was
// written), so that after the first start with a passphrase no secret is
// left in plaintext. A missing file returns an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadFile(path string, k *Key, purpose string) ([]byte, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	blob, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(blob)
	secret, err := k.Open(purpose, blob, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if k != nil && !Sealed(blob) {
		if err := WriteFile(path, k, purpose, secret); err != nil {
			clear(secret)
			return nil, fmt.Errorf("%s: encrypting the plain secret: %w", path, err)
		}
	}
	return secret, nil
}

// CheckFile refuses a secret file that is a symlink or not a regular file,
// is owned by another user, or has any group or other permission bit.
func CheckFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w: not a regular file", path, ErrInsecureFile)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %w: mode %04o (fix: chmod 600 %s)", path, ErrInsecureFile, fi.Mode().Perm(), path)
	}
	if !ownedByUs(fi) {
		return fmt.Errorf("%s: %w: owned by another user", path, ErrInsecureFile)
	}
	return nil
}

// Params are the Argon2id parameters of the passphrase's derivation.
type Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultParams are RFC 9106's second recommended option (64 MiB, 3
// passes), with 4 lanes.
var DefaultParams = Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// SaltSize is the size of the salt LoadSalt keeps.
const SaltSize = 16

// FromPassphrase derives the master key from a passphrase with Argon2id.
func FromPassphrase(passphrase, salt []byte, p Params) (*Key, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	if len(salt) < SaltSize {
		return nil, fmt.Errorf("the salt is %d bytes, want at least %d", len(salt), SaltSize)
	}
	out := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	defer clear(out)
	return NewKey(out)
}

// LoadSalt returns the salt kept at path, creating it (random, mode 0600)
// the first time.
func LoadSalt(path string) ([]byte, error) {
	salt, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(salt) != SaltSize {
			return nil, fmt.Errorf("%s: salt is %d bytes, want %d", path, len(salt), SaltSize)
		}
		return salt, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	salt = make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if err := WriteFile(path, nil, "salt", salt); err != nil {
		return nil, err
	}
	return salt, nil
}

// Equal reports whether two keys are the same, in constant time.
func Equal(a, b *Key) bool {
	if a == nil || b == nil || a.b == nil || b.b == nil {
		return a == nil && b == nil
	}
	return subtle.ConstantTimeCompare(a.b[:], b.b[:]) == 1
}

// MinKeyFileSize is the least a key file given instead of a passphrase
// must hold: 32 bytes, all of them random.
const MinKeyFileSize = 32

// FromKeyFile derives the master key from the contents of a key file (at
// least MinKeyFileSize random bytes) with HKDF-SHA256: a key file is
// already high in entropy, so it needs no slow derivation.
func FromKeyFile(material []byte) (*Key, error) {
	if len(material) < MinKeyFileSize {
		return nil, fmt.Errorf("the key file holds %d bytes, want at least %d random bytes (make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE)", len(material), MinKeyFileSize)
	}
	out, err := hkdf.Key(sha256.New, material, nil, "strata-atrest-keyfile-v1", KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(out)
	return NewKey(out)
}
