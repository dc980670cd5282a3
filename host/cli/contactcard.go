package cli

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-msg/strata/host/chat/safetynumber"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/identity"
)

// QRPrefix starts the QR form of a contact card: the signed card in
// unpadded base32 (RFC 4648), all of it in the QR code's alphanumeric
// character set, which packs 5.5 bits a character against the 8 of the
// byte mode that the text form (strata:card:, base64url) would need. So a
// card of up to 2,677 bytes fits one QR code (version 40, level L) where
// the text form would stop at 2,205: enough for the card of the default
// stack with its post-quantum prekey bundle. `contact import` takes both
// forms.
const QRPrefix = "STRATA:CARD:"

// maxQRCard is the largest signed card whose QR form fits one QR code:
// 4,296 alphanumeric characters (version 40, level L), less the prefix,
// at 5 bits a base32 character.
const maxQRCard = (4296 - len(QRPrefix)) * 5 / 8

// qrEncoding is the base32 of the QR form.
var qrEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// qrText returns the QR form of a signed card.
func qrText(signed []byte) string {
	return QRPrefix + qrEncoding.EncodeToString(signed)
}

// cardFromText turns a card as a user gives it, in its text form or its
// QR form, into the text form (strata:card:...), which the store and the
// API take. The card itself is checked later, by contacts.DecodeText.
func cardFromText(s string) (string, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, QRPrefix)
	if !ok {
		return s, nil
	}
	rest = strings.Join(strings.Fields(rest), "")
	if qrEncoding.DecodedLen(len(rest)) > contacts.MaxCardSize {
		return "", fmt.Errorf("contacts: decode card: %w: QR form of %d characters, more than a card holds", contacts.ErrMalformed, len(rest))
	}
	signed, err := qrEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("contacts: decode card: %w: bad base32 in the QR form: %v", contacts.ErrMalformed, err)
	}
	if qrEncoding.EncodeToString(signed) != rest {
		// Unused trailing bits set: one card, one QR form.
		return "", fmt.Errorf("contacts: decode card: %w: the QR form's base32 is not canonical", contacts.ErrMalformed)
	}
	return contacts.EncodeText(signed), nil
}

// cardQR returns the QR code of a signed card at the highest error
// correction level it fits.
func cardQR(signed []byte) (*qrcode.QRCode, error) {
	text := qrText(signed)
	var err error
	for _, level := range []qrcode.RecoveryLevel{qrcode.Medium, qrcode.Low} {
		var q *qrcode.QRCode
		if q, err = qrcode.New(text, level); err == nil {
			return q, nil
		}
	}
	return nil, fmt.Errorf("the card is %d bytes, more than one QR code holds (%d): share its text form: %v", len(signed), maxQRCard, err)
}

