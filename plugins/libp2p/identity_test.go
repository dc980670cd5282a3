package libp2pplugin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// TestIdentityAtRest: a plain identity is sealed at the first load with a
// passphrase and stays the same key; the sealed file does not load
// without it.
func TestIdentityAtRest(t *testing.T) {
	dir := t.TempDir()
	plain, created, err := loadOrCreateIdentity(dir, nil)
	if err != nil || !created {
		t.Fatalf("create: %v (created %v)", err, created)
	}
	seal, _ := atrest.NewKey(bytes.Repeat([]byte{6}, atrest.KeySize))
	sealed, created, err := loadOrCreateIdentity(dir, seal)
	if err != nil || created || !sealed.Equals(plain) {
		t.Fatalf("load with a passphrase: %v (created %v)", err, created)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, identityFile))
	if !atrest.Sealed(raw) {
		t.Fatal("the identity file is still plain")
	}
	if _, _, err := loadOrCreateIdentity(dir, nil); !errors.Is(err, atrest.ErrLocked) {
		t.Fatalf("sealed identity without a passphrase: %v, want ErrLocked", err)
	}
}
