package vectors

import "testing"

// The checked-in file must still open with geth's code.
func TestCheckedInVectorsOpen(t *testing.T) {
	f, err := Load("../testdata/geth_vectors.json")
	if err != nil {
		t.Fatalf("testdata/geth_vectors.json: %v", err)
	}
	t.Logf("%d pow, %d bloom, %d symmetric, %d asymmetric, %d mined", len(f.PoW), len(f.Bloom), len(f.Symmetric), len(f.Asymmetric), len(f.Mined))
}

// Re-run the generator logic (randomised sealing, so no byte equality).
func TestGeneratorSelfCheck(t *testing.T) {
	f, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Marshal(f); err != nil {
		t.Fatal(err)
	}
}

// Spec vectors from shared/specs/whisper.md §9/§7.
func TestKnownBloomAndChatKey(t *testing.T) {
	f, err := Load("../testdata/geth_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"01020300": "08", "ff008005": "01"}
	for _, b := range f.Bloom {
		if w, ok := want[b.Topic]; ok && b.Bloom[:2] != w {
			t.Errorf("bloom(%s) byte0 = %s, want %s", b.Topic, b.Bloom[:2], w)
		}
	}
	k, err := PublicChatKey("status")
	if err != nil {
		t.Fatal(err)
	}
	if got := hexs(k); got != "36224048e42c49e5c59c57bba5024fbb8822d6b4ee6ac5fbefd8b77f5323ecc4" {
		t.Errorf("status key %s", got)
	}
}
