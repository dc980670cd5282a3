package synclayer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func sampleRecords() []record {
	return []record{
		{typ: recGroup, group: []byte("g"), members: [][]byte{[]byte("alice"), []byte("bob")}},
		{typ: recMessage, group: []byte("g"), own: true, author: []byte("alice"), parents: []ID{testID(1)}, payload: []byte("hello")},
		{typ: recMessage, group: []byte("g"), author: []byte("bob"), payload: []byte{}},
		{typ: recAck, group: []byte("g"), id: testID(2), member: []byte("bob")},
		{typ: recDelivered, group: []byte("g"), id: testID(3)},
		{typ: recTaken, group: []byte("g"), id: testID(3)},
	}
}

// readAll opens the store in dir and returns what it replays.
func readAll(t *testing.T, dir string) ([]record, error) {
	t.Helper()
	var got []record
	s, err := openStore(dir, func(r record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	return got, nil
}

func writeAll(t *testing.T, dir string, recs []record) {
	t.Helper()
	s, err := openStore(dir, func(record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		s.add(r)
	}
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}

// normal makes an empty payload and a nil one compare equal.
func normal(recs []record) []record {
	for i := range recs {
		if recs[i].payload == nil && recs[i].typ == recMessage {
			recs[i].payload = []byte{}
		}
	}
	return recs
}

func TestStoreReplaysWhatWasCommitted(t *testing.T) {
	dir := t.TempDir()
	writeAll(t, dir, sampleRecords())
	got, err := readAll(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := normal(sampleRecords()); !reflect.DeepEqual(normal(got), want) {
		t.Fatalf("replayed %+v\nwant %+v", got, want)
	}
}

func TestStoreCutsATornTail(t *testing.T) {
	tails := map[string]record{
		"message": sampleRecords()[2],
		"taken":   {typ: recTaken, group: []byte("g"), id: testID(3)},
	}
	for kind, last := range tails {
		for _, tc := range []struct {
			name string
			tail func(whole []byte) []byte
		}{
			{"cut in a header", func(whole []byte) []byte { return whole[:3] }},
			{"cut in a body", func(whole []byte) []byte { return whole[:len(whole)-2] }},
			{"bad checksum", func(whole []byte) []byte { whole[len(whole)-1] ^= 0xff; return whole }},
			{"zeroed", func(whole []byte) []byte { return make([]byte, len(whole)) }},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				// The whole records before the torn one end with an ack.
				writeAll(t, dir, []record{sampleRecords()[0], sampleRecords()[2], sampleRecords()[4], sampleRecords()[5]})
				path := filepath.Join(dir, logName)
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				one := encodeRecord(last)
				other := t.TempDir()
				writeAll(t, other, []record{last})
				whole, err := os.ReadFile(filepath.Join(other, logName))
				if err != nil || len(whole) != recordHeader+len(one) {
					t.Fatalf("reference record: %v", err)
				}
				if err := os.WriteFile(path, append(before, tc.tail(whole)...), 0o600); err != nil {
					t.Fatal(err)
				}
				got, err := readAll(t, dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 4 || got[3].typ != recTaken {
					t.Fatalf("replayed %+v, want the 4 whole records", got)
				}
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if len(after) != len(before) {
					t.Fatalf("file is %d bytes after opening, want the torn record cut to %d", len(after), len(before))
				}
			})
		}
	}
}

func TestStoreRefusesDamageInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	writeAll(t, dir, sampleRecords())
	path := filepath.Join(dir, logName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[recordHeader+1] ^= 0xff // inside the first record's body
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, dir); !errors.Is(err, errCorrupt) {
		t.Fatalf("got %v, want an error wrapping errCorrupt", err)
	}
}

// FuzzDecodeRecord checks that the record decoder never panics and that
// what it accepts encodes back to the input.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(encodeRecord(r))
	}
	f.Add([]byte{recGroup, 0, 0, 0, 0, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		if again := encodeRecord(r); string(again) != string(b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}
