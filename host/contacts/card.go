// Package contacts holds the node's contacts: the signed contact cards that
// other nodes hand out, their text form for QR codes and copy and paste, and
// a durable store of the cards this node has accepted.
//
// A contact card binds a node's Ed25519 identity key to what other nodes need
// to reach it at every layer of its stack, one Section per layer, each opaque
// to the host and produced by the layer's plugin. The wire form is
// strata.card.v1.SignedCard (core/api/card/v1). Decode accepts a card only
// when it is well formed and signed by the identity key it names, so a card
// can travel over any channel: whoever can alter it cannot re-sign it.
package contacts

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	cardv1 "github.com/strata-msg/strata/core/api/card/v1"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Limits on a card. Decode refuses a card that exceeds any of them, and Sign
// refuses to produce one.
const (
	// Version is the ContactCard.version this package reads and writes.
	Version = 1
	// MaxSections is the largest number of sections in a card.
	MaxSections = 16
	// MaxSectionSize is the largest Section.data, in bytes.
	MaxSectionSize = 64 << 10
	// MaxNameSize is the largest card name or local alias, in bytes.
	MaxNameSize = 256
	// MaxBindingSize is the largest Section.binding, in bytes.
	MaxBindingSize = 1024
	// MaxPluginNameSize is the largest Section.plugin, in bytes.
	MaxPluginNameSize = 64
	// MaxCardSize is the largest serialized SignedCard, in bytes.
	MaxCardSize = 256 << 10
	// MaxClockSkew is how far in the future a card's issue time may be when
	// a Store takes it: the issuer's clock may run this much ahead of ours.
	// A card issued later than that is refused (ErrFuture), since it would
	// otherwise stay the newest card of its identity, and so block every
	// genuine update, until the clock caught up with it.
	MaxClockSkew = 5 * time.Minute
)

// TextPrefix starts the text form of a card.
const TextPrefix = "strata:card:"

// signaturePrefix separates card signatures from every other use of the
// identity key: a card signature covers signaturePrefix || card.
const signaturePrefix = "strata-card-v1\x00"

var (
	// ErrMalformed reports a card that is not well formed: it does not parse,
	// or it breaks one of the rules of a version 1 card. Errors returned by
	// Decode, DecodeText and Sign wrap it with the detail.
	ErrMalformed = errors.New("malformed contact card")
	// ErrBadSignature reports a well-formed card whose signature does not
	// verify against the identity key inside it: the card was altered, or it
	// was not signed by the identity it names.
	ErrBadSignature = errors.New("contact card signature does not verify")
)

// Signer is the identity that signs a card: *identity.Identity in the host.
type Signer interface {
	// Public returns the Ed25519 public key that signatures verify against.
	Public() ed25519.PublicKey
	// Sign returns the Ed25519 signature of msg.
	Sign(msg []byte) []byte
}

// Section is what other nodes need to reach a node at one layer.
type Section struct {
	// Plugin is the implementation name of the layer's plugin, as a config
	// names it (e.g. "libp2p"): 1 to MaxPluginNameSize ASCII letters,
	// digits, '.', '_' or '-'.
	Plugin string
	// Data is the section itself, as the plugin reported it in
	// StartResponse.contact_section; at most MaxSectionSize bytes.
	Data []byte
	// Binding is the plugin's proof that the key behind Data belongs to
	// the card's identity (privacy.v1 BindAddress); at most
	// MaxBindingSize bytes, empty for layers that do not bind.
	Binding []byte
}

