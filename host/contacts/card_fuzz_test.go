package contacts

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// fuzzSeeds returns signed cards to start fuzzing from: valid ones, and
// each cut short at a spread of lengths.
func fuzzSeeds(t testing.TB) [][]byte {
	s := newSigner(1)
	full, err := testCard(s, "alice", 1_700_000_000).Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := (&Card{IdentityKey: s.Public(), Issued: testCard(s, "", 1).Issued}).Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{full, bare, nil}
	for n := 0; n < len(full); n += 7 {
		seeds = append(seeds, full[:n])
	}
	seeds = append(seeds, full[:len(full)-1], full[:len(full)-ed25519.SignatureSize])
	return seeds
}

// checkDecoded fails t unless Decode's result for b keeps Decode's promises:
// an error is ErrMalformed or ErrBadSignature and comes without a card; a
// card is valid, signed by its own key, and its signed form is b.
func checkDecoded(t *testing.T, b []byte, c *Card, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrBadSignature", err)
		}
		if c != nil {
			t.Fatalf("card returned with error %v", err)
		}
		return
	}
	if err := validate(c.proto()); err != nil {
		t.Fatalf("accepted card breaks the rules: %v", err)
	}
	if !bytes.Equal(c.Signed(), b) {
		t.Fatal("accepted card's signed form is not its input")
	}
	again, err := Decode(c.Signed())
	if err != nil {
		t.Fatalf("accepted card does not decode again: %v", err)
	}
	checkSame(t, again, c)
	fromText, err := DecodeText(EncodeText(c.Signed()))
	if err != nil {
		t.Fatalf("accepted card does not survive the text form: %v", err)
	}
	checkSame(t, fromText, c)
}

func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		checkDecoded(t, b, c, err)
	})
}

func FuzzDecodeText(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		text := EncodeText(seed)
		f.Add(text)
		f.Add(" " + text + "\n")
		f.Add(text[:len(text)/2])
	}
	f.Add("")
	f.Add(TextPrefix)
	f.Add("strata:card:===")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeText(s)
		if err != nil {
			checkDecoded(t, nil, c, err)
			return
		}
		checkDecoded(t, c.Signed(), c, nil)
		unwrapped := strings.NewReplacer("\r", "", "\n", "").Replace(s)
		if got := EncodeText(c.Signed()); !strings.Contains(unwrapped, got) {
			t.Fatalf("accepted text %q does not contain its canonical form %q", s, got)
		}
	})
}
