package testvectors

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// A checker runs every case of one vector file, given the file's bytes.
// It reports each case to rep: rep.pass() when a case was checked and held,
// rep.skip(reason) when the case was deliberately not checked (an unsupported
// cipher suite, say). A case that fails calls t.Errorf (and neither pass nor
// skip), so a failing file never reads as passed.
type checker func(t *testing.T, data []byte, rep *report)

// checkers maps a vector file's type (its file name without ".json") to
// the function that checks it. Each checker file adds its own entries from init with
// register, so no file needs to edit another's.
var checkers = map[string]checker{}

var registerMu sync.Mutex

// register adds the checker for vector files of the given type.
func register(fileType string, c checker) {
	registerMu.Lock()
	defer registerMu.Unlock()
	if _, dup := checkers[fileType]; dup {
		panic("testvectors: two checkers for " + fileType)
	}
	checkers[fileType] = c
}

// knownTypes are the file types of the interop suite. A file of any other
// name is reported as skipped, by name, like a known type with no checker.
var knownTypes = []string{
	"tree-math", "crypto-basics", "secret-tree", "message-protection",
	"key-schedule", "psk_secret", "transcript-hashes", "welcome",
	"tree-operations", "tree-validation", "treekem", "messages",
	"deserialization", "passive-client-welcome", "passive-client-handling-commit",
	"passive-client-random",
}

// report counts the cases of one file.
type report struct {
	mu      sync.Mutex
	passed  int
	skipped map[string]int // reason → count
}

func (r *report) pass() {
	r.mu.Lock()
	r.passed++
	r.mu.Unlock()
}

func (r *report) skip(reason string) {
	r.mu.Lock()
	if r.skipped == nil {
		r.skipped = map[string]int{}
	}
	r.skipped[reason]++
	r.mu.Unlock()
}

func (r *report) String() string {
	n := 0
	var reasons []string
	for reason, c := range r.skipped {
		n += c
		reasons = append(reasons, fmt.Sprintf("%d: %s", c, reason))
	}
	sort.Strings(reasons)
	s := fmt.Sprintf("%d passed, %d skipped", r.passed, n)
	if n > 0 {
		s += " (" + strings.Join(reasons, "; ") + ")"
	}
	return s
}

// fileType returns the vector type of a file name: its base name without
// ".json".
func fileType(name string) string {
	return strings.TrimSuffix(filepath.Base(name), ".json")
}

// vectorFiles lists the JSON files of testdata/ and of $STRATA_MLS_VECTORS.
func vectorFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no vector files in testdata/")
	}
	if dir := os.Getenv("STRATA_MLS_VECTORS"); dir != "" {
		more, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatalf("STRATA_MLS_VECTORS: %v", err)
		}
		if len(more) == 0 {
			t.Fatalf("STRATA_MLS_VECTORS=%s holds no .json files", dir)
		}
		files = append(files, more...)
	}
	return files
}

// TestVectors runs every vector file through the checker for its type.
func TestVectors(t *testing.T) {
	for _, path := range vectorFiles(t) {
		t.Run(path, func(t *testing.T) {
			typ := fileType(path)
			check, ok := checkers[typ]
			if !ok {
				known := false
				for _, k := range knownTypes {
					known = known || k == typ
				}
				if known {
					t.Skipf("%s: no checker for vector type %q yet (whole file skipped)", path, typ)
				}
				t.Skipf("%s: unknown vector type %q (whole file skipped)", path, typ)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rep := &report{}
			check(t, data, rep)
			t.Logf("%s: %s", path, rep)
			if !t.Failed() && rep.passed == 0 {
				t.Skipf("%s: no case checked: %s", path, rep)
			}
		})
	}
}

// hexBytes is a JSON hex string decoded to bytes; JSON null decodes to nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	*h = v
	return nil
}

// decodeCases unmarshals a vector file (a JSON array) into cases.
func decodeCases[T any](t *testing.T, data []byte) []T {
	t.Helper()
	var cases []T
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("decode vector file: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("vector file holds no cases")
	}
	return cases
}

func TestFileType(t *testing.T) {
	tests := map[string]string{
		"testdata/tree-math.json":             "tree-math",
		"/x/passive-client-welcome.json":      "passive-client-welcome",
		"passive-client-handling-commit.json": "passive-client-handling-commit",
		"psk_secret.json":                     "psk_secret",
	}
	for in, want := range tests {
		if got := fileType(in); got != want {
			t.Errorf("fileType(%q) = %q, want %q", in, got, want)
		}
	}
}
