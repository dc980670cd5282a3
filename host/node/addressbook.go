package node

import (
	"context"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/contacts"
)

// addressBook is the in-memory index of contacts that the router consults
// on every frame: identity → privacy address and back. A privacy address
// that more than one card claims is ambiguous: anyone can copy another
// node's address into a card of their own, so such an address identifies
// nobody, and frames from it go up with no sender.
type addressBook struct {
	// kind is the card section that holds a contact's address at the
	// translating layer (the privacy layer's), and plugin the plugin it
	// must come from: an address another privacy plugin made means
	// nothing to this one.
	kind      commonv1.LayerKind
	plugin    string
	mu        sync.RWMutex
	byID      map[string]*contacts.Card
	byPrivacy map[string]map[string]bool // privacy address → identity keys claiming it
}

func loadAddressBook(ctx context.Context, store *contacts.Store, kind commonv1.LayerKind, plugin string) (*addressBook, error) {
	cards, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	ab := &addressBook{kind: kind, plugin: plugin, byID: map[string]*contacts.Card{}, byPrivacy: map[string]map[string]bool{}}
	for _, c := range cards {
		ab.put(c)
	}
	return ab, nil
}

func (ab *addressBook) put(c *contacts.Card) {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	id := string(c.IdentityKey)
	if old, ok := ab.byID[id]; ok {
		if sec, ok := ab.section(old); ok {
			claims := ab.byPrivacy[string(sec.Data)]
			delete(claims, id)
			if len(claims) == 0 {
				delete(ab.byPrivacy, string(sec.Data))
			}
		}
	}
	ab.byID[id] = c
	if sec, ok := ab.section(c); ok {
		claims := ab.byPrivacy[string(sec.Data)]
		if claims == nil {
			claims = map[string]bool{}
			ab.byPrivacy[string(sec.Data)] = claims
		}
		claims[id] = true
	}
}

// section returns the card's address section for the translating layer's
// plugin.
func (ab *addressBook) section(c *contacts.Card) (contacts.Section, bool) {
	sec, ok := c.Sections[ab.kind]
	return sec, ok && sec.Plugin == ab.plugin
}

// card returns a contact's card.
func (ab *addressBook) card(id []byte) (*contacts.Card, bool) {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	c, ok := ab.byID[string(id)]
	return c, ok
}

func (ab *addressBook) knows(id []byte) bool {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	_, ok := ab.byID[string(id)]
	return ok
}

func (ab *addressBook) address(id []byte) ([]byte, bool) {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	c, ok := ab.byID[string(id)]
	if !ok {
		return nil, false
	}
	sec, ok := ab.section(c)
	return sec.Data, ok
}

// identityOf returns the one contact whose card has this privacy address.
func (ab *addressBook) identityOf(addr []byte) ([]byte, bool) {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	claims := ab.byPrivacy[string(addr)]
	if len(claims) != 1 {
		return nil, false
	}
	for id := range claims {
		return []byte(id), true
	}
	return nil, false
}

func (ab *addressBook) name(id []byte) string {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	if c, ok := ab.byID[string(id)]; ok {
		if c.Alias != "" {
			return c.Alias
		}
		return c.Name
	}
	return ""
}

func (ab *addressBook) all() []*contacts.Card {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	out := make([]*contacts.Card, 0, len(ab.byID))
	for _, c := range ab.byID {
		out = append(out, c)
	}
	return out
}

// claimants returns the identities other than id whose cards claim the
// privacy address addr.
func (ab *addressBook) claimants(addr, id []byte) [][]byte {
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	var out [][]byte
	for other := range ab.byPrivacy[string(addr)] {
		if other != string(id) {
			out = append(out, []byte(other))
		}
	}
	return out
}
