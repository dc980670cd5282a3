package safetynumber

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// TestSignalVector checks the derivation against Signal's published
// vector (testdata/README.md).
func TestSignalVector(t *testing.T) {
	b, err := os.ReadFile("testdata/signal-numeric-fingerprint.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Iterations   int
		LocalKeyHex  string `json:"local_key"`
		RemoteKeyHex string `json:"remote_key"`
		LocalID      string `json:"local_id"`
		RemoteID     string `json:"remote_id"`
		Displayable  string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	local, err := hex.DecodeString(v.LocalKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := hex.DecodeString(v.RemoteKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	if v.Iterations != Iterations || len(v.Displayable) != Digits {
		t.Fatalf("vector: %d iterations, %d digits", v.Iterations, len(v.Displayable))
	}
	if got := Numeric(v.Iterations, local, []byte(v.LocalID), remote, []byte(v.RemoteID)); got != v.Displayable {
		t.Fatalf("alice's side: %s, want %s", got, v.Displayable)
	}
	if got := Numeric(v.Iterations, remote, []byte(v.RemoteID), local, []byte(v.LocalID)); got != v.Displayable {
		t.Fatalf("bob's side: %s, want %s", got, v.Displayable)
	}
	// One bit of a key changes the number.
	local[5] ^= 1
	if got := Numeric(v.Iterations, local, []byte(v.LocalID), remote, []byte(v.RemoteID)); got == v.Displayable {
		t.Fatal("a changed key kept the safety number")
	}
}

func key(seed byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

func TestFor(t *testing.T) {
	a, b, c := key(1), key(2), key(3)
	ab := For(a, b)
	if ab != For(b, a) {
		t.Fatal("not symmetric")
	}
	if ab != For(a, b) {
		t.Fatal("not stable")
	}
	if ab == For(a, c) || ab == For(c, b) {
		t.Fatal("another key gives the same number")
	}
	if !regexp.MustCompile(`^[0-9]{60}$`).MatchString(ab) {
		t.Fatalf("not 60 digits: %q", ab)
	}
}

func TestFormat(t *testing.T) {
	got := Format("300354477692869396892869876765458257569162576843440918079131")
	want := "30035 44776 92869 39689\n28698 76765 45825 75691\n62576 84344 09180 79131"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
