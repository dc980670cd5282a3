package mixnet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestPositionsFile: the shared positions are written sealed, read back,
// forgotten on request, and a file that does not decode is an error.
func TestPositionsFile(t *testing.T) {
	dir := t.TempDir()
	k, err := atrest.NewKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPositions(dir, k)
	if err != nil || len(p.saved) != 0 {
		t.Fatalf("no file: %v %v", p, err)
	}
	id := loopix.MailboxID{1, 2, 3}
	p.saved[id] = loopix.SharedPosition{Provider: [32]byte{9}, Pos: 1 << 50}
	p.dirty = true
	if err := p.saveMap(nil, time.Unix(100, 0), k); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, SharedPositionsFile))
	if len(raw) == 0 || bytes.Contains(raw, []byte("010203")) {
		t.Fatalf("the file is missing or not sealed: %q", raw)
	}
	q, err := loadPositions(dir, k)
	if err != nil || q.saved[id] != p.saved[id] {
		t.Fatalf("read back: %v %v", q.saved, err)
	}
	q.forget(id)
	if err := q.saveMap(nil, time.Unix(200, 0), k); err != nil {
		t.Fatal(err)
	}
	if r, err := loadPositions(dir, k); err != nil || len(r.saved) != 0 {
		t.Fatalf("after forget: %v %v", r.saved, err)
	}
	other, _ := atrest.NewKey(append(make([]byte, 31), 1))
	if err := atrest.WriteFile(filepath.Join(dir, SharedPositionsFile), other, positionsPurpose, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPositions(dir, k); err == nil {
		t.Fatal("a file sealed under another key was read")
	}
	if err := atrest.WriteFile(filepath.Join(dir, SharedPositionsFile), k, positionsPurpose, []byte("zz 00 1\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPositions(dir, k); err == nil {
		t.Fatal("a bad line was read")
	}
}
