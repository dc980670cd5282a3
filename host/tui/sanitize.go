package tui

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// clean returns remote text (a message, a name) as the UI may draw it: a
// terminal obeys what it is sent, so every character that it could act on
// or that hides or reorders text is shown as a visible escape, as the
// CLI's listen does: newline, carriage return and tab as \n, \r, \t; other
// C0 and C1 controls, ESC and DEL, and bytes that are not UTF-8 as \xNN;
// bidirectional controls, the line and paragraph separators and invisible
// format characters as \uXXXX. The zero-width joiner (U+200D) and the
// emoji variation selector (U+FE0F), parts of many emoji, are kept, as is
// any printable text. A backslash is doubled, so an escape always means
// what it says.
func clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08X`, r)
			} else {
				fmt.Fprintf(&b, `\u%04X`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether r is a C1 control, a bidirectional control, a
// line or paragraph separator, or an invisible format or default-ignorable
// character other than U+200D and U+FE0F.
func unsafeRune(r rune) bool {
	switch {
	case r == 0x200d || r == 0xfe0f:
		return false
	case r >= 0x80 && r <= 0x9f, r == 0x2028, r == 0x2029:
		return true
	case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
		return true
	case unicode.IsControl(r):
		return true
	}
	return false
}
