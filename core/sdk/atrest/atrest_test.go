package atrest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fastParams keep the tests quick; the derivation is the same function.
var fastParams = Params{Time: 1, MemoryKiB: 1024, Threads: 1}

func testKey(t testing.TB, pass string) *Key {
	t.Helper()
	k, err := FromPassphrase([]byte(pass), bytes.Repeat([]byte{7}, SaltSize), fastParams)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKey(t, "correct horse")
	other := testKey(t, "battery staple")
	secret := []byte("chain key 0123456789abcdef0123456789abcdef")
	blob, err := k.Seal("chain", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !Sealed(blob) || bytes.Contains(blob, secret) {
		t.Fatal("the sealed blob holds the secret in the clear")
	}
	got, err := k.Open("chain", blob, false)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	blob2, _ := k.Seal("chain", secret)
	if bytes.Equal(blob, blob2) {
		t.Fatal("two seals of one secret are equal: the nonce is not fresh")
	}
	altered := bytes.Clone(blob)
	altered[len(altered)-1] ^= 1
	for _, tc := range []struct {
		name    string
		key     *Key
		purpose string
		blob    []byte
		want    error
	}{
		{"wrong passphrase", other, "chain", blob, ErrWrongKey},
		{"wrong purpose", k, "prekey", blob, ErrWrongKey},
		{"altered", k, "chain", altered, ErrWrongKey},
		{"truncated", k, "chain", blob[:len(magic)+5], ErrWrongKey},
		{"no key", nil, "chain", blob, ErrLocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.key.Open(tc.purpose, tc.blob, false); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := k.Open("chain", secret, false); err == nil {
		t.Fatal("a plain secret opened under a key without allowPlain")
	}
}

func TestNilKeyIsPlain(t *testing.T) {
	var k *Key
	blob, err := k.Seal("x", []byte("s"))
	if err != nil || string(blob) != "s" {
		t.Fatalf("nil Seal = %q, %v", blob, err)
	}
	got, err := k.Open("x", blob, false)
	if err != nil || string(got) != "s" {
		t.Fatalf("nil Open = %q, %v", got, err)
	}
	if nk, err := NewKey(nil); nk != nil || err != nil {
		t.Fatalf("NewKey(nil) = %v, %v", nk, err)
	}
	if _, err := NewKey([]byte{1, 2}); err == nil {
		t.Fatal("NewKey took a 2-byte key")
	}
}

func TestDeriveAndWipe(t *testing.T) {
	k := testKey(t, "p")
	a, _ := k.Derive("layers.secure")
	b, _ := k.Derive("layers.privacy")
	a2, _ := k.Derive("layers.secure")
	if Equal(a, b) || !Equal(a, a2) {
		t.Fatal("subkeys do not depend on exactly their label")
	}
	if Equal(a, k) {
		t.Fatal("a subkey equals its master key")
	}
	if again := testKey(t, "p"); !Equal(again, k) {
		t.Fatal("one passphrase and salt gave two keys")
	}
	a.Wipe()
	if _, err := a.Seal("x", []byte("s")); err == nil {
		t.Fatal("a wiped key sealed")
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	secret := []byte("the whisper private key bytes!!!")
	// Written plain (no passphrase yet), then read with one: re-sealed.
	if err := WriteFile(path, nil, "key", secret); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	k := testKey(t, "p")
	got, err := ReadFile(path, k, "key")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	raw, _ := os.ReadFile(path)
	if !Sealed(raw) || bytes.Contains(raw, secret) {
		t.Fatal("the plain file was not sealed in place when read with a key")
	}
	if _, err := ReadFile(path, nil, "key"); !errors.Is(err, ErrLocked) {
		t.Fatalf("sealed file read without a key: %v, want ErrLocked", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, k, "key"); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("group-readable file: %v, want ErrInsecureFile", err)
	}
	link := filepath.Join(dir, "link.key")
	_ = os.Chmod(path, 0o600)
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(link, k, "key"); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("symlink: %v, want ErrInsecureFile", err)
	}
}

func TestLoadSalt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "salt")
	a, err := LoadSalt(path)
	if err != nil || len(a) != SaltSize {
		t.Fatalf("LoadSalt = %x, %v", a, err)
	}
	b, err := LoadSalt(path)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatal("the salt changed between loads")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSalt(path); err == nil {
		t.Fatal("took a short salt")
	}
}

// FuzzOpen feeds arbitrary blobs to Open: an error or a secret, never a
// panic.
func FuzzOpen(f *testing.F) {
	k := testKey(f, "p")
	blob, _ := k.Seal("x", []byte("secret"))
	f.Add(blob)
	f.Add([]byte(magic))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = k.Open("x", b, false)
		_, _ = (*Key)(nil).Open("x", b, true)
	})
}
