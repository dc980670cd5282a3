package node

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/contacts"
)

func card(id byte, privacy string) *contacts.Card {
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	key[0] = id
	return &contacts.Card{IdentityKey: key, Name: string('a' + id), Sections: map[commonv1.LayerKind]contacts.Section{
		commonv1.LayerKind_LAYER_KIND_PRIVACY: {Plugin: "none", Data: []byte(privacy)},
	}}
}

func TestAddressBook(t *testing.T) {
	ab := &addressBook{kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, plugin: "none", byID: map[string]*contacts.Card{}, byPrivacy: map[string]map[string]bool{}}
	alice, mallory := card(1, "addr-alice"), card(2, "addr-alice")

	ab.put(alice)
	if id, ok := ab.identityOf([]byte("addr-alice")); !ok || !bytes.Equal(id, alice.IdentityKey) {
		t.Fatalf("alice's address: %x %v", id, ok)
	}
	if addr, ok := ab.address(alice.IdentityKey); !ok || string(addr) != "addr-alice" {
		t.Fatalf("alice's privacy address: %q %v", addr, ok)
	}

	// A second card claiming the same address makes it identify nobody.
	ab.put(mallory)
	if id, ok := ab.identityOf([]byte("addr-alice")); ok {
		t.Fatalf("an address claimed by two cards was attributed to %x", id)
	}

	// Mallory's newer card drops the claim: the address is alice's again,
	// and replacing mallory's card left alice's mapping alone.
	ab.put(card(2, "addr-mallory"))
	if id, ok := ab.identityOf([]byte("addr-alice")); !ok || !bytes.Equal(id, alice.IdentityKey) {
		t.Fatalf("after mallory's change: %x %v", id, ok)
	}
	if id, ok := ab.identityOf([]byte("addr-mallory")); !ok || !bytes.Equal(id, mallory.IdentityKey) {
		t.Fatalf("mallory's own address: %x %v", id, ok)
	}
	if _, ok := ab.identityOf([]byte("nobody")); ok {
		t.Fatal("an unknown address was attributed")
	}
	if got := len(ab.all()); got != 2 {
		t.Fatalf("%d contacts, want 2", got)
	}
}
