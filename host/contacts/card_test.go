package contacts

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cardv1 "github.com/strata-msg/strata/core/api/card/v1"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/identity"
)

// The host signs cards with its identity.
var _ Signer = (*identity.Identity)(nil)

const (
	layerP2P     = commonv1.LayerKind_LAYER_KIND_P2P
	layerPrivacy = commonv1.LayerKind_LAYER_KIND_PRIVACY
	layerSecure  = commonv1.LayerKind_LAYER_KIND_SECURE
	layerSync    = commonv1.LayerKind_LAYER_KIND_SYNC
)

// testSigner is a Signer with a key derived from a small number, so that a
// test (or a child process) can recreate the same identity.
type testSigner struct {
	priv ed25519.PrivateKey
}

func newSigner(n int) testSigner {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, fmt.Sprintf("strata-contacts-test-key-%d", n))
	return testSigner{priv: ed25519.NewKeyFromSeed(seed)}
}

func (s testSigner) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }
func (s testSigner) Sign(msg []byte) []byte    { return ed25519.Sign(s.priv, msg) }

// testCard returns an unsigned card for s with a section at every layer.
func testCard(s testSigner, name string, issued int64) *Card {
	return &Card{
		IdentityKey: s.Public(),
		Name:        name,
		Issued:      time.Unix(issued, 0),
		Sections: map[commonv1.LayerKind]Section{
			layerP2P:     {Plugin: "libp2p", Data: []byte("/ip4/192.0.2.1/tcp/4001/p2p/" + name)},
			layerPrivacy: {Plugin: "whisper", Data: []byte("privacy-address-of-" + name)},
			layerSecure:  {Plugin: "double-ratchet", Data: []byte("prekey-bundle-of-" + name)},
			layerSync:    {Plugin: "mvds", Data: nil},
		},
	}
}

// signed signs c with s and returns the card as Decode returns it.
func signed(t testing.TB, s testSigner, c *Card) *Card {
	t.Helper()
	b, err := c.Sign(s)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode of a freshly signed card: %v", err)
	}
	return d
}

// signProto signs pb as is, without the checks Sign makes, for building
// cards that Decode must refuse.
func signProto(t testing.TB, s testSigner, pb *cardv1.ContactCard) []byte {
	t.Helper()
	body, err := proto.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return signBody(t, s, body)
}

