package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/strata-msg/strata/core/sdk/atrest"
)

func TestLoadCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	id, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer id.Close()

	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if fi.Size() != ed25519.SeedSize {
		t.Errorf("key file is %d bytes, want %d", fi.Size(), ed25519.SeedSize)
	}
	if runtime.GOOS != "windows" {
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("key file mode = %#o, want 0600", got)
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := di.Mode().Perm(); got&0o077 != 0 {
			t.Errorf("key directory mode = %#o, want no group or other access", got)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only %s", len(entries), FileName)
	}

	pub := id.Public()
	if len(pub) != ed25519.PublicKeySize {
		t.Fatalf("Public is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	msg := []byte("hello")
	if !ed25519.Verify(pub, msg, id.Sign(msg)) {
		t.Error("signature does not verify against Public")
	}
}

func TestLoadReloadsSameKey(t *testing.T) {
	dir := t.TempDir()
	first, err := Load(dir)
	if err != nil {
		t.Fatalf("first Load: %v", err)
	}
	defer first.Close()
	before, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Load(dir)
	if err != nil {
		t.Fatalf("second Load: %v", err)
	}
	defer second.Close()
	if !first.Public().Equal(second.Public()) {
		t.Error("reloaded identity has a different public key")
	}
	after, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("second Load rewrote the key file")
	}
	// The stored seed is the key: the file is exactly RFC 8032's private key.
	want := ed25519.NewKeyFromSeed(after).Public().(ed25519.PublicKey)
	if !want.Equal(second.Public()) {
		t.Error("public key does not derive from the stored seed")
	}
}

func TestLoadConcurrentAgree(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	ids := make([]*Identity, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = Load(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Load %d: %v", i, errs[i])
		}
		defer ids[i].Close()
		if !ids[i].Public().Equal(ids[0].Public()) {
			t.Errorf("Load %d returned a different key than Load 0", i)
		}
	}
}

func TestLoadRefusesBadKeyFile(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, path string)
		want     error
		unixOnly bool
	}{
		{
			name: "group readable",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, make([]byte, ed25519.SeedSize), 0o640)
			},
			want:     ErrInsecurePermissions,
			unixOnly: true,
		},
		{
			name: "world readable",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, make([]byte, ed25519.SeedSize), 0o604)
			},
			want:     ErrInsecurePermissions,
			unixOnly: true,
		},
		{
			name: "group writable",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, make([]byte, ed25519.SeedSize), 0o620)
			},
			want:     ErrInsecurePermissions,
			unixOnly: true,
		},
		{
			name: "empty",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, nil, 0o600)
			},
			want: ErrInvalidKeyFile,
		},
		{
			name: "short",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, make([]byte, ed25519.SeedSize-1), 0o600)
			},
			want: ErrInvalidKeyFile,
		},
		{
			name: "full private key instead of seed",
			setup: func(t *testing.T, path string) {
				writeKey(t, path, make([]byte, ed25519.PrivateKeySize), 0o600)
			},
			want: ErrInvalidKeyFile,
		},
		{
			name: "directory",
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrInvalidKeyFile,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unixOnly && runtime.GOOS == "windows" {
				t.Skip("Windows does not express file access in mode bits")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tt.setup(t, path)
			id, err := Load(dir)
			if !errors.Is(err, tt.want) {
				if id != nil {
					id.Close()
				}
				t.Fatalf("Load = %v, want an error wrapping %v", err, tt.want)
			}
			if id != nil {
				t.Error("Load returned an identity along with an error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the key file", err)
			}
		})
	}
}