// Card is a node's contact card.
//
// A Card built field by field is unsigned until Sign signs it. A Card returned
// by Decode, DecodeText or a Store carries the signed form it came from,
// which Signed returns.
type Card struct {
	// IdentityKey is the node's Ed25519 public key, which signs the card.
	IdentityKey ed25519.PublicKey
	// Name is the name the node gives itself: display only, never proof of
	// identity. At most MaxNameSize bytes of UTF-8 without control
	// characters; Sign and Store.Put also refuse the characters CheckName
	// refuses (bidirectional controls, zero-width and other invisible
	// characters).
	Name string
	// Issued is when the card was issued, with a resolution of one second.
	// Of two cards for one identity, the later issued supersedes the other.
	Issued time.Time
	// Sections holds what other nodes need to reach the node, by layer; at
	// most MaxSections, none of them for LAYER_KIND_UNSPECIFIED.
	Sections map[commonv1.LayerKind]Section

	// Alias is a local nickname for the contact, set with Store.SetAlias. It
	// is not part of the card: Sign ignores it, Store.Put leaves the stored
	// alias alone, and Store's lookups fill it in.
	Alias string
	// Verified is when the node's user marked the contact verified
	// (Store.SetVerified), or the zero time. Like Alias it is local, not
	// part of the card.
	Verified time.Time

	// signed is the SignedCard this card was decoded from or signed into;
	// nil for an unsigned card.
	signed []byte
}

// Signed returns the serialized SignedCard that c was decoded from or last
// signed into, or nil if c was never signed. Pass it to EncodeText for the
// text form. Signed does not reflect changes made to c's fields since.
func (c *Card) Signed() []byte {
	return bytes.Clone(c.signed)
}

// Sign signs c with id, which must be c's identity, and returns the
// serialized SignedCard. c remembers the result: Signed returns it, and a
// Store accepts c. Sign fails, with an error wrapping ErrMalformed, if c
// breaks a rule that Decode enforces, or if its name is one that CheckName
// refuses.
func (c *Card) Sign(id Signer) ([]byte, error) {
	if !bytes.Equal(c.IdentityKey, id.Public()) {
		return nil, errors.New("contacts: sign card: card identity key is not the signer's public key")
	}
	pb := c.proto()
	if err := validate(pb); err != nil {
		return nil, fmt.Errorf("contacts: sign card: %w", err)
	}
	if err := CheckName(c.Name); err != nil {
		return nil, fmt.Errorf("contacts: sign card: %w: name: %v", ErrMalformed, err)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("contacts: sign card: %w", err)
	}
	msg := signingMessage(body)
	sig := id.Sign(msg)
	if !ed25519.Verify(c.IdentityKey, msg, sig) {
		return nil, errors.New("contacts: sign card: signer produced a signature that does not verify")
	}
	signed, err := proto.MarshalOptions{Deterministic: true}.Marshal(&cardv1.SignedCard{Card: body, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("contacts: sign card: %w", err)
	}
	if len(signed) > MaxCardSize {
		return nil, fmt.Errorf("contacts: sign card: %w: signed card is %d bytes, more than %d",
			ErrMalformed, len(signed), MaxCardSize)
	}
	c.signed = signed
	return bytes.Clone(signed), nil
}

// proto returns c as a ContactCard message, sections in layer order so that
// the serialization is deterministic.
func (c *Card) proto() *cardv1.ContactCard {
	pb := &cardv1.ContactCard{
		Version:     Version,
		IdentityKey: c.IdentityKey,
		Name:        c.Name,
		IssuedUnix:  c.Issued.Unix(),
	}
	for _, layer := range slices.Sorted(maps.Keys(c.Sections)) {
		s := c.Sections[layer]
		pb.Sections = append(pb.Sections, &cardv1.Section{Layer: layer, Plugin: s.Plugin, Data: s.Data, Binding: s.Binding})
	}
	return pb
}

// signingMessage returns what a card signature covers.
func signingMessage(body []byte) []byte {
	msg := make([]byte, 0, len(signaturePrefix)+len(body))
	msg = append(msg, signaturePrefix...)
	return append(msg, body...)
}

// sameContent reports whether a and b hold the same signed content, ignoring
// the local alias and the sub-second part of the issue time.
func sameContent(a, b *Card) bool {
	if !bytes.Equal(a.IdentityKey, b.IdentityKey) || a.Name != b.Name ||
		a.Issued.Unix() != b.Issued.Unix() || len(a.Sections) != len(b.Sections) {
		return false
	}
	for layer, sa := range a.Sections {
		sb, ok := b.Sections[layer]
		if !ok || sa.Plugin != sb.Plugin || !bytes.Equal(sa.Data, sb.Data) || !bytes.Equal(sa.Binding, sb.Binding) {
			return false
		}
	}
	return true
}

// EncodeText returns the text form of a serialized SignedCard: TextPrefix
// followed by the card in unpadded base64url, one line with no spaces, fit
// for a QR code or a chat message.
func EncodeText(signed []byte) string {
	return TextPrefix + base64.RawURLEncoding.EncodeToString(signed)
}

// maxTextSize is the length of the text form of the largest card.
var maxTextSize = len(TextPrefix) + base64.RawURLEncoding.EncodedLen(MaxCardSize)

// DecodeText decodes and verifies the text form of a card, as EncodeText
// produces it. Leading and trailing white space is ignored, and so are line
// breaks, so that a card a mail client wrapped still decodes. See Decode.
func DecodeText(s string) (*Card, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTextSize {
		return nil, fmt.Errorf("contacts: decode card: %w: text is %d bytes, more than %d",
			ErrMalformed, len(s), maxTextSize)
	}
	rest, ok := strings.CutPrefix(s, TextPrefix)
	if !ok {
		return nil, fmt.Errorf("contacts: decode card: %w: text does not start with %q", ErrMalformed, TextPrefix)
	}
	signed, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("contacts: decode card: %w: bad base64url: %v", ErrMalformed, err)
	}
	return Decode(signed)
}