// signBody signs the serialized ContactCard body as is.
func signBody(t testing.TB, s testSigner, body []byte) []byte {
	t.Helper()
	b, err := proto.Marshal(&cardv1.SignedCard{Card: body, Signature: s.Sign(signingMessage(body))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validProto returns a well-formed ContactCard for s.
func validProto(s testSigner) *cardv1.ContactCard {
	return &cardv1.ContactCard{
		Version:     Version,
		IdentityKey: s.Public(),
		Name:        "alice",
		IssuedUnix:  1_700_000_000,
		Sections: []*cardv1.Section{
			{Layer: layerP2P, Plugin: "libp2p", Data: []byte("peer")},
		},
	}
}

// checkSame fails t unless got holds the content of want.
func checkSame(t testing.TB, got, want *Card) {
	t.Helper()
	if !sameContent(got, want) {
		t.Fatalf("card = %+v, want %+v", got, want)
	}
}

func TestTextRoundTrip(t *testing.T) {
	s := newSigner(1)
	many := &Card{IdentityKey: s.Public(), Name: "many", Issued: time.Unix(1, 0), Sections: map[commonv1.LayerKind]Section{}}
	for i := 1; i <= MaxSections; i++ {
		many.Sections[commonv1.LayerKind(i)] = Section{Plugin: fmt.Sprintf("plugin-%d", i), Data: []byte{byte(i)}}
	}
	tests := []struct {
		name string
		card *Card
	}{
		{"full", testCard(s, "alice", 1_700_000_000)},
		{"no sections", &Card{IdentityKey: s.Public(), Name: "bare", Issued: time.Unix(1_700_000_000, 0)}},
		{"empty name", &Card{IdentityKey: s.Public(), Issued: time.Unix(1_700_000_000, 0)}},
		{"unicode name", &Card{IdentityKey: s.Public(), Name: "Zoë 山田 🙂", Issued: time.Unix(1_700_000_000, 0)}},
		{"longest name", &Card{IdentityKey: s.Public(), Name: strings.Repeat("n", MaxNameSize), Issued: time.Unix(2, 0)}},
		{"most sections", many},
		{"largest section", &Card{IdentityKey: s.Public(), Issued: time.Unix(3, 0), Sections: map[commonv1.LayerKind]Section{
			layerP2P: {Plugin: "libp2p", Data: bytes.Repeat([]byte{0xff}, MaxSectionSize)},
		}}},
		{"sub-second issue time", &Card{IdentityKey: s.Public(), Issued: time.Unix(1_700_000_000, 999_999_999)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.card.Sign(s)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !bytes.Equal(tt.card.Signed(), b) {
				t.Error("Signed after Sign differs from what Sign returned")
			}
			text := EncodeText(b)
			if !strings.HasPrefix(text, TextPrefix) {
				t.Fatalf("text %.40q does not start with %q", text, TextPrefix)
			}
			if i := strings.IndexFunc(text[len(TextPrefix):], func(r rune) bool {
				return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
			}); i >= 0 {
				t.Fatalf("text has a character outside unpadded base64url at %d", i)
			}
			for _, in := range []string{text, "  " + text + "\r\n"} {
				got, err := DecodeText(in)
				if err != nil {
					t.Fatalf("DecodeText: %v", err)
				}
				checkSame(t, got, tt.card)
				if !got.Issued.Equal(time.Unix(tt.card.Issued.Unix(), 0)) {
					t.Errorf("Issued = %v, want %v to the second", got.Issued, tt.card.Issued)
				}
				if !bytes.Equal(got.Signed(), b) {
					t.Error("decoded card's Signed differs from the text's bytes")
				}
				if got.Sections == nil {
					t.Error("decoded card has a nil Sections map")
				}
			}
			// Signing is deterministic: the same card gives the same bytes.
			again, err := tt.card.Sign(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Error("signing the same card twice gave different bytes")
			}
		})
	}
}

func TestSignWithIdentity(t *testing.T) {
	id, err := identity.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	c := &Card{IdentityKey: id.Public(), Name: "me", Issued: time.Now()}
	b, err := c.Sign(id)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	checkSame(t, got, c)
}

func TestDecodeTampered(t *testing.T) {
	s := newSigner(1)
	b, err := testCard(s, "alice", 1_700_000_000).Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	var sc cardv1.SignedCard
	if err := proto.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	body := sc.GetCard()
	at := func(sub string) int {
		i := bytes.Index(b, []byte(sub))
		if i < 0 {
			t.Fatalf("%q not in the card", sub)
		}
		return i
	}
	tests := []struct {
		name string
		pos  int
		to   byte
	}{
		{"name", at("alice"), 'A'},
		{"section data", at("privacy-address-of-alice") + 3, 'X'},
		{"plugin", at("whisper"), 'v'},
		{"identity key", bytes.Index(b, s.Public()) + 7, ^s.Public()[7]},
		{"signature first byte", len(b) - ed25519.SignatureSize, ^b[len(b)-ed25519.SignatureSize]},
		{"signature last byte", len(b) - 1, ^b[len(b)-1]},
		{"issue time", bytes.Index(b, body) + 1 + bytes.Index(body, protowire.AppendVarint(nil, 1_700_000_000)), 0x81},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Clone(b)
			if bad[tt.pos] == tt.to {
				t.Fatalf("byte %d is already %#x", tt.pos, tt.to)
			}
			bad[tt.pos] = tt.to
			c, err := Decode(bad)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Decode = %v, want ErrBadSignature", err)
			}
			if c != nil {
				t.Error("Decode returned a card with an error")
			}
			if _, err := DecodeText(EncodeText(bad)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("DecodeText = %v, want ErrBadSignature", err)
			}
		})
	}

	// Whatever byte changes, the card is refused, and for a reason.
	for i := range b {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(b)
			bad[i] ^= flip
			c, err := Decode(bad)
			if err == nil || c != nil {
				t.Fatalf("byte %d ^ %#x: Decode accepted a tampered card", i, flip)
			}
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("byte %d ^ %#x: Decode = %v, want ErrBadSignature or ErrMalformed", i, flip, err)
			}
		}
	}
}

