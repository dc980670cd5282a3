package cli

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/contacts"
)

type testSigner ed25519.PrivateKey

func (s testSigner) Public() ed25519.PublicKey {
	return ed25519.PrivateKey(s).Public().(ed25519.PublicKey)
}
func (s testSigner) Sign(msg []byte) []byte { return ed25519.Sign(ed25519.PrivateKey(s), msg) }

// signedCard returns a signed card whose sections hold n bytes of data in
// all.
func signedCard(t testing.TB, n int) []byte {
	t.Helper()
	s := testSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	c := &contacts.Card{
		IdentityKey: s.Public(),
		Name:        "alice",
		Issued:      time.Unix(1_700_000_000, 0),
		Sections: map[commonv1.LayerKind]contacts.Section{
			commonv1.LayerKind_LAYER_KIND_SECURE: {Plugin: "doubleratchet", Data: data},
		},
	}
	b, err := c.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCardFromText(t *testing.T) {
	signed := signedCard(t, 100)
	text := contacts.EncodeText(signed)
	for _, in := range []string{text, "  " + text + "\n", qrText(signed), " " + qrText(signed) + "\n",
		// A scanner or a mail client may wrap the QR form.
		qrText(signed)[:40] + "\n" + qrText(signed)[40:]} {
		got, err := cardFromText(in)
		if err != nil || got != text {
			t.Fatalf("cardFromText(%.30q...) = %.30q, %v; want the text form", in, got, err)
		}
	}
	q := qrText(signed)
	for _, bad := range []string{
		q[:len(q)-1] + "1", // not base32
		q + "A",            // a length base32 does not make
		q[:len(q)-1] + string(rune(q[len(q)-1]+1)), // trailing bits set, or another card
	} {
		got, err := cardFromText(bad)
		if err == nil {
			if _, err = contacts.DecodeText(got); err == nil {
				t.Fatalf("damaged QR form %.20q... accepted", bad[len(bad)-5:])
			}
		}
		if !errors.Is(err, contacts.ErrMalformed) && !errors.Is(err, contacts.ErrBadSignature) {
			t.Fatalf("damaged QR form: %v", err)
		}
	}
}

// A card as large as the default stack's (a post-quantum prekey bundle,
// about 2.4 KB) fits one QR code; one much larger is refused with a clear
// message.
func TestCardQRCapacity(t *testing.T) {
	q, err := cardQR(signedCard(t, 2350))
	if err != nil {
		t.Fatalf("a 2.4 KB card: %v", err)
	}
	if q.VersionNumber > 40 {
		t.Fatalf("version %d", q.VersionNumber)
	}
	if _, err := cardQR(signedCard(t, 3000)); err == nil || !strings.Contains(err.Error(), "more than one QR code holds") {
		t.Fatalf("a 3 KB card: %v", err)
	}
	// The limit is exactly maxQRCard bytes of signed card.
	if maxQRCard != 2677 {
		t.Fatalf("maxQRCard = %d", maxQRCard)
	}
	found := 0
	for n := 2400; n < 2700 && found < 2; n++ {
		b := signedCard(t, n)
		switch len(b) {
		case maxQRCard:
			found++
			if _, err := cardQR(b); err != nil {
				t.Fatalf("a card of %d bytes: %v", len(b), err)
			}
		case maxQRCard + 1:
			found++
			if _, err := cardQR(b); err == nil {
				t.Fatalf("a card of %d bytes got a code", len(b))
			}
		}
	}
	if found != 2 {
		t.Fatal("no card of the limit's size to test with")
	}
}

// The terminal drawing is the code's bitmap, light modules drawn.
func TestWriteQR(t *testing.T) {
	q, err := cardQR(signedCard(t, 50))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeQR(&b, q); err != nil {
		t.Fatal(err)
	}
	bm := q.Bitmap()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != (len(bm)+1)/2 {
		t.Fatalf("%d lines for %d rows", len(lines), len(bm))
	}
	for y, line := range lines {
		for x, r := range []rune(line) {
			top, bottom := r == '█' || r == '▀', r == '█' || r == '▄'
			if top != !bm[2*y][x] {
				t.Fatalf("row %d column %d", 2*y, x)
			}
			if 2*y+1 < len(bm) && bottom != !bm[2*y+1][x] {
				t.Fatalf("row %d column %d", 2*y+1, x)
			}
		}
	}
}

// FuzzCardFromText: whatever a scanner or a user hands over, the QR form's
// decoder returns the text form or an error wrapping ErrMalformed, never
// panics, and what it returns decodes to the same bytes it was given.
func FuzzCardFromText(f *testing.F) {
	signed := signedCard(f, 80)
	f.Add(qrText(signed))
	f.Add(contacts.EncodeText(signed))
	f.Add(QRPrefix)
	f.Add(QRPrefix + "A")
	f.Add(QRPrefix + "AB CD\nEF")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := cardFromText(s)
		if err != nil {
			if !errors.Is(err, contacts.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(s), QRPrefix) {
			if got != strings.TrimSpace(s) {
				t.Fatalf("text form changed: %q", got)
			}
			return
		}
		if c, err := contacts.DecodeText(got); err == nil && qrText(c.Signed()) != strings.Join(strings.Fields(strings.TrimSpace(s)), "") {
			t.Fatalf("QR form %q does not round-trip", s)
		}
	})
}
