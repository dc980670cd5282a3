package sdk

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

// LogLimit bounds what a plugin process may write to the host's log. The
// plugin's stderr is read line by line; each line is cut to MaxLine bytes,
// cleaned (cleanLogText) and re-encoded before go-plugin parses it into the
// host's log, and lines beyond the rate are dropped and counted.
type LogLimit struct {
	// PerSecond is the sustained number of lines a plugin may log per
	// second; default 100.
	PerSecond float64
	// Burst is how many lines may come at once above the sustained rate;
	// default 1000.
	Burst int
	// MaxLine is the longest line kept, in bytes; the rest of a longer line
	// is dropped and the line marked "[truncated]". Default 8 KiB.
	MaxLine int
}

func (l LogLimit) withDefaults() LogLimit {
	if l.PerSecond <= 0 {
		l.PerSecond = 100
	}
	if l.Burst <= 0 {
		l.Burst = 1000
	}
	if l.MaxLine <= 0 {
		l.MaxLine = 8 << 10
	}
	return l
}

// logReportEvery is how often, at most, the count of lines dropped by the
// rate limit is logged while a plugin keeps flooding.
const logReportEvery = time.Second

// relayLog copies a plugin's stderr from raw to out for go-plugin to parse,
// one cleaned line at a time, within lim, and closes out at raw's end.
// host receives the count of the lines dropped. Reading raw to its end
// whatever happens keeps the plugin from blocking on a full pipe.
//
// go-plugin hands every line of a plugin's stderr to the host's logger: a
// JSON line as a log entry at the level the plugin chose, any other line
// as text. Without this filter a plugin could write terminal escape
// sequences into the host's log (which an operator reads in a terminal),
// fake whole host log lines with newlines in a message, flood the log, and
// crash the host: go-plugin takes "@message", "@level" and "@timestamp"
// of a JSON line to be strings without checking (a number there panics the
// host's log goroutine). relayLog re-encodes every JSON line with those
// fields as strings and every value cleaned, and cleans every other line.
func relayLog(raw io.Reader, out *io.PipeWriter, lim LogLimit, host hclog.Logger, now func() time.Time) {
	lim = lim.withDefaults()
	r := bufio.NewReaderSize(raw, lim.MaxLine)
	bucket := tokenBucket{rate: lim.PerSecond, burst: float64(lim.Burst), tokens: float64(lim.Burst), last: now()}
	var (
		dropped    uint64
		reportedAt time.Time
		broken     bool // out's reader is gone: keep draining raw
	)
	report := func() {
		if dropped > 0 {
			host.Warn("plugin log lines dropped: the plugin logs faster than the host allows",
				"dropped", dropped, "lines_per_second", lim.PerSecond, "burst", lim.Burst)
			dropped = 0
		}
		reportedAt = now()
	}
	defer func() {
		report()
		out.Close()
	}()
	for {
		line, truncated, err := readLine(r)
		if len(line) == 0 && err != nil {
			return
		}
		t := now()
		if !bucket.take(t) {
			dropped++
			if t.Sub(reportedAt) >= logReportEvery {
				report()
			}
			continue
		}
		if dropped > 0 {
			report()
		}
		if !broken {
			if _, werr := out.Write(cleanLogLine(line, truncated)); werr != nil {
				broken = true
			}
		}
		if err != nil {
			return
		}
	}
}

// readLine reads one line without its end, at most r's buffer size of it;
// the rest of a longer line is read and dropped, and truncated is set.
func readLine(r *bufio.Reader) (line []byte, truncated bool, err error) {
	b, err := r.ReadSlice('\n')
	line = append([]byte(nil), bytes.TrimRight(b, "\r\n")...)
	for errors.Is(err, bufio.ErrBufferFull) {
		truncated = true
		_, err = r.ReadSlice('\n')
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // the last line, without its newline; EOF comes next
	}
	return line, truncated, err
}

// tokenBucket is a rate limit: take succeeds while tokens remain, and
// tokens come back at rate per second up to burst.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// hclogTimeFormat is the layout of "@timestamp" in hclog's JSON output,
// the one go-plugin parses.
const hclogTimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// cleanLogLine returns a line of a plugin's stderr as it may reach
// go-plugin, with its newline: a JSON object re-encoded with "@message"
// and "@level" as cleaned strings (a level hclog does not know becomes
// debug), "@timestamp" kept only when it parses, and every other key and
// value cleaned; any other line cleaned as text.
func cleanLogLine(line []byte, truncated bool) []byte {
	if len(line) > 0 && line[0] == '{' && !truncated {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			out := make(map[string]any, len(m)+2)
			out["@message"] = cleanLogText(logString(m["@message"]))
			out["@level"] = logLevel(m["@level"])
			if ts, ok := m["@timestamp"].(string); ok {
				if _, err := time.Parse(hclogTimeFormat, ts); err == nil {
					out["@timestamp"] = ts
				}
			}
			for k, v := range m {
				if k == "@message" || k == "@level" || k == "@timestamp" {
					continue
				}
				k = cleanLogText(k)
				switch v := v.(type) {
				case float64, bool, nil:
					out[k] = v
				default:
					out[k] = cleanLogText(logString(v))
				}
			}
			if b, err := json.Marshal(out); err == nil {
				return append(b, '\n')
			}
		}
	}
	s := cleanLogText(string(line))
	if truncated {
		s += " [truncated]"
	}
	return []byte(s + "\n")
}

// logString is a JSON value as text: a string as it is, anything else as
// compact JSON.
func logString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// logLevel is a plugin's "@level" as one hclog knows, debug when it is
// not one (go-plugin logs a line without a known level at debug too).
func logLevel(v any) string {
	s, _ := v.(string)
	switch l := strings.ToLower(s); l {
	case "trace", "debug", "info", "warn", "error":
		return l
	}
	return "debug"
}

// cleanLogText returns s with everything a terminal could act on, or that
// could hide, fake or reorder text, shown as a visible escape: newline,
// carriage return and tab as \n, \r, \t (so that a plugin cannot fake a
// host log line); other C0 controls, ESC (the start of every terminal
// escape sequence) and DEL as \xNN; C1 controls, bidirectional controls,
// invisible format characters, other default-ignorable characters and the
// line and paragraph separators as \uXXXX; bytes that are not UTF-8 as
// \xNN. Everything else is kept. It is the rule of the CLI's escapeText,
// applied to what plugins log.
func cleanLogText(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeLogRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeLogRune(r, n) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case unsafeLogRune(r, n):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeLogRune reports whether cleanLogText escapes r (n is its length
// in bytes as decoded).
func unsafeLogRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r < 0x80:
		return false
	}
	return unicode.In(r, unicode.Bidi_Control, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Zl, unicode.Zp)
}
