package node_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/node"
)

// TestIdentitySealedUnderPassphrase: with node.passphrase_file set, the
// identity key file is encrypted, the node comes back as itself with the
// same passphrase, and without one it refuses to start, naming the key.
func TestIdentitySealedUnderPassphrase(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(extra string) *config.Config {
		cfg := loadConfig(t, "a", config.ModeInProc, dir, "")
		if extra != "" {
			cfg.Node.PassphraseFile = extra
		}
		return cfg
	}
	first, err := node.New(load(pass), node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := first.Card().IdentityKey
	first.Close(context.Background())

	keyFile := filepath.Join(dir, "a", "host", identity.FileName)
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !atrest.Sealed(raw) {
		t.Fatal("the identity key file is not encrypted under the passphrase")
	}

	again, err := node.New(load(pass), node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Card().IdentityKey, id) {
		t.Fatal("the node came back with another identity")
	}
	again.Close(context.Background())

	locked, err := node.New(load(""), node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	err = locked.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "node.passphrase_file") {
		t.Fatalf("start without the passphrase: %v, want an error naming node.passphrase_file", err)
	}
	locked.Close(context.Background())
}