// Decode decodes and verifies a serialized SignedCard. It returns an error
// wrapping ErrMalformed if the card is not a well-formed version 1 card, and
// one wrapping ErrBadSignature if its signature does not verify against the
// identity key inside it. The returned card does not share memory with b.
func Decode(b []byte) (*Card, error) {
	if len(b) > MaxCardSize {
		return nil, fmt.Errorf("contacts: decode card: %w: %d bytes, more than %d", ErrMalformed, len(b), MaxCardSize)
	}
	signed := bytes.Clone(b)
	var sc cardv1.SignedCard
	if err := proto.Unmarshal(signed, &sc); err != nil {
		return nil, fmt.Errorf("contacts: decode card: %w: signed card: %v", ErrMalformed, err)
	}
	var pb cardv1.ContactCard
	if err := proto.Unmarshal(sc.GetCard(), &pb); err != nil {
		return nil, fmt.Errorf("contacts: decode card: %w: card: %v", ErrMalformed, err)
	}
	if err := validate(&pb); err != nil {
		return nil, fmt.Errorf("contacts: decode card: %w", err)
	}
	if len(sc.GetSignature()) != ed25519.SignatureSize {
		return nil, fmt.Errorf("contacts: decode card: %w: signature is %d bytes, want %d",
			ErrMalformed, len(sc.GetSignature()), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pb.GetIdentityKey(), signingMessage(sc.GetCard()), sc.GetSignature()) {
		return nil, fmt.Errorf("contacts: decode card: %w", ErrBadSignature)
	}
	c := &Card{
		IdentityKey: ed25519.PublicKey(pb.GetIdentityKey()),
		Name:        pb.GetName(),
		Issued:      time.Unix(pb.GetIssuedUnix(), 0),
		Sections:    make(map[commonv1.LayerKind]Section, len(pb.GetSections())),
		signed:      signed,
	}
	for _, s := range pb.GetSections() {
		c.Sections[s.GetLayer()] = Section{Plugin: s.GetPlugin(), Data: s.GetData(), Binding: s.GetBinding()}
	}
	return c, nil
}

// validate checks pb against the rules of a version 1 card. Its errors wrap
// ErrMalformed.
func validate(pb *cardv1.ContactCard) error {
	if v := pb.GetVersion(); v != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version)
	}
	if n := len(pb.GetIdentityKey()); n != ed25519.PublicKeySize {
		return fmt.Errorf("%w: identity key is %d bytes, want %d", ErrMalformed, n, ed25519.PublicKeySize)
	}
	if err := checkName(pb.GetName()); err != nil {
		return fmt.Errorf("%w: name: %v", ErrMalformed, err)
	}
	if pb.GetIssuedUnix() <= 0 {
		return fmt.Errorf("%w: issue time %d is not after the Unix epoch", ErrMalformed, pb.GetIssuedUnix())
	}
	sections := pb.GetSections()
	if len(sections) > MaxSections {
		return fmt.Errorf("%w: %d sections, at most %d", ErrMalformed, len(sections), MaxSections)
	}
	seen := make(map[commonv1.LayerKind]bool, len(sections))
	for i, s := range sections {
		layer := s.GetLayer()
		if layer <= commonv1.LayerKind_LAYER_KIND_UNSPECIFIED {
			return fmt.Errorf("%w: section %d: layer %v is not a layer", ErrMalformed, i, layer)
		}
		if seen[layer] {
			return fmt.Errorf("%w: section %d: second section for layer %v", ErrMalformed, i, layer)
		}
		seen[layer] = true
		if err := checkPluginName(s.GetPlugin()); err != nil {
			return fmt.Errorf("%w: section %d (%v): plugin name: %v", ErrMalformed, i, layer, err)
		}
		if n := len(s.GetData()); n > MaxSectionSize {
			return fmt.Errorf("%w: section %d (%v): %d bytes of data, more than %d",
				ErrMalformed, i, layer, n, MaxSectionSize)
		}
		if n := len(s.GetBinding()); n > MaxBindingSize {
			return fmt.Errorf("%w: section %d (%v): %d bytes of binding, more than %d",
				ErrMalformed, i, layer, n, MaxBindingSize)
		}
	}
	return nil
}

