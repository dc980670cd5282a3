package whisper

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

// TestKeyAtRest: without a passphrase the key file is go-ethereum's hex
// form (crypto.LoadECDSA reads it), mode 0600; with one, that file is
// sealed on the next load and the key stays the same; a sealed key does
// not load without the passphrase, and a file others may read is refused.
func TestKeyAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	plain, err := loadKey(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	geth, err := crypto.LoadECDSA(path)
	if err != nil {
		t.Fatalf("go-ethereum cannot read the plain key file: %v", err)
	}
	if !geth.Equal(plain) {
		t.Fatal("go-ethereum reads another key")
	}
	seal, err := atrest.NewKey(bytes.Repeat([]byte{3}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := loadKey(dir, seal)
	if err != nil {
		t.Fatal(err)
	}
	if !sealed.Equal(plain) {
		t.Fatal("sealing changed the key")
	}
	raw, _ := os.ReadFile(path)
	if !atrest.Sealed(raw) || bytes.Contains(raw, []byte(hex.EncodeToString(crypto.FromECDSA(plain)))) {
		t.Fatal("the key file is still plain after a load with a passphrase")
	}
	if again, err := loadKey(dir, seal); err != nil || !again.Equal(plain) {
		t.Fatalf("reload of the sealed key: %v", err)
	}
	if _, err := loadKey(dir, nil); !errors.Is(err, atrest.ErrLocked) {
		t.Fatalf("sealed key without a passphrase: %v, want ErrLocked", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadKey(dir, seal); !errors.Is(err, atrest.ErrInsecureFile) {
		t.Fatalf("world-readable key file: %v, want ErrInsecureFile", err)
	}
}