// writeKey writes data to path with exactly mode perm, whatever the umask.
func writeKey(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func TestCloseErasesKey(t *testing.T) {
	id, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	priv := id.key.priv // the backing array Close must erase
	if bytes.Equal(priv, make([]byte, len(priv))) {
		t.Fatal("private key is all zeros before Close")
	}
	pub := id.Public()
	if err := id.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !bytes.Equal(priv, make([]byte, len(priv))) {
		t.Error("private key bytes not zeroed by Close")
	}
	if err := id.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !id.Public().Equal(pub) {
		t.Error("Public changed after Close")
	}
	defer func() {
		if recover() == nil {
			t.Error("Sign after Close did not panic")
		}
	}()
	id.Sign([]byte("x"))
}

func TestPublicReturnsCopy(t *testing.T) {
	id, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	pub := id.Public()
	clear(pub)
	if bytes.Equal(id.Public(), pub) {
		t.Error("modifying the result of Public changed the identity")
	}
}

func TestFingerprint(t *testing.T) {
	id := newIdentity(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	defer id.Close()
	fp := id.Fingerprint()
	if !regexp.MustCompile(`^[0-9a-f]{4}( [0-9a-f]{4}){7}$`).MatchString(fp) {
		t.Errorf("Fingerprint = %q, want 8 space-separated groups of 4 hex digits", fp)
	}
	if fp != Fingerprint(id.Public()) {
		t.Errorf("method and function disagree: %q vs %q", fp, Fingerprint(id.Public()))
	}
	other := newIdentity(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	defer other.Close()
	if other.Fingerprint() == fp {
		t.Error("different keys have the same fingerprint")
	}
}

func TestFormattingHidesKey(t *testing.T) {
	seed := bytes.Repeat([]byte{0xab, 0xcd}, ed25519.SeedSize/2)
	id := newIdentity(seed)
	defer id.Close()
	priv := id.key.priv
	secrets := []string{
		hex.EncodeToString(seed),
		strings.ToUpper(hex.EncodeToString(seed)),
		hex.EncodeToString(priv),
		base64.StdEncoding.EncodeToString(seed),
		base64.StdEncoding.EncodeToString(priv),
		string(seed),
		fmt.Sprint([]byte(seed)),
		fmt.Sprint([]byte(seed[:8])),
	}
	holder := struct {
		ID *Identity
	}{id}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%p"} {
		for name, v := range map[string]any{"pointer": id, "in struct": holder, "in struct pointer": &holder} {
			out := fmt.Sprintf(format, v)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("Sprintf(%q, %s) = %q reveals the private key", format, name, out)
				}
			}
		}
	}
	if got, want := id.String(), "identity("+id.Fingerprint()+")"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%#v", id); got != id.String() {
		t.Errorf("%%#v = %q, want %q", got, id.String())
	}
	var nilID *Identity
	if got := fmt.Sprint(nilID); got != "identity(nil)" {
		t.Errorf("Sprint(nil) = %q", got)
	}
}

// TestLoadSealed: with a key the seed is written encrypted, opens again
// only with that key, and a plain key file from before a passphrase was set
// is encrypted in place on the first load with one.
func TestLoadSealed(t *testing.T) {
	key, err := atrest.NewKey(bytes.Repeat([]byte{1}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := atrest.NewKey(bytes.Repeat([]byte{2}, atrest.KeySize))

	dir := t.TempDir()
	id, err := LoadSealed(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	pub := id.Public()
	id.Close()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !atrest.Sealed(raw) {
		t.Fatal("the new key file is not encrypted")
	}
	again, err := LoadSealed(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Public(), pub) {
		t.Fatal("the sealed seed reloaded as another identity")
	}
	again.Close()
	if _, err := Load(dir); !errors.Is(err, atrest.ErrLocked) {
		t.Fatalf("Load without a key: %v, want ErrLocked", err)
	}
	if _, err := LoadSealed(dir, wrong); !errors.Is(err, atrest.ErrWrongKey) {
		t.Fatalf("Load with the wrong key: %v, want ErrWrongKey", err)
	}

	plainDir := t.TempDir()
	plain, err := Load(plainDir)
	if err != nil {
		t.Fatal(err)
	}
	plainPub := plain.Public()
	plain.Close()
	before, _ := os.ReadFile(filepath.Join(plainDir, FileName))
	sealed, err := LoadSealed(plainDir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer sealed.Close()
	if !bytes.Equal(sealed.Public(), plainPub) {
		t.Fatal("sealing changed the identity")
	}
	after, _ := os.ReadFile(filepath.Join(plainDir, FileName))
	if !atrest.Sealed(after) || bytes.Contains(after, before) {
		t.Fatal("the plain key file was not encrypted in place")
	}
	if fi, _ := os.Stat(filepath.Join(plainDir, FileName)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("re-sealed key file has mode %04o", fi.Mode().Perm())
	}
}
