package synclayer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

func testID(b byte) ID {
	var id ID
	for i := range id {
		id[i] = b
	}
	return id
}

func TestWireMessageRoundTrip(t *testing.T) {
	many := make([]ID, MaxParents)
	for i := range many {
		many[i] = testID(byte(i))
	}
	for _, tc := range []struct {
		name      string
		ephemeral bool
		parents   []ID
		payload   []byte
	}{
		{"empty", false, nil, nil},
		{"ephemeral", true, nil, []byte("typing")},
		{"one parent", false, []ID{testID(7)}, []byte("hello")},
		{"limits", false, many, bytes.Repeat([]byte{0xAB}, MaxPayload)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeMessage(tc.ephemeral, tc.parents, tc.payload)
			if len(b) > MaxWireSize {
				t.Fatalf("encoded %d bytes, more than MaxWireSize %d", len(b), MaxWireSize)
			}
			w, err := decodeWire(b)
			if err != nil {
				t.Fatal(err)
			}
			if w.typ != wireMessage || w.ephemeral != tc.ephemeral || len(w.parents) != len(tc.parents) || !bytes.Equal(w.payload, tc.payload) {
				t.Fatalf("decoded %+v", w)
			}
			for i := range tc.parents {
				if w.parents[i] != tc.parents[i] {
					t.Fatalf("parent %d is %x, want %x", i, w.parents[i], tc.parents[i])
				}
			}
		})
	}
}

func TestWireAckRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, MaxAckIDs} {
		ids := make([]ID, n)
		for i := range ids {
			ids[i] = testID(byte(i))
		}
		w, err := decodeWire(encodeAck(ids))
		if err != nil {
			t.Fatalf("%d ids: %v", n, err)
		}
		if w.typ != wireAck || len(w.acks) != n || w.acks[n-1] != ids[n-1] {
			t.Fatalf("%d ids: decoded %d ids, type %d", n, len(w.acks), w.typ)
		}
	}
}

// TestWireGolden pins the documented layout byte for byte.
func TestWireGolden(t *testing.T) {
	msg := encodeMessage(true, []ID{testID(0x11)}, []byte("hi"))
	want := append([]byte{1, 1, 1, 1}, bytes.Repeat([]byte{0x11}, 32)...)
	want = append(want, 0, 0, 0, 2, 'h', 'i')
	if !bytes.Equal(msg, want) {
		t.Fatalf("message encodes as %x, want %x", msg, want)
	}
	ack := encodeAck([]ID{testID(0x22)})
	want = append([]byte{1, 2, 0, 1}, bytes.Repeat([]byte{0x22}, 32)...)
	if !bytes.Equal(ack, want) {
		t.Fatalf("ack encodes as %x, want %x", ack, want)
	}
}

func TestWireRejects(t *testing.T) {
	good := encodeMessage(false, []ID{testID(1)}, []byte("payload"))
	goodAck := encodeAck([]ID{testID(1), testID(2)})
	with := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	tooMany := append([]byte{1, 1, 0, MaxParents + 1}, make([]byte, (MaxParents+1)*32+4)...)
	bigPayload := binary.BigEndian.AppendUint32([]byte{1, 1, 0, 0}, MaxPayload+1)
	bigPayload = append(bigPayload, make([]byte, MaxPayload+1)...)
	bigAck := binary.BigEndian.AppendUint16([]byte{1, 2}, MaxAckIDs+1)
	bigAck = append(bigAck, make([]byte, (MaxAckIDs+1)*32)...)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"one byte", []byte{1}},
		{"version 0", with(good, func(b []byte) []byte { b[0] = 0; return b })},
		{"version 2", with(good, func(b []byte) []byte { b[0] = 2; return b })},
		{"type 0", with(good, func(b []byte) []byte { b[1] = 0; return b })},
		{"type 3", with(good, func(b []byte) []byte { b[1] = 3; return b })},
		{"message header cut", good[:3]},
		{"unknown flag", with(good, func(b []byte) []byte { b[2] = 2; return b })},
		{"too many parents", tooMany},
		{"cut in the parents", good[:20]},
		{"cut in the length", good[:4+32+2]},
		{"payload short", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"payload too big", bigPayload},
		{"ack header cut", goodAck[:3]},
		{"ack of none", []byte{1, 2, 0, 0}},
		{"ack too big", bigAck},
		{"ack cut", goodAck[:len(goodAck)-1]},
		{"ack trailing byte", append(bytes.Clone(goodAck), 0)},
	} {
		if _, err := decodeWire(tc.b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: got %v, want an error wrapping errMalformed", tc.name, err)
		}
	}
}

// TestMessageIDLayout checks MessageID against the documented byte layout.
func TestMessageIDLayout(t *testing.T) {
	group, author, payload := []byte("group"), bytes.Repeat([]byte{9}, IdentitySize), []byte("body")
	parents := []ID{testID(1), testID(2)}
	var in []byte
	in = append(in, "strata-syncfix/v1/message-id"...)
	in = binary.BigEndian.AppendUint32(in, uint32(len(group)))
	in = append(in, group...)
	in = binary.BigEndian.AppendUint32(in, uint32(len(author)))
	in = append(in, author...)
	in = binary.BigEndian.AppendUint32(in, 2)
	in = append(in, parents[0][:]...)
	in = append(in, parents[1][:]...)
	in = binary.BigEndian.AppendUint32(in, uint32(len(payload)))
	in = append(in, payload...)
	if got, want := MessageID(group, author, parents, payload), ID(sha256.Sum256(in)); got != want {
		t.Fatalf("MessageID = %x, want %x", got, want)
	}
	if MessageID(group, author, []ID{parents[1], parents[0]}, payload) == MessageID(group, author, parents, payload) {
		t.Fatal("the order of parents does not change the id")
	}
}

// FuzzDecodeWire checks that the decoder never panics and that every frame
// it accepts has exactly one encoding: encoding what it decoded gives back
// the input.
func FuzzDecodeWire(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeMessage(false, nil, nil))
	f.Add(encodeMessage(true, []ID{testID(3)}, []byte("seed")))
	f.Add(encodeAck([]ID{testID(4), testID(5)}))
	f.Add([]byte{1, 1, 0, 255, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWire(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		var again []byte
		switch w.typ {
		case wireMessage:
			again = encodeMessage(w.ephemeral, w.parents, w.payload)
		case wireAck:
			again = encodeAck(w.acks)
		default:
			t.Fatalf("decoded an unknown type %d without error", w.typ)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}