func TestDecodeWrongSigner(t *testing.T) {
	alice, mallory := newSigner(1), newSigner(2)
	body, err := proto.Marshal(validProto(alice))
	if err != nil {
		t.Fatal(err)
	}
	// Mallory signs a card that names Alice's key.
	b, err := proto.Marshal(&cardv1.SignedCard{Card: body, Signature: mallory.Sign(signingMessage(body))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Decode = %v, want ErrBadSignature", err)
	}
	// A signature over the card without the domain separator is refused.
	b, err = proto.Marshal(&cardv1.SignedCard{Card: body, Signature: alice.Sign(body)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Decode of a signature without the domain separator = %v, want ErrBadSignature", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	s := newSigner(1)
	with := func(f func(pb *cardv1.ContactCard)) []byte {
		pb := validProto(s)
		f(pb)
		return signProto(t, s, pb)
	}
	section := func(layer commonv1.LayerKind, size int) *cardv1.Section {
		return &cardv1.Section{Layer: layer, Plugin: "p", Data: make([]byte, size)}
	}
	// A name that is not UTF-8 cannot be marshalled by proto, so it is
	// written field by field.
	badUTF8 := protowire.AppendTag(nil, 1, protowire.VarintType)
	badUTF8 = protowire.AppendVarint(badUTF8, Version)
	badUTF8 = protowire.AppendTag(badUTF8, 2, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, s.Public())
	badUTF8 = protowire.AppendTag(badUTF8, 3, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{'a', 0xff, 'b'})
	badUTF8 = protowire.AppendTag(badUTF8, 4, protowire.VarintType)
	badUTF8 = protowire.AppendVarint(badUTF8, 1_700_000_000)

	valid := with(func(*cardv1.ContactCard) {})
	tests := []struct {
		name string
		card []byte
		want string // in the error message
	}{
		{"empty", nil, "version 0"},
		{"garbage", []byte("not a protobuf at all \xff\xff\xff"), "signed card"},
		{"card is not a ContactCard", mustMarshal(t, &cardv1.SignedCard{Card: []byte{0xff, 0xff}, Signature: make([]byte, 64)}), "card:"},
		{"version 0", with(func(pb *cardv1.ContactCard) { pb.Version = 0 }), "version 0"},
		{"version 2", with(func(pb *cardv1.ContactCard) { pb.Version = 2 }), "version 2"},
		{"no identity key", with(func(pb *cardv1.ContactCard) { pb.IdentityKey = nil }), "identity key is 0 bytes"},
		{"short identity key", with(func(pb *cardv1.ContactCard) { pb.IdentityKey = pb.IdentityKey[:31] }), "identity key is 31 bytes"},
		{"long identity key", with(func(pb *cardv1.ContactCard) { pb.IdentityKey = append(pb.IdentityKey, 0) }), "identity key is 33 bytes"},
		{"name too long", with(func(pb *cardv1.ContactCard) { pb.Name = strings.Repeat("n", MaxNameSize+1) }), "257 bytes"},
		{"name not UTF-8", signBody(t, s, badUTF8), "card:"},
		{"name with escape", with(func(pb *cardv1.ContactCard) { pb.Name = "evil\x1b[2J" }), "control character"},
		{"name with newline", with(func(pb *cardv1.ContactCard) { pb.Name = "two\nlines" }), "control character"},
		{"no issue time", with(func(pb *cardv1.ContactCard) { pb.IssuedUnix = 0 }), "issue time"},
		{"negative issue time", with(func(pb *cardv1.ContactCard) { pb.IssuedUnix = -1 }), "issue time"},
		{"too many sections", with(func(pb *cardv1.ContactCard) {
			pb.Sections = nil
			for i := 1; i <= MaxSections+1; i++ {
				pb.Sections = append(pb.Sections, section(commonv1.LayerKind(i), 1))
			}
		}), "17 sections"},
		{"section too large", with(func(pb *cardv1.ContactCard) {
			pb.Sections = []*cardv1.Section{section(layerP2P, MaxSectionSize+1)}
		}), "65537 bytes"},
		{"card too large", with(func(pb *cardv1.ContactCard) {
			pb.Sections = nil
			for i := 1; i <= 5; i++ {
				pb.Sections = append(pb.Sections, section(commonv1.LayerKind(i), MaxSectionSize))
			}
		}), "more than 262144"},
		{"duplicate layer", with(func(pb *cardv1.ContactCard) {
			pb.Sections = []*cardv1.Section{section(layerP2P, 1), section(layerPrivacy, 1), section(layerP2P, 2)}
		}), "second section for layer LAYER_KIND_P2P"},
		{"unspecified layer", with(func(pb *cardv1.ContactCard) {
			pb.Sections = []*cardv1.Section{section(commonv1.LayerKind_LAYER_KIND_UNSPECIFIED, 1)}
		}), "not a layer"},
		{"negative layer", with(func(pb *cardv1.ContactCard) {
			pb.Sections = []*cardv1.Section{section(-3, 1)}
		}), "not a layer"},
		{"no plugin name", with(func(pb *cardv1.ContactCard) { pb.Sections[0].Plugin = "" }), "plugin name: empty"},
		{"plugin name with space", with(func(pb *cardv1.ContactCard) { pb.Sections[0].Plugin = "lib p2p" }), "plugin name"},
		{"plugin name too long", with(func(pb *cardv1.ContactCard) {
			pb.Sections[0].Plugin = strings.Repeat("p", MaxPluginNameSize+1)
		}), "plugin name: 65 bytes"},
		{"no signature", func() []byte {
			var sc cardv1.SignedCard
			if err := proto.Unmarshal(valid, &sc); err != nil {
				t.Fatal(err)
			}
			sc.Signature = nil
			return mustMarshal(t, &sc)
		}(), "signature is 0 bytes"},
		{"short signature", func() []byte {
			var sc cardv1.SignedCard
			if err := proto.Unmarshal(valid, &sc); err != nil {
				t.Fatal(err)
			}
			sc.Signature = sc.Signature[:63]
			return mustMarshal(t, &sc)
		}(), "signature is 63 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(tt.card)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
			if errors.Is(err, ErrBadSignature) {
				t.Errorf("Decode = %v, which is also ErrBadSignature", err)
			}
			if c != nil {
				t.Error("Decode returned a card with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode = %q, want the detail %q", err, tt.want)
			}
			if _, err := DecodeText(EncodeText(tt.card)); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeText = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeTextMalformed(t *testing.T) {
	s := newSigner(1)
	text := EncodeText(signProto(t, s, validProto(s)))
	body := text[len(TextPrefix):]
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"prefix only", TextPrefix},
		{"no prefix", body},
		{"wrong prefix", "strata:contact:" + body},
		{"upper-case prefix", strings.ToUpper(TextPrefix) + body},
		{"padded base64", text + "=="},
		{"standard base64 alphabet", TextPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body) + "+/"},
		{"space inside", text[:30] + " " + text[30:]},
		{"truncated by one character", text[:len(text)-1]},
		{"truncated in half", text[:len(text)/2]},
		{"too long", TextPrefix + strings.Repeat("A", maxTextSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeText(tt.text)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeText = %v, want ErrMalformed", err)
			}
			if c != nil {
				t.Error("DecodeText returned a card with an error")
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	s := newSigner(1)
	tests := []struct {
		name      string
		card      *Card
		signer    testSigner
		malformed bool
	}{
		{"other signer", testCard(s, "alice", 1), newSigner(2), false},
		{"no identity key", &Card{Issued: time.Unix(1, 0)}, s, false},
		{"no issue time", &Card{IdentityKey: s.Public()}, s, true},
		{"name too long", &Card{IdentityKey: s.Public(), Issued: time.Unix(1, 0), Name: strings.Repeat("x", MaxNameSize+1)}, s, true},
		{"bidi override in the name", &Card{IdentityKey: s.Public(), Issued: time.Unix(1, 0), Name: "ali\u202ece"}, s, true},
		{"zero-width space in the name", &Card{IdentityKey: s.Public(), Issued: time.Unix(1, 0), Name: "ali\u200bce"}, s, true},
		{"unspecified layer", &Card{IdentityKey: s.Public(), Issued: time.Unix(1, 0), Sections: map[commonv1.LayerKind]Section{
			commonv1.LayerKind_LAYER_KIND_UNSPECIFIED: {Plugin: "p"},
		}}, s, true},
		{"too large", func() *Card {
			c := &Card{IdentityKey: s.Public(), Issued: time.Unix(1, 0), Sections: map[commonv1.LayerKind]Section{}}
			for i := 1; i <= 5; i++ {
				c.Sections[commonv1.LayerKind(i)] = Section{Plugin: "p", Data: make([]byte, MaxSectionSize)}
			}
			return c
		}(), s, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.card.Sign(tt.signer)
			if err == nil {
				t.Fatal("Sign succeeded")
			}
			if got := errors.Is(err, ErrMalformed); got != tt.malformed {
				t.Errorf("Sign = %v; ErrMalformed: %v, want %v", err, got, tt.malformed)
			}
			if b != nil || tt.card.Signed() != nil {
				t.Error("Sign failed but produced a signed card")
			}
		})
	}
}

func TestDecodeCopiesInput(t *testing.T) {
	s := newSigner(1)
	b, err := testCard(s, "alice", 1_700_000_000).Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(b)
	c, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if !bytes.Equal(c.Signed(), orig) {
		t.Error("changing Decode's input changed the card's signed form")
	}
	if _, err := Decode(c.Signed()); err != nil {
		t.Errorf("card no longer decodes after its input changed: %v", err)
	}
	clear(c.Signed())
	if !bytes.Equal(c.Signed(), orig) {
		t.Error("changing the result of Signed changed the card")
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeTextWrapped(t *testing.T) {
	s := newSigner(1)
	c := testCard(s, "alice", 1_700_000_000)
	text := EncodeText(mustSign(t, s, c))
	var wrapped strings.Builder
	for i := 0; i < len(text); i += 76 {
		wrapped.WriteString(text[i:min(i+76, len(text))])
		wrapped.WriteString("\r\n")
	}
	got, err := DecodeText(wrapped.String())
	if err != nil {
		t.Fatalf("DecodeText of a wrapped card: %v", err)
	}
	checkSame(t, got, c)
}

func mustSign(t testing.TB, s testSigner, c *Card) []byte {
	t.Helper()
	b, err := c.Sign(s)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return b
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"", true},
		{"Zoë 山田 🙂", true},
		{"الأسماء", true},            // right-to-left script itself is fine
		{"\u2764\ufe0f", true},       // a variation selector is visible
		{"a\x1b[2Jb", false},         // ESC
		{"a\u0085b", false},          // C1 control
		{"a\x7fb", false},            // DEL
		{"evil\u202egpj.exe", false}, // right-to-left override
		{"\u202aa", false},           // left-to-right embedding
		{"\u2066a\u2069", false},     // isolates
		{"a\u200eb", false},          // left-to-right mark
		{"a\u200fb", false},          // right-to-left mark
		{"a\u061cb", false},          // Arabic letter mark
		{"al\u200bice", false},       // zero-width space
		{"al\u200cice", false},       // zero-width non-joiner
		{"al\u200dice", false},       // zero-width joiner
		{"al\u2060ice", false},       // word joiner
		{"\ufeffalice", false},       // zero-width no-break space
		{"al\u00adice", false},       // soft hyphen
		{"a\u034fb", false},          // combining grapheme joiner
		{"\u3164", false},            // Hangul filler
		{"a\u2028b", false},          // line separator
		{"a\u2029b", false},          // paragraph separator
		{"a\xffb", false},            // not UTF-8
		{strings.Repeat("x", MaxNameSize+1), false},
	} {
		if err := CheckName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckName(%+q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
