package boxlayer

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Files in the layer's data directory.
const (
	keyFile      = "box.key"       // the X25519 private key, 32 raw bytes, mode 0600
	contactsFile = "contacts.json" // the contacts, rewritten atomically
	seenFile     = "seen.log"      // the replay log, append-only
)

// seenRecordSize is one replay-log record: sender identity || nonce.
const seenRecordSize = identitySize + nonceSize

// loadOrCreateKey reads the private key from dir, or creates one.
func loadOrCreateKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != keySize {
			clear(b)
			return nil, fmt.Errorf("box: %s holds %d bytes, want %d", path, len(b), keySize)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("box: read key: %w", err)
	}
	priv := make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, priv); err != nil {
		return nil, fmt.Errorf("box: generate key: %w", err)
	}
	if err := writeFileAtomic(dir, keyFile, priv); err != nil {
		clear(priv)
		return nil, err
	}
	return priv, nil
}

// contactRecord is one stored contact. Both keys are public.
type contactRecord struct {
	Identity  []byte `json:"identity"`
	PublicKey []byte `json:"public_key"`
}

// contactsDoc is the content of contactsFile.
type contactsDoc struct {
	Version  int             `json:"version"`
	Contacts []contactRecord `json:"contacts"`
}

// loadContacts reads the stored contacts; none when the file is absent.
func loadContacts(dir string) ([]contactRecord, error) {
	path := filepath.Join(dir, contactsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("box: read contacts: %w", err)
	}
	var doc contactsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("box: %s: %w", path, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("box: %s: version %d, want 1", path, doc.Version)
	}
	for i, c := range doc.Contacts {
		if len(c.Identity) != identitySize || len(c.PublicKey) != keySize {
			return nil, fmt.Errorf("box: %s: contact %d is malformed", path, i)
		}
	}
	return doc.Contacts, nil
}

// saveContacts replaces the stored contacts.
func saveContacts(dir string, contacts []contactRecord) error {
	b, err := json.Marshal(contactsDoc{Version: 1, Contacts: contacts})
	if err != nil {
		return fmt.Errorf("box: encode contacts: %w", err)
	}
	return writeFileAtomic(dir, contactsFile, b)
}

// seenSet is the replay log in memory: nonces already delivered, per
// sender identity.
type seenSet map[string]map[[nonceSize]byte]struct{}

func (s seenSet) has(identity []byte, nonce [nonceSize]byte) bool {
	_, ok := s[string(identity)][nonce]
	return ok
}

func (s seenSet) count(identity []byte) int { return len(s[string(identity)]) }

func (s seenSet) add(identity []byte, nonce [nonceSize]byte) {
	m := s[string(identity)]
	if m == nil {
		m = make(map[[nonceSize]byte]struct{})
		s[string(identity)] = m
	}
	m[nonce] = struct{}{}
}

// openSeenLog opens the replay log for appending and reads it into memory.
// A partial record at the end (a write cut short by a crash, never
// acknowledged by fsync) is cut off.
func openSeenLog(dir string) (*os.File, seenSet, error) {
	path := filepath.Join(dir, seenFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("box: open replay log: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("box: read replay log: %w", err)
	}
	whole := len(b) - len(b)%seenRecordSize
	if whole != len(b) {
		if err := f.Truncate(int64(whole)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("box: repair replay log: %w", err)
		}
	}
	if _, err := f.Seek(int64(whole), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("box: replay log: %w", err)
	}
	seen := seenSet{}
	for off := 0; off < whole; off += seenRecordSize {
		var nonce [nonceSize]byte
		copy(nonce[:], b[off+identitySize:off+seenRecordSize])
		seen.add(b[off:off+identitySize], nonce)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, seen, nil
}

// appendSeen appends records to the replay log and waits until they are on
// stable storage.
func appendSeen(f *os.File, records []byte) error {
	if len(records) == 0 {
		return nil
	}
	if _, err := f.Write(records); err != nil {
		return fmt.Errorf("box: append replay log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("box: sync replay log: %w", err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data (mode 0600): a temporary
// file, fsync, rename, fsync of the directory.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("box: write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("box: write %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("box: write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("box: sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("box: write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("box: write %s: %w", name, err)
	}
	return syncDir(dir)
}

// syncDir makes the directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("box: open data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("box: sync data dir: %w", err)
	}
	return nil
}
