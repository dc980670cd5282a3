package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Remote text (message payloads, contact and author names, conversation
// ids and public chat names) is chosen by other people, and a terminal
// obeys what it prints: an ESC starts a control sequence (clear the
// screen, move the cursor, set the window title, on some terminals write
// to the clipboard), a C1 control does the same on terminals that take
// 8-bit controls, a carriage return or a newline lets a payload fake a
// line of its own (a message "from" a known contact), and bidirectional
// controls and invisible characters make one text look like another.
// Every output of the CLI that holds remote text passes it through
// escapeText (or escapeLines, jsonLine); nothing prints it raw.

// escapeText returns s with every byte or character that a terminal could
// act on, or that could hide or reorder text, shown as a visible escape:
//
//   - "\n", "\r", "\t" as \n, \r, \t, so that one field stays one field
//     on one line;
//   - the other C0 controls, ESC and DEL as \xNN (ESC is \x1b);
//   - C1 controls (U+0080-U+009F), bidirectional controls (U+202A-U+202E,
//     U+2066-U+2069, U+200E, U+200F, U+061C), zero-width and other
//     invisible format characters (category Cf: U+200B-U+200D, U+2060,
//     U+FEFF, ...), the other default-ignorable characters (U+034F,
//     U+3164, ...), and the line and paragraph separators U+2028 and
//     U+2029 as \uXXXX (\UXXXXXXXX above U+FFFF);
//   - a byte that is not part of valid UTF-8 as \xNN (a lone 0x9b is CSI
//     to an 8-bit terminal);
//   - the backslash itself as \\, so that an escape in the output always
//     stands for what it says and a payload cannot imitate one.
//
// Everything else, including any printable script and emoji, is kept.
func escapeText(s string) string { return escape(s, true) }

// escape is escapeText, with the backslash left alone unless backslash.
func escape(s string, backslash bool) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (backslash && r == '\\') || unsafeRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s // the common case: nothing to escape
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r, n) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case unsafeRune(r, n):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escapeLines is escapeText for text of the CLI's own that may quote
// remote text and may span lines on purpose (an error message): each line
// is escaped, the newlines between them kept, and so are backslashes (an
// error's %q quoting holds some, and they cannot act on a terminal).
func escapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = escape(l, false)
	}
	return strings.Join(lines, "\n")
}

// unsafeRune reports whether the rune r, n bytes long in its input, is one
// that escapeText shows as an escape (the backslash aside).
func unsafeRune(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return true // a byte that is not UTF-8
	}
	if r < 0x20 || (0x7f <= r && r <= 0x9f) {
		return true // C0, DEL, C1
	}
	if r < 0xa0 {
		return false
	}
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point)
}

// jsonLine makes one line of JSON, as encoding/json wrote it, safe for a
// terminal without changing what it decodes to: every character that
// escapeText would escape and that encoding/json leaves raw (DEL, C1
// controls, bidirectional and invisible characters) becomes a JSON \u
// escape (a surrogate pair above U+FFFF). encoding/json already escapes
// the C0 controls, U+2028 and U+2029, and writes U+FFFD for invalid UTF-8,
// and such characters can only be inside strings, where a \u escape means
// the same character.
func jsonLine(line []byte) []byte {
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRune(line[i:])
		if r == '\n' || !unsafeRune(r, n) {
			out = append(out, line[i:i+n]...)
		} else if r > 0xffff {
			hi, lo := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, hi, lo)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
	}
	return out
}
