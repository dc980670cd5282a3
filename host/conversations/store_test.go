package conversations

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
)

func key(b byte) ed25519.PublicKey { return bytes.Repeat([]byte{b}, ed25519.PublicKeySize) }

func TestPutGetList(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Conversation{ID: []byte("g"), Members: []ed25519.PublicKey{key(3), key(1), key(3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Conversation{ID: []byte("a"), Members: []ed25519.PublicKey{key(2)}}); err != nil {
		t.Fatal(err)
	}
	// Replacing the members of g.
	if err := s.Put(ctx, Conversation{ID: []byte("g"), Members: []ed25519.PublicKey{key(2), key(1)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, err := s.Get(ctx, []byte("g"))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 2 || !bytes.Equal(g.Members[0], key(1)) || !bytes.Equal(g.Members[1], key(2)) {
		t.Fatalf("members %x, want sorted [1 2]", g.Members)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 2 || string(all[0].ID) != "a" || string(all[1].ID) != "g" {
		t.Fatalf("List = %v, %v", all, err)
	}
	if _, err := s.Get(ctx, []byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
}

func TestPutRefuses(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	many := make([]ed25519.PublicKey, MaxMembers+1)
	for i := range many {
		many[i] = make(ed25519.PublicKey, 32)
		many[i][0], many[i][1] = byte(i), byte(i>>8)
	}
	for name, c := range map[string]Conversation{
		"empty id":     {Members: []ed25519.PublicKey{key(1)}},
		"long id":      {ID: make([]byte, MaxIDSize+1), Members: []ed25519.PublicKey{key(1)}},
		"short member": {ID: []byte("g"), Members: []ed25519.PublicKey{make([]byte, 31)}},
		"too many":     {ID: []byte("g"), Members: many},
	} {
		if err := s.Put(ctx, c); err == nil {
			t.Errorf("%s: Put accepted it", name)
		}
	}
}
