package devp2p

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// TestNodeKeyAtRest: a plain node key (go-ethereum's hex form) is sealed
// at the first load with a passphrase and stays the same key; the sealed
// file does not load without it.
func TestNodeKeyAtRest(t *testing.T) {
	dir := t.TempDir()
	plain, created, err := loadOrCreateNodeKey(dir, nil)
	if err != nil || !created {
		t.Fatalf("create: %v (created %v)", err, created)
	}
	if geth, err := crypto.LoadECDSA(filepath.Join(dir, nodeKeyFile)); err != nil || !geth.Equal(plain) {
		t.Fatalf("go-ethereum reads the plain file as another key or not at all: %v", err)
	}
	seal, _ := atrest.NewKey(bytes.Repeat([]byte{5}, atrest.KeySize))
	sealed, created, err := loadOrCreateNodeKey(dir, seal)
	if err != nil || created || !sealed.Equal(plain) {
		t.Fatalf("load with a passphrase: %v (created %v, same key %v)", err, created, sealed.Equal(plain))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, nodeKeyFile))
	if !atrest.Sealed(raw) {
		t.Fatal("the node key file is still plain")
	}
	if _, _, err := loadOrCreateNodeKey(dir, nil); !errors.Is(err, atrest.ErrLocked) {
		t.Fatalf("sealed key without a passphrase: %v, want ErrLocked", err)
	}
}
