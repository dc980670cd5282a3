package mvds

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestMessageIDVectors pins MessageID to vectors computed independently
// with Python's hashlib over the documented bytes:
//
//	sha256(b"MESSAGE_ID" + group + struct.pack("<q", ts) + body)
//
// The first is the digest's (specs/datasync.md §1.3) vector for the
// vacp2p/mvds encoding; the second hashes a Strata Body.
func TestMessageIDVectors(t *testing.T) {
	author := bytes.Repeat([]byte{0xaa}, 32)
	var parent ID
	for i := range parent {
		parent[i] = 0x01
	}
	strataBody, err := encodeBody(author, []ID{parent}, []byte("hello"), false)
	if err != nil {
		t.Fatal(err)
	}
	// The Body, byte by byte: version 1, author, one parent, payload.
	wantBody := "0801" + "1220" + strings.Repeat("aa", 32) + "1a20" + strings.Repeat("01", 32) + "2205" + hex.EncodeToString([]byte("hello"))
	if got := hex.EncodeToString(strataBody); got != wantBody {
		t.Fatalf("Body encodes as %s, want %s", got, wantBody)
	}
	for _, tc := range []struct {
		name      string
		group     []byte
		timestamp int64
		body      []byte
		want      string
	}{
		{"digest vector", bytes.Repeat([]byte{0x01}, 32), 1, []byte("hello"), "2222fa3c1d0047883aa63ee98889e04e18a612bb39d921e335016f2b231ac9f7"},
		{"strata body", bytes.Repeat([]byte{0x02}, 32), 1700000000123, strataBody, "2340d5e7d7896794644a76af81bb6e7a6e12703111dfe0121dffaff129b78af7"},
		{"negative timestamp, empty body", []byte("g"), -1, nil, "061dc0c128269cc0653fc9541c892fdd8c2012d1fb70eadeb5ba6315b2df7aaf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MessageID(tc.group, tc.timestamp, tc.body).String(); got != tc.want {
				t.Errorf("MessageID = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestWireFieldNumbers checks the spec's field numbers on the wire, by
// their tag bytes (specs/datasync.md §1.2).
func TestWireFieldNumbers(t *testing.T) {
	id := make([]byte, 32)
	for _, tc := range []struct {
		name string
		p    *wirepb.Payload
		tag  string
	}{
		{"acks 5001", &wirepb.Payload{Acks: [][]byte{id}}, "cab802"},
		{"offers 5002", &wirepb.Payload{Offers: [][]byte{id}}, "d2b802"},
		{"requests 5003", &wirepb.Payload{Requests: [][]byte{id}}, "dab802"},
		{"messages 5004", &wirepb.Payload{Messages: []*wirepb.Message{{GroupId: []byte{1}}}}, "e2b802"},
		{"bound_messages 5100", &wirepb.Payload{BoundMessages: []*wirepb.Message{{GroupId: []byte{1}}}}, "e2be02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(encode(t, tc.p)); !strings.HasPrefix(got, tc.tag) {
				t.Errorf("encodes as %s, want the tag %s first", got, tc.tag)
			}
		})
	}
	m := encode(t, &wirepb.Payload{Messages: []*wirepb.Message{{GroupId: []byte{7}, Timestamp: 1, Body: []byte{9}}}})
	// 5004 LEN, length, then 6001 LEN 1 byte, 6002 VARINT 1, 6003 LEN 1 byte.
	if got, want := hex.EncodeToString(m), "e2b8020e"+"8af7020107"+"90f70201"+"9af7020109"; got != want {
		t.Errorf("a message encodes as %s, want %s", got, want)
	}
	// 6004 LEN (Metadata: 1 LEN parent, 2 VARINT true), then 6100 LEN.
	parent := ID{0xee}
	meta := specMessage([]byte{7}, 1, []byte{9}, []ID{parent}, true)
	meta.Author = []byte{5}
	want := "8af7020107" + "90f70201" + "9af7020109" + "a2f70224" + "0a20" + hex.EncodeToString(parent[:]) + "1001" + "a2fd020105"
	if got := hex.EncodeToString(encodeMessage(t, meta)); got != want {
		t.Errorf("a message with metadata and author encodes as %s, want %s", got, want)
	}
}

// TestEphemeralMillis: a timestamp within the window in milliseconds, or
// failing that in seconds, is fresh; nothing else, and no overflow.
func TestEphemeralMillis(t *testing.T) {
	const now, window = int64(1_700_000_000_000), int64(300_000)
	for _, tc := range []struct {
		ts     int64
		ms     int64
		fresh  bool
		reason string
	}{
		{now, now, true, "now, ms"},
		{now - window, now - window, true, "the window's edge"},
		{now + window + 1, now + window + 1, false, "too far ahead"},
		{now / 1000, now, true, "now, seconds"},
		{now/1000 - window/1000 - 1, now/1000 - window/1000 - 1, false, "too old in seconds"},
		{-1, -1, false, "negative"},
		{math.MaxInt64, math.MaxInt64, false, "largest"},
		{math.MinInt64, math.MinInt64, false, "smallest"},
		{math.MaxInt64 / 999, math.MaxInt64 / 999, false, "seconds that overflow in ms"},
	} {
		if ms, fresh := ephemeralMillis(tc.ts, now, window); ms != tc.ms || fresh != tc.fresh {
			t.Errorf("%s: ephemeralMillis(%d) = %d, %v; want %d, %v", tc.reason, tc.ts, ms, fresh, tc.ms, tc.fresh)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	id := bytes.Repeat([]byte{3}, 32)
	ids := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = id
		}
		return out
	}
	// An unknown field (5099 in the Payload) is skipped, per protobuf
	// rules.
	unknown := protowire.AppendTag(encode(t, &wirepb.Payload{Acks: [][]byte{id}}), 5099, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("future"))
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"one ack", encode(t, &wirepb.Payload{Acks: [][]byte{id}}), nil},
		{"unknown field skipped", unknown, nil},
		{"max ids in each section", encode(t, &wirepb.Payload{Acks: ids(4), Offers: ids(4), Requests: ids(4)}), nil},
		{"empty", nil, errEmpty},
		{"garbage", []byte{0xff, 0xff, 0xff}, errMalformed},
		{"truncated", encode(t, &wirepb.Payload{Acks: [][]byte{id}})[:10], errMalformed},
		{"too many acks", encode(t, &wirepb.Payload{Acks: ids(5)}), errTooManyIDs},
		{"too many messages", encode(t, &wirepb.Payload{Messages: make([]*wirepb.Message, 5)}), errTooManyIDs},
		{"short ack", encode(t, &wirepb.Payload{Acks: [][]byte{id[:31]}}), errBadID},
		{"long request", encode(t, &wirepb.Payload{Requests: [][]byte{append(id, 0)}}), errBadID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePayload(tc.in, 4)
			if !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
				t.Fatalf("decodePayload: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	author := identity("a")
	good := func(parents []ID, payload []byte) []byte {
		b, err := encodeBody(author, parents, payload, false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p1, p2 := ID{1}, ID{2}
	enc := func(pb *wirepb.Body) []byte {
		b, err := proto.Marshal(pb)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"good", good([]ID{p1, p2}, []byte("x")), nil},
		{"no parents, empty payload", good(nil, nil), nil},
		{"max payload", good(nil, make([]byte, MaxPayload)), nil},
		{"garbage", []byte{0x0a, 0xff}, errMalformed},
		{"version 0", enc(&wirepb.Body{Author: author}), errVersion},
		{"version 2", enc(&wirepb.Body{Version: 2, Author: author}), errVersion},
		{"short author", enc(&wirepb.Body{Version: 1, Author: author[:31]}), errMalformed},
		{"too many parents", good([]ID{p1, p2, {3}}, nil), errTooManyParents},
		{"short parent", enc(&wirepb.Body{Version: 1, Author: author, Parents: [][]byte{{1}}}), errBadID},
		{"parent twice", good([]ID{p1, p1}, nil), errMalformed},
		{"payload too large", good(nil, make([]byte, MaxPayload+1)), errOversize},
		{"body too large", make([]byte, MaxBody+1), errOversize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBody(tc.in, 2)
			if !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
				t.Fatalf("decodeBody: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestPayloadBuilderSize checks that the builder's size accounting is the
// encoded size exactly, and that it keeps to its limits.
func TestPayloadBuilderSize(t *testing.T) {
	b := newPayloadBuilder(MinFrame, 3)
	for i := range 4 {
		ok := b.addAck(ID{byte(i)})
		if ok != (i < 3) {
			t.Fatalf("ack %d: fitted %v", i, ok)
		}
	}
	b.addOffer(ID{9})
	b.addRequest(ID{8})
	body, err := encodeBody(identity("a"), nil, make([]byte, 1000), false)
	if err != nil {
		t.Fatal(err)
	}
	if !b.addMessage(outMessage{m: &wirepb.Message{GroupId: testGroupID, Timestamp: 12345, Body: body}, format: formatBound}, false) {
		t.Fatal("a message did not fit")
	}
	out, err := b.encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != b.size {
		t.Fatalf("encoded %d bytes, builder counted %d", len(out), b.size)
	}
	big, err := encodeBody(identity("a"), nil, make([]byte, MaxPayload), false)
	if err != nil {
		t.Fatal(err)
	}
	one := newPayloadBuilder(MinFrame, 10)
	if !one.addMessage(outMessage{m: &wirepb.Message{GroupId: bytes.Repeat([]byte{1}, MaxGroupID), Timestamp: -1, Body: big}, format: formatBound}, false) {
		t.Fatal("a largest message does not fit in MinFrame")
	}
	if one.addMessage(outMessage{m: &wirepb.Message{GroupId: testGroupID, Body: big}, format: formatBound}, false) {
		t.Fatal("two largest messages fit in MinFrame")
	}
}
