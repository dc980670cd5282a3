package contacts

import (
	"bytes"
	"errors"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// TestSectionBinding: a section's binding is signed with the card, read
// back as written, and bounded.
func TestSectionBinding(t *testing.T) {
	s := newSigner(1)
	c := testCard(s, "alice", 1_700_000_000)
	sec := c.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]
	sec.Binding = bytes.Repeat([]byte{7}, 65)
	c.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY] = sec
	signed, err := c.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(signed)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY].Binding; !bytes.Equal(got, sec.Binding) {
		t.Fatalf("binding read back as %x", got)
	}
	if !sameContent(c, back) {
		t.Fatal("the decoded card differs from the signed one")
	}
	sec.Binding = make([]byte, MaxBindingSize+1)
	c.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY] = sec
	if _, err := c.Sign(s); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized binding: %v, want ErrMalformed", err)
	}
}