// writeQR draws q on w with Unicode half blocks, two rows of modules a
// line, quiet zone included. A terminal draws light text on a dark
// background, so the light modules are drawn (█▀▄) and the dark ones left
// blank: on such a terminal the code shows as it is printed, dark on
// light.
func writeQR(w io.Writer, q *qrcode.QRCode) error {
	bm := q.Bitmap() // true is dark; the quiet zone is included
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := !bm[y][x]
			bottom := y+1 < len(bm) && !bm[y+1][x]
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePNG writes q as a PNG file of at least 4 pixels a module.
func writePNG(path string, q *qrcode.QRCode) error {
	b, err := q.PNG(4 * len(q.Bitmap()))
	if err != nil {
		return fmt.Errorf("png: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	return nil
}

// exportQR prints the QR code of the card text (strata:card:...) to w,
// after a blank line, when toTerminal is set, and writes it to pngPath
// when that is not empty.
func exportQR(w io.Writer, text string, toTerminal bool, pngPath string) error {
	if !toTerminal && pngPath == "" {
		return nil
	}
	q, err := textQR(text)
	if err != nil {
		return err
	}
	if toTerminal {
		fmt.Fprintln(w)
		if err := writeQR(w, q); err != nil {
			return err
		}
	}
	if pngPath != "" {
		return writePNG(pngPath, q)
	}
	return nil
}

// textQR is the QR code of a card's text form.
func textQR(text string) (*qrcode.QRCode, error) {
	card, err := contacts.DecodeText(text)
	if err != nil {
		return nil, fmt.Errorf("the node's card: %w", err)
	}
	return cardQR(card.Signed())
}

// exportQRAuto prints the QR code on the terminal out when it fits, and
// otherwise says on errOut why it does not.
func exportQRAuto(out, errOut io.Writer, text string) error {
	q, err := textQR(text)
	if err != nil {
		fmt.Fprintf(errOut, "note: no QR code: %v\n", err)
		return nil
	}
	need := len(q.Bitmap())
	if f, ok := out.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 && cols < need {
			fmt.Fprintf(errOut, "note: the card's QR code is %d columns wide and this terminal %d: widen it and run again, or use --png FILE\n", need, cols)
			return nil
		}
	}
	fmt.Fprintln(out)
	return writeQR(out, q)
}

// findContact finds a stored contact by alias, card name, fingerprint or
// identity in hex, as the other commands name contacts.
func findContact(ctx context.Context, store *contacts.Store, ref string) (*contacts.Card, error) {
	cards, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	var found []*contacts.Card
	for _, c := range cards {
		if c.Alias == ref || c.Name == ref || norm(identity.Fingerprint(c.IdentityKey)) == norm(ref) ||
			hex.EncodeToString(c.IdentityKey) == strings.ToLower(ref) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no contact %q (strata contact list shows them)", escapeText(ref))
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%q names %d contacts; use the fingerprint", escapeText(ref), len(found))
	}
}

// digitsOnly keeps the digits of a safety number as someone typed it.
func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// verifyCmd is `strata contact verify`.
func verifyCmd(env Env) *cobra.Command {
	var f configFlags
	var number string
	var yes, clear bool
	cmd := &cobra.Command{
		Use:   "verify -c FILE CONTACT",
		Short: "Show a contact's safety number and mark the contact verified",
		Long: `Show the safety number of this node and a contact: 60 digits that both of
you compute from your two identity keys (Signal's numeric fingerprint, see
docs/chat.md). Compare it with the one the contact's node shows, in person
or over a channel you trust; if they are the same, no one stands between
you, and the contact is marked verified (contact list shows it).

The number is compared one of three ways: --number DIGITS checks the
digits the contact read out (spaces ignored); --yes says you compared them
yourself; otherwise, on a terminal, verify asks. --clear removes the mark.
CONTACT is an alias, a card name, a fingerprint or an identity in hex.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(env)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return withStore(cmd.Context(), cfg, func(id *identity.Identity, store *contacts.Store) error {
				c, err := findContact(cmd.Context(), store, args[0])
				if err != nil {
					return err
				}
				name := escapeText(showContact(c)) + " (" + identity.Fingerprint(c.IdentityKey) + ")"
				if clear {
					if err := store.SetVerified(cmd.Context(), c.IdentityKey, time.Time{}); err != nil {
						return err
					}
					fmt.Fprintf(out, "%s is no longer marked verified\n", name)
					return nil
				}
				sn := safetynumber.For(id.Public(), c.IdentityKey)
				fmt.Fprintf(out, "safety number of %s and %s:\n%s\n", escapeText(cfg.Node.Name), name, safetynumber.Format(sn))
				switch {
				case number != "":
					if subtle.ConstantTimeCompare([]byte(digitsOnly(number)), []byte(sn)) != 1 {
						return fmt.Errorf("not verified: the number given is not the safety number of this node and %s; "+
							"if the contact's node shows a different number, the card you hold is not the one the contact's node has", name)
					}
				case yes:
				default:
					ok, err := confirm(cmd.Context(), cmd.InOrStdin(), out, "Does "+name+"'s node show the same number? [y/N] ")
					if err != nil {
						return err
					}
					if !ok {
						return errors.New("not verified")
					}
				}
				if err := store.SetVerified(cmd.Context(), c.IdentityKey, time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s is verified\n", name)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&number, "number", "", "the safety number the contact's node shows, to check")
	cmd.Flags().BoolVar(&yes, "yes", false, "mark verified without asking: you compared the numbers yourself")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the verified mark")
	cmd.MarkFlagsMutuallyExclusive("number", "yes", "clear")
	return cmd
}

// confirm asks a yes-or-no question on r and w; only an answer that
// starts with y or Y is yes.
func confirm(ctx context.Context, r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
		line <- s
	}()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case s := <-line:
		s = strings.TrimSpace(s)
		return s != "" && (s[0] == 'y' || s[0] == 'Y'), nil
	}
}

// verifiedMark is what contact list shows in its VERIFIED column.
func verifiedMark(c *contacts.Card) string {
	if c.Verified.IsZero() {
		return "-"
	}
	return "✓ " + c.Verified.UTC().Format("2006-01-02")
}
