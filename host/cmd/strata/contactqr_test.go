package main_test

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-msg/strata/host/contacts"
)

// TestContactExportQR: export prints the card and its QR code, writes the
// PNG, and the QR form the code holds imports like the text form.
func TestContactExportQR(t *testing.T) {
	a := startNamed(t, "a")
	pngPath := filepath.Join(t.TempDir(), "a.png")
	out, err := strata(t, "contact", "export", "-c", a.cfg, "--qr", "--png", pngPath)
	if err != nil {
		t.Fatalf("export --qr --png: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != a.card || lines[1] != "" {
		t.Fatalf("export does not start with the card and a blank line:\n%s", out)
	}
	qr := lines[2:]
	width := len([]rune(qr[0]))
	// A QR code is square: 21 + 4k modules and a quiet zone of 4 on each
	// side, drawn two rows a line.
	if (width-8-21)%4 != 0 || len(qr) != (width+1)/2 {
		t.Fatalf("QR code of %d lines of %d columns", len(qr), width)
	}
	for i, l := range qr {
		if len([]rune(l)) != width || strings.Trim(l, "█▀▄ ") != "" {
			t.Fatalf("QR line %d: %q", i, l)
		}
	}
	// The quiet zone is light: the first line is all blocks.
	if strings.Trim(qr[0], "█") != "" {
		t.Fatalf("first QR line is not quiet zone: %q", qr[0])
	}

	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != b.Dy() || b.Dx() < width {
		t.Fatalf("PNG of %v for a code %d modules wide", b, width)
	}

	// Without --qr and not on a terminal: the card alone, as before.
	if out, err := strata(t, "contact", "export", "-c", a.cfg); err != nil || strings.TrimSpace(out) != a.card {
		t.Fatalf("export into a pipe: %v\n%s", err, out)
	}

	// The QR form (what a scanner reads) imports.
	card, err := contacts.DecodeText(a.card)
	if err != nil {
		t.Fatal(err)
	}
	qrForm := "STRATA:CARD:" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(card.Signed())
	cfgB := writeConfig(t, t.TempDir(), "b")
	if out, err := strata(t, "contact", "import", "-c", cfgB, qrForm); err != nil || !strings.Contains(out, "imported a ("+a.fingerprint+")") {
		t.Fatalf("import of the QR form: %v\n%s", err, out)
	}
	// A damaged QR form is refused.
	damaged := qrForm[:len(qrForm)-4] + "AAAA"
	if damaged == qrForm {
		damaged = qrForm[:len(qrForm)-4] + "BBBB"
	}
	if out, err := strata(t, "contact", "import", "-c", cfgB, damaged); err == nil || !strings.Contains(out, "not imported") && !strings.Contains(out, "card") {
		t.Fatalf("a damaged QR form was imported: %v\n%s", err, out)
	}
}

var safetyNumber = regexp.MustCompile(`(?m)^(\d{5} \d{5} \d{5} \d{5}\n\d{5} \d{5} \d{5} \d{5}\n\d{5} \d{5} \d{5} \d{5})$`)

// TestContactVerify: both sides show the same safety number; verify marks
// a contact verified only when the number matches or the user says so,
// and contact list shows the mark.
func TestContactVerify(t *testing.T) {
	a := startNamed(t, "a")
	b := startNamed(t, "b")
	if out, err := strata(t, "contact", "import", "-c", a.cfg, b.card); err != nil {
		t.Fatalf("import b into a: %v\n%s", err, out)
	}
	if out, err := strata(t, "contact", "import", "-c", b.cfg, a.card); err != nil {
		t.Fatalf("import a into b: %v\n%s", err, out)
	}

	out, err := strata(t, "contact", "verify", "-c", a.cfg, "b", "--yes")
	if err != nil || !strings.Contains(out, "is verified") {
		t.Fatalf("verify --yes: %v\n%s", err, out)
	}
	m := safetyNumber.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no safety number in:\n%s", out)
	}
	number := m[1]

	wrong := []byte(strings.ReplaceAll(number, "\n", " "))
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	if out, err := strata(t, "contact", "verify", "-c", b.cfg, "a", "--number", string(wrong)); err == nil || !strings.Contains(out, "not verified") {
		t.Fatalf("verify with a wrong number: %v\n%s", err, out)
	}
	if out, err := strata(t, "contact", "list", "-c", b.cfg); err != nil || !strings.Contains(out, "VERIFIED") || strings.Contains(out, "✓") {
		t.Fatalf("list after a failed verify: %v\n%s", err, out)
	}
	// The other side computes the same number: what a reads out, b checks.
	out, err = strata(t, "contact", "verify", "-c", b.cfg, a.fingerprint, "--number", strings.ReplaceAll(number, "\n", " "))
	if err != nil || !strings.Contains(out, number) || !strings.Contains(out, "is verified") {
		t.Fatalf("verify with a's number: %v\n%s", err, out)
	}
	if out, err := strata(t, "contact", "list", "-c", b.cfg); err != nil || !strings.Contains(out, "✓") {
		t.Fatalf("list does not show the mark: %v\n%s", err, out)
	}

	// Asked on standard input: only yes marks.
	if out, err := strataInput(t, "n\n", "contact", "verify", "-c", b.cfg, "a", "--clear"); err != nil || !strings.Contains(out, "no longer marked") {
		t.Fatalf("verify --clear: %v\n%s", err, out)
	}
	if out, err := strataInput(t, "n\n", "contact", "verify", "-c", b.cfg, "a"); err == nil || !strings.Contains(out, "same number? [y/N]") {
		t.Fatalf("verify answered no: %v\n%s", err, out)
	}
	if out, _ := strata(t, "contact", "list", "-c", b.cfg); strings.Contains(out, "✓") {
		t.Fatalf("marked verified after no:\n%s", out)
	}
	if out, err := strataInput(t, "y\n", "contact", "verify", "-c", b.cfg, "a"); err != nil || !strings.Contains(out, "is verified") {
		t.Fatalf("verify answered yes: %v\n%s", err, out)
	}
	if out, err := strata(t, "contact", "verify", "-c", b.cfg, "nobody", "--yes"); err == nil || !strings.Contains(out, `no contact "nobody"`) {
		t.Fatalf("verify of a stranger: %v\n%s", err, out)
	}
}

// strataInput is strata with standard input.
func strataInput(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewBufferString(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// On a terminal, export prints the QR code unasked when the terminal is
// wide enough, and says why not when it is not. The terminal is a pty
// that script(1) makes.
func TestContactExportQROnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run the CLI on a terminal")
	}
	a := startNamed(t, "a")
	run := func(cols int) string {
		t.Helper()
		cmd := exec.Command(script, "-qec", fmt.Sprintf("stty cols %d rows 60; %s contact export -c %s", cols, strataBin, a.cfg), "/dev/null")
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TERM=dumb"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("export on a terminal of %d columns: %v\n%s", cols, err, out)
		}
		return string(out)
	}
	if out := run(250); !strings.Contains(out, a.card) || !strings.Contains(out, "█▀") && !strings.Contains(out, "▀█") {
		t.Fatalf("no QR code on a wide terminal:\n%s", out)
	}
	if out := run(30); !strings.Contains(out, a.card) || strings.Contains(out, "▀") || !strings.Contains(out, "columns wide and this terminal 30") {
		t.Fatalf("on a narrow terminal:\n%s", out)
	}
}
