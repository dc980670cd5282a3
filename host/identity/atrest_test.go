package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, mode)
		return p
	}
	pass := write("pass", []byte("correct horse\n"), 0o600)
	passNoNewline := write("pass2", []byte("correct horse"), 0o600)
	open := write("open", []byte("correct horse"), 0o644)
	keyFile := write("key", bytes.Repeat([]byte{9}, 32), 0o600)
	short := write("short", []byte("0123"), 0o600)

	if k, err := MasterKey(dir, "", ""); k != nil || err != nil {
		t.Fatalf("no source: %v, %v; want nil, nil", k, err)
	}
	a, err := MasterKey(dir, pass, "")
	if err != nil || a == nil {
		t.Fatal(err)
	}
	b, err := MasterKey(dir, passNoNewline, "")
	if err != nil {
		t.Fatal(err)
	}
	if !atrest.Equal(a, b) {
		t.Fatal("a trailing newline changed the key")
	}
	if _, err := MasterKey(dir, open, ""); !errors.Is(err, atrest.ErrInsecureFile) {
		t.Fatalf("world-readable passphrase file: %v, want ErrInsecureFile", err)
	}
	k, err := MasterKey(dir, "", keyFile)
	if err != nil || k == nil || atrest.Equal(k, a) {
		t.Fatalf("key file: %v", err)
	}
	if _, err := MasterKey(dir, "", short); err == nil {
		t.Fatal("took a 4-byte key file")
	}
	sec, _ := LayerKey(a, "secure")
	priv, _ := LayerKey(a, "privacy")
	host, _ := HostKey(a)
	if atrest.Equal(sec, priv) || atrest.Equal(sec, host) || atrest.Equal(sec, a) {
		t.Fatal("layer keys are not distinct")
	}
}
