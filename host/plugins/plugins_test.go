package plugins

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, BinaryPrefix+"good")
	if err := os.WriteFile(good, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(dir, BinaryPrefix+"writable")
	if err := os.WriteFile(writable, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o777); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(dir, BinaryPrefix+"noexec")
	if err := os.WriteFile(noexec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, BinaryPrefix+"link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{good, ""},
		{writable, "writable by group or others"},
		{noexec, "not executable"},
		{link, "symlinks are refused"},
		{filepath.Join(dir, "missing"), "does not exist"},
	}
	for _, tt := range tests {
		err := CheckBinary(tt.path)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckBinary(%s) = %v, want %q", filepath.Base(tt.path), err, tt.want)
		}
	}
	names, err := Binaries(dir)
	if err != nil || strings.Join(names, ",") != "good,link,noexec,writable" {
		t.Fatalf("Binaries = %v, %v", names, err)
	}
}

func TestLockRoundTripAndVerify(t *testing.T) {
	dir := t.TempDir()
	bin := BinaryPath(dir, "x")
	if err := os.WriteFile(bin, []byte("plugin bytes"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := Hash(bin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "strata.lock")
	empty, err := ReadLock(path)
	if err != nil || len(empty.Plugins) != 0 {
		t.Fatalf("missing lock: %v %v", empty, err)
	}
	if _, err := Expected("x", nil, empty); !errors.Is(err, ErrNoChecksum) {
		t.Fatalf("Expected with no entry: %v", err)
	}
	lock := &LockFile{Version: 1, Plugins: map[string]LockEntry{"x": {File: BinaryPrefix + "x", SHA256: sum}}}
	if err := lock.Write(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Expected("x", nil, back)
	if err != nil || want != sum {
		t.Fatalf("Expected = %q, %v", want, err)
	}
	if err := Verify(bin, want); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	override := strings.Repeat("0", 64)
	if got, _ := Expected("x", map[string]string{"x": override}, back); got != override {
		t.Fatalf("override not preferred: %q", got)
	}
	if err := os.WriteFile(bin, []byte("other bytes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Verify(bin, want); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Verify after change: %v", err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), "strata plugins lock") {
		t.Fatalf("corrupt lock: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"version":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLock(path); err == nil {
		t.Fatal("lock of version 2 accepted")
	}
}

// TestLocate checks the search order of plugin directories.
func TestLocate(t *testing.T) {
	mine, stock, empty := t.TempDir(), t.TempDir(), t.TempDir()
	for _, b := range []struct{ dir, name string }{{mine, "rot13"}, {mine, "none"}, {stock, "none"}, {stock, "libp2p"}} {
		if err := os.WriteFile(BinaryPath(b.dir, b.name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		dirs     []string
		plugin   string
		want     string // "" for not found
		notFound bool
	}{
		{"first directory", []string{mine, stock}, "rot13", BinaryPath(mine, "rot13"), false},
		{"a later directory", []string{mine, stock}, "libp2p", BinaryPath(stock, "libp2p"), false},
		{"the first shadows", []string{mine, stock}, "none", BinaryPath(mine, "none"), false},
		{"order matters", []string{stock, mine}, "none", BinaryPath(stock, "none"), false},
		{"nowhere", []string{empty, stock}, "rot13", "", true},
		{"no directories", nil, "none", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Locate(tt.dirs, tt.plugin)
			if tt.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Locate = %q, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Locate = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
