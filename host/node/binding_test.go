package node_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/node"
)

// squatCard is a card for a new identity whose sections are copies of
// victim's, the privacy section with the binding given.
func squatCard(t *testing.T, dir string, victim *contacts.Card, binding []byte) string {
	t.Helper()
	mallory, err := identity.Load(filepath.Join(dir, "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	defer mallory.Close()
	secs := maps.Clone(victim.Sections)
	if sec, ok := secs[commonv1.LayerKind_LAYER_KIND_PRIVACY]; ok {
		sec.Binding = binding
		secs[commonv1.LayerKind_LAYER_KIND_PRIVACY] = sec
	}
	card := &contacts.Card{IdentityKey: mallory.Public(), Name: "mallory", Issued: time.Now(), Sections: secs}
	signed, err := card.Sign(mallory)
	if err != nil {
		t.Fatal(err)
	}
	return contacts.EncodeText(signed)
}

// TestAddressSquatRefused: a card that copies a contact's privacy address
// is refused. With whisper, whose addresses are keys, the copy cannot
// carry a binding to its own identity, whether it reuses the victim's
// binding or has none; with none, whose addresses are overlay peer ids,
// a later card on an address a contact already has is refused. Before,
// both were taken and silenced the original contact: frames from the
// shared address went up with no sender.
func TestAddressSquatRefused(t *testing.T) {
	ctx := context.Background()
	t.Run("whisper", func(t *testing.T) {
		dir := t.TempDir()
		var nodes []*fullNode
		for _, name := range []string{"a", "b"} {
			path := filepath.Join(dir, name+".yaml")
			text := fmt.Sprintf(ethConfig, name, filepath.Join(dir, name), pluginDir, config.ModeInProc, "")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, startFull(t, cfg, nil))
		}
		a, b := nodes[0], nodes[1]
		if len(a.Card().Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY].Binding) == 0 {
			t.Fatal("a's card carries no binding for its whisper address")
		}
		if _, err := b.AddContact(ctx, a.CardText()); err != nil {
			t.Fatalf("a's own card: %v", err)
		}
		for _, tc := range []struct {
			name    string
			binding []byte
		}{
			{"victim's binding replayed", a.Card().Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY].Binding},
			{"no binding", nil},
		} {
			_, err := b.AddContact(ctx, squatCard(t, dir, a.Card(), tc.binding))
			if !errors.Is(err, node.ErrUnboundAddress) {
				t.Fatalf("%s: %v, want ErrUnboundAddress", tc.name, err)
			}
		}
		if n := len(mustContacts(t, b.Node)); n != 1 {
			t.Fatalf("b holds %d contacts, want only a", n)
		}
	})
	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		a := startFull(t, fullCfg(t, dir, "a", config.ModeInProc, ""), nil)
		b := startFull(t, fullCfg(t, dir, "b", config.ModeInProc, ""), nil)
		if _, err := b.AddContact(ctx, a.CardText()); err != nil {
			t.Fatal(err)
		}
		_, err := b.AddContact(ctx, squatCard(t, dir, a.Card(), nil))
		if !errors.Is(err, node.ErrAddressTaken) {
			t.Fatalf("a later card on a's address: %v, want ErrAddressTaken", err)
		}
		if n := len(mustContacts(t, b.Node)); n != 1 {
			t.Fatalf("b holds %d contacts, want only a", n)
		}
	})
}

func mustContacts(t *testing.T, n *node.Node) []*contacts.Card {
	t.Helper()
	cs, err := n.Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
