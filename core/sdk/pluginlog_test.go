package sdk

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

func TestCleanLogText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcode ✓":        "plain text, ünïcode ✓",
		"\x1b[31mred\x1b[0m":           `\x1b[31mred\x1b[0m`,
		"one\ntwo\rthree\tfour":        `one\ntwo\rthree\tfour`,
		"c1 \u009b31m":                 `c1 \u009b31m`,
		"bidi \u202eevil\u202c":        `bidi \u202eevil\u202c`,
		"zero\u200bwidth\ufeff":        `zero\u200bwidth\ufeff`,
		"bad \xff utf8":                `bad \xff utf8`,
		"bell\x07 del\x7f sep\u2028 x": `bell\x07 del\x7f sep\u2028 x`,
	} {
		if got := cleanLogText(in); got != want {
			t.Errorf("cleanLogText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCleanLogLineJSON: a JSON line comes out as one go-plugin can parse
// without a panic: message and level strings, every value clean.
func TestCleanLogLineJSON(t *testing.T) {
	for _, in := range []string{
		`{"@message":5,"@level":7,"@timestamp":false}`,
		`{"@message":["a"],"@level":"ERROR","k\u001b":"\u001b[2J","n":3,"m":{"x":"\u202e"}}`,
		`{"@message":"ok","@level":"info","@timestamp":"2024-01-02T03:04:05.000000Z"}`,
	} {
		out := cleanLogLine([]byte(in), false)
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%s: not JSON: %s", in, out)
		}
		if _, ok := m["@message"].(string); !ok {
			t.Errorf("%s: @message is %T", in, m["@message"])
		}
		if l, ok := m["@level"].(string); !ok || hclog.LevelFromString(l) == hclog.NoLevel {
			t.Errorf("%s: @level is %v", in, m["@level"])
		}
		if ts, ok := m["@timestamp"]; ok {
			if _, err := time.Parse(hclogTimeFormat, ts.(string)); err != nil {
				t.Errorf("%s: @timestamp %v kept", in, ts)
			}
		}
		for k, v := range m {
			if strings.ContainsAny(k, "\x1b\u202e") || strings.ContainsAny(logString(v), "\x1b\u202e") {
				t.Errorf("%s: %q=%v kept a control", in, k, v)
			}
		}
	}
}

// manualClock is a clock that tests move.
type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time { return c.t }

// TestRelayLogRate: past the burst, lines pass at the rate; the rest are
// counted, and the count is logged.
func TestRelayLogRate(t *testing.T) {
	var in bytes.Buffer
	for range 100 {
		in.WriteString("line\n")
	}
	clock := &manualClock{t: time.Unix(0, 0)}
	var hostLog bytes.Buffer
	host := hclog.New(&hclog.LoggerOptions{Output: &hostLog, Level: hclog.Trace})
	r, w := io.Pipe()
	go relayLog(&in, w, LogLimit{PerSecond: 1, Burst: 10, MaxLine: 64}, host, clock.now)
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("line\n")); n != 10 {
		t.Fatalf("%d lines passed with no time passing; the burst is 10", n)
	}
	// The first drop is reported at once, the rest at the end.
	if !strings.Contains(hostLog.String(), "dropped=1 ") || !strings.Contains(hostLog.String(), "dropped=89 ") {
		t.Fatalf("the host log does not count 90 dropped lines:\n%s", hostLog.String())
	}
}

// TestRelayLogCutsLongLines: a line beyond MaxLine is cut, and the next
// line is whole.
func TestRelayLogCutsLongLines(t *testing.T) {
	in := strings.NewReader(strings.Repeat("x", 1000) + "\nnext\nlast")
	r, w := io.Pipe()
	go relayLog(in, w, LogLimit{MaxLine: 64}, hclog.NewNullLogger(), time.Now)
	out, _ := io.ReadAll(r)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 || len(lines[0]) > 64+len(" [truncated]") || !strings.HasSuffix(lines[0], "[truncated]") || lines[1] != "next" || lines[2] != "last" {
		t.Fatalf("got %q", lines)
	}
}

// TestAdmit: frames beyond the count, the header bound or their
// direction's payload limit are dropped and reported; the rest are kept
// in order.
func TestAdmit(t *testing.T) {
	var got []Refusal
	r := newRecvLimits(FrameLimits{UpPayload: 10, DownPayload: 20}, 0, BatchOptions{MaxFrames: 4}, func(rf Refusal) { got = append(got, rf) })
	up := func(n int) *commonv1.Frame {
		return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Payload: make([]byte, n)}
	}
	down := func(n int) *commonv1.Frame {
		return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Payload: make([]byte, n)}
	}
	b := &commonv1.Batch{
		Frames: []*commonv1.Frame{up(10), up(11), down(20), {Direction: commonv1.Direction_DIRECTION_UP, Peer: make([]byte, MaxFrameHeader+1)}, up(1), down(1)},
		Events: []*commonv1.Event{{}},
	}
	r.admit(b)
	if len(b.Frames) != 2 || len(b.Frames[0].Payload) != 10 || len(b.Frames[1].Payload) != 20 || len(b.Events) != 0 {
		t.Fatalf("kept %v", b)
	}
	want := map[string]int{
		RefusedPayload + "/DIRECTION_UP":          1,
		RefusedHeader + "/DIRECTION_UP":           1,
		RefusedTooMany + "/DIRECTION_UP":          1,
		RefusedTooMany + "/DIRECTION_DOWN":        1,
		RefusedTooMany + "/DIRECTION_UNSPECIFIED": 1,
	}
	for _, rf := range got {
		k := rf.Reason + "/" + rf.Direction.String()
		if want[k] != rf.Frames+rf.Events {
			t.Errorf("%s: %d, want %d", k, rf.Frames+rf.Events, want[k])
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("not reported: %v", want)
	}
	clean := &commonv1.Batch{Frames: []*commonv1.Frame{up(10), down(20)}}
	if allocs := testing.AllocsPerRun(100, func() { r.admit(clean) }); allocs != 0 {
		t.Errorf("a batch within its limits cost %v allocations", allocs)
	}
}

// TestStreamRecvLimit: the limit of a batch follows the declared frame
// size, not gRPC's 2 GiB.
func TestStreamRecvLimit(t *testing.T) {
	small := streamRecvLimit(BatchOptions{}.withDefaults(), 1024)
	if small > 4<<20 {
		t.Errorf("1 KiB frames: %d bytes per batch", small)
	}
	big := streamRecvLimit(BatchOptions{}.withDefaults(), 1<<20)
	if big < 2<<20 || big > 8<<20 {
		t.Errorf("1 MiB frames: %d bytes per batch", big)
	}
}