// checkName checks a display name or alias as Decode does: at most
// MaxNameSize bytes of valid UTF-8 with no control characters (which could
// rewrite a terminal). Decode stays with this rule so that a card stored
// before CheckName's stricter one still reads; every display of a name
// escapes what could mislead (host/cli).
func checkName(s string) error {
	if len(s) > MaxNameSize {
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxNameSize)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("control character at byte %d", i)
	}
	return nil
}

// CheckName checks a name that a card is signed with or that a Store takes
// (a card's name on import, an alias): checkName's rules, and none of the
// characters that make a name look like another or rearrange the text
// around it on a screen: bidirectional controls (U+202A-U+202E,
// U+2066-U+2069, U+200E, U+200F, U+061C), zero-width and other invisible
// format characters (Unicode category Cf: U+200B-U+200D, U+2060, U+FEFF,
// U+00AD, ...), the other default-ignorable characters (U+034F, U+115F,
// U+3164, ...) and the line and paragraph separators U+2028 and U+2029.
func CheckName(s string) error {
	if err := checkName(s); err != nil {
		return err
	}
	for i, r := range s {
		switch {
		case unicode.In(r, unicode.Bidi_Control):
			return fmt.Errorf("bidirectional control %U at byte %d (it reorders the text around it on a screen)", r, i)
		case unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point):
			return fmt.Errorf("invisible character %U at byte %d (it makes a name look like another)", r, i)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("line or paragraph separator %U at byte %d", r, i)
		}
	}
	return nil
}

// checkPluginName checks a Section.plugin.
func checkPluginName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxPluginNameSize {
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxPluginNameSize)
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return fmt.Errorf("byte %d (%q) is not a letter, digit, '.', '_' or '-'", i, b)
		}
	}
	return nil
}
