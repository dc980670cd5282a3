package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/identity"
)

func TestEscapeText(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"plain", "hello bob", "hello bob"},
		{"other scripts and emoji", "Zoë 山田 مرحبا 🙂 ❤️", "Zoë 山田 مرحبا 🙂 ❤️"},
		{"empty", "", ""},
		{"ESC sequence", "\x1b[2Jgone", `\x1b[2Jgone`},
		{"OSC title with BEL", "\x1b]0;owned\x07", `\x1b]0;owned\x07`},
		{"newline fakes a line", "hi\n42\tdm:x\talice\tsend me money", `hi\n42\tdm:x\talice\tsend me money`},
		{"carriage return overwrites", "ok\rFAKE", `ok\rFAKE`},
		{"NUL and DEL", "a\x00b\x7fc", `a\x00b\x7fc`},
		{"backspace", "abc\b\b\bxyz", `abc\x08\x08\x08xyz`},
		{"C1 CSI as UTF-8", "a\u009b2Jb", `a\u009b2Jb`},
		{"C1 NEL", "a\u0085b", `a\u0085b`},
		{"lone 8-bit CSI byte", "a\x9b2Jb", `a\x9b2Jb`},
		{"invalid UTF-8", "\xff\xfe", `\xff\xfe`},
		{"right-to-left override", "invoice\u202excod.exe", `invoice\u202excod.exe`},
		{"embeddings", "\u202aa\u202bb\u202cc\u202dd", `\u202aa\u202bb\u202cc\u202dd`},
		{"isolates", "\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`},
		{"marks", "a\u200eb\u200fc\u061cd", `a\u200eb\u200fc\u061cd`},
		{"zero-width", "al\u200bi\u200cc\u200de\u2060\ufeff", `al\u200bi\u200cc\u200de\u2060\ufeff`},
		{"soft hyphen", "al\u00adice", `al\u00adice`},
		{"Hangul filler", "\u3164", `\u3164`},
		{"line separator", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"tag character", "a\U000e0041b", `a\U000e0041b`},
		{"backslash", `a\x1b`, `a\\x1b`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := escapeText(tt.in)
			if got != tt.want {
				t.Fatalf("escapeText(%+q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, r := range got {
				if r < 0x20 || (0x7f <= r && r <= 0x9f) || unsafeRune(r, utf8.RuneLen(r)) {
					t.Fatalf("escapeText(%+q) = %+q still holds %U", tt.in, got, r)
				}
			}
			if !utf8.ValidString(got) {
				t.Fatalf("escapeText(%+q) = %+q is not UTF-8", tt.in, got)
			}
		})
	}
}

func TestEscapeLines(t *testing.T) {
	in := "strata: not imported: \"a\\u202e\" \u202eb\x1b[31m\nsecond line"
	want := "strata: not imported: \"a\\u202e\" \\u202eb\\x1b[31m\nsecond line"
	if got := escapeLines(in); got != want {
		t.Fatalf("escapeLines = %q, want %q", got, want)
	}
}

// TestJSONLine: the JSON line decodes to the same payload, and holds no
// character a terminal acts on.
func TestJSONLine(t *testing.T) {
	payload := "\x1b[2J\x7f\u009b\u202eevil\u2066\u200b\ufeff\U000e0041\n\tend"
	b, err := json.Marshal(map[string]any{"payload": payload})
	if err != nil {
		t.Fatal(err)
	}
	line := jsonLine(b)
	for _, r := range string(line) {
		if r < 0x20 || unsafeRune(r, utf8.RuneLen(r)) {
			t.Fatalf("jsonLine left %U raw: %s", r, line)
		}
	}
	var got map[string]string
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("jsonLine made invalid JSON: %v\n%s", err, line)
	}
	if got["payload"] != payload {
		t.Fatalf("jsonLine changed the payload: %+q, want %+q", got["payload"], payload)
	}
}

// TestShowID: an id is shown as text only when that is safe and reads
// back as the same id.
func TestShowID(t *testing.T) {
	for in, want := range map[string]string{
		"friends":         "friends",
		"dm:0123":         "dm:0123",
		"\x1b[2J":         "hex:1b5b324a",
		"a\u202eb":        "hex:61e280ae62",
		"line\nbreak":     "hex:6c696e650a627265616b",
		"hex:41":          "hex:6865783a3431",
		"public:x":        "hex:7075626c69633a78",
		"\xff":            "hex:ff",
		"":                "hex:",
		"back\\slash":     "hex:6261636b5c736c617368",
		"Zoë's 🙂 chat 山田": "Zoë's 🙂 chat 山田",
	} {
		if got := showID([]byte(in)); got != want {
			t.Errorf("showID(%+q) = %q, want %q", in, got, want)
			continue
		}
		if back, err := conversationID(want); err == nil && string(back) != in && in != "" {
			t.Errorf("showID(%+q) = %q reads back as %+q", in, want, back)
		}
	}
}

// TestNamesShowFingerprintOnCollision: a name that two identities show
// (ignoring case and spaces) comes with the fingerprint; a unique one
// does not; names are escaped.
func TestNamesShowFingerprintOnCollision(t *testing.T) {
	self, alice, mallory, bob, eve := key(1), key(2), key(3), key(4), key(5)
	n := namesOf(&appv1.NodeResponse{Identity: self, Name: "carol"}, []*appv1.Contact{
		{Identity: alice, Name: "alice"},
		{Identity: mallory, Name: " Alice "},
		{Identity: bob, Name: "robert", Alias: "bob"},
		{Identity: eve, Name: "Carol"},
	})
	ctx := t.Context()
	for _, tt := range []struct {
		id   []byte
		name string
		want string
	}{
		{alice, "alice", "alice (" + identity.Fingerprint(alice) + ")"},
		{mallory, " Alice ", " Alice  (" + identity.Fingerprint(mallory) + ")"},
		{bob, "bob", "bob"},
		{eve, "Carol", "Carol (" + identity.Fingerprint(eve) + ")"},
		{self, "carol", "carol (" + identity.Fingerprint(self) + ")"},
		{nil, "", "unknown sender"},
		{key(9), "", "unknown sender (" + identity.Fingerprint(key(9)) + ")"},
	} {
		if got := n.show(ctx, tt.id, tt.name); got != tt.want {
			t.Errorf("show(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, want := n.member(ctx, bob), "bob"; got != want {
		t.Errorf("member(bob) = %q, want %q", got, want)
	}
	if got := n.member(ctx, self); !strings.HasSuffix(got, "(this node)") || !strings.Contains(got, identity.Fingerprint(self)) {
		t.Errorf("member(self) = %q", got)
	}
	if got, want := n.member(ctx, key(9)), identity.Fingerprint(key(9)); got != want {
		t.Errorf("member(stranger) = %q, want %q", got, want)
	}
	// An unsafe name is escaped.
	n = namesOf(&appv1.NodeResponse{Identity: self, Name: "me"}, []*appv1.Contact{{Identity: alice, Name: "al\u202eice"}})
	if got := n.show(ctx, alice, "al\u202eice"); got != `al\u202eice` {
		t.Errorf("show of a name with a bidi override = %q", got)
	}
}

func key(n byte) []byte {
	k := make([]byte, 32)
	k[0] = n
	return k
}
