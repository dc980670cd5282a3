package conversations

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestReadMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ conv, id string }{{"c1", "m1"}, {"c2", "m7"}, {"c1", "m3"}} {
		if err := s.SetReadMark(t.Context(), []byte(m.conv), []byte(m.id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetReadMark(t.Context(), nil, []byte("m")); err == nil {
		t.Error("a read mark without a conversation was stored")
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ReadMarks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"c1": "m3", "c2": "m7"}
	if len(got) != len(want) {
		t.Fatalf("read marks %q, want %q", got, want)
	}
	for c, id := range want {
		if !bytes.Equal(got[c], []byte(id)) {
			t.Errorf("read mark of %s = %q, want %q", c, got[c], id)
		}
	}
}
