package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// vectors is testdata/vectors.json (testdata/README.md says where each
// part comes from).
type vectors struct {
	IDs []struct {
		Name      string `json:"name"`
		Group     string `json:"group"`
		Timestamp uint64 `json:"timestamp"`
		Body      string `json:"body"`
		BodyByte  string `json:"body_byte"`
		BodyLen   int    `json:"body_len"`
		Root      string `json:"root"`
		ID        string `json:"id"`
	} `json:"ids"`
	Groups []struct {
		Client     string `json:"client"`
		Major      uint32 `json:"major"`
		Descriptor string `json:"descriptor"`
		ID         string `json:"id"`
	} `json:"groups"`
	Records []struct {
		Name      string   `json:"name"`
		Type      Type     `json:"type"`
		IDs       []string `json:"ids"`
		Group     string   `json:"group"`
		Timestamp uint64   `json:"timestamp"`
		Body      string   `json:"body"`
		ID        string   `json:"id"`
		Versions  string   `json:"versions"`
		Nonce     string   `json:"nonce"`
		Bytes     string   `json:"bytes"`
	} `json:"records"`
	Bad []struct {
		Name  string `json:"name"`
		Bytes string `json:"bytes"`
		Pad   int    `json:"pad"`
		Error string `json:"error"`
	} `json:"bad"`
	Stream []struct {
		Name  string `json:"name"`
		Bytes string `json:"bytes"`
		Types []Type `json:"types"`
	} `json:"stream"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	raw, err := os.ReadFile("../testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func id(t testing.TB, s string) ID {
	t.Helper()
	b := unhex(t, s)
	if len(b) != IDLen {
		t.Fatalf("id %s is %d bytes", s, len(b))
	}
	return ID(b)
}

// TestDigestExample is the digest's worked example (§2.3), written out
// here as well as in the vectors so that a changed vectors file cannot
// hide a changed recipe.
func TestDigestExample(t *testing.T) {
	var g ID
	for i := range g {
		g[i] = 1
	}
	root := BlockRoot([]byte("hello"))
	if got := hex.EncodeToString(root[:]); got != "b0e676a96a73170b2567b73f369086124a367b5a2235fdb992ad61023b758f2c" {
		t.Errorf("root %s", got)
	}
	mid := MessageID(g, 1, []byte("hello"))
	if got := hex.EncodeToString(mid[:]); got != "8d4c65f3eacad535e1317a93feac200b9f1e17aa9ae24910d33f36d6a6869b6f" {
		t.Errorf("id %s", got)
	}
}

func TestIDVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.IDs) == 0 || len(v.Groups) == 0 {
		t.Fatal("no vectors")
	}
	for _, c := range v.IDs {
		body := unhex(t, c.Body)
		if c.BodyLen > 0 {
			body = bytes.Repeat(unhex(t, c.BodyByte), c.BodyLen)
		}
		if got := BlockRoot(body); got != id(t, c.Root) {
			t.Errorf("%s: root %x, want %s", c.Name, got, c.Root)
		}
		m := RawMessage{Group: id(t, c.Group), Timestamp: c.Timestamp, Body: body}
		if got := m.ID(); got != id(t, c.ID) {
			t.Errorf("%s: id %x, want %s", c.Name, got, c.ID)
		}
	}
	for _, c := range v.Groups {
		if got := GroupID(c.Client, c.Major, unhex(t, c.Descriptor)); got != id(t, c.ID) {
			t.Errorf("group %s/%d: %x, want %s", c.Client, c.Major, got, c.ID)
		}
	}
}

// TestRecordVectors encodes each vector record and compares it byte for
// byte, then decodes it and compares the fields.
func TestRecordVectors(t *testing.T) {
	v := loadVectors(t)
	seen := map[Type]bool{}
	for _, c := range v.Records {
		want := unhex(t, c.Bytes)
		var got []byte
		switch c.Type {
		case Ack, Offer, Request:
			var ids []ID
			for _, s := range c.IDs {
				ids = append(ids, id(t, s))
			}
			got = AppendIDs(nil, c.Type, ids)
			r, n, err := Next(want)
			if err != nil || n != len(want) || r.Type != c.Type {
				t.Fatalf("%s: Next: %v %d %v", c.Name, r.Type, n, err)
			}
			dec, err := DecodeIDs(r.Payload)
			if err != nil || len(dec) != len(ids) {
				t.Fatalf("%s: DecodeIDs: %v %v", c.Name, dec, err)
			}
			for i := range ids {
				if dec[i] != ids[i] {
					t.Errorf("%s: id %d: %x", c.Name, i, dec[i])
				}
			}
		case Message:
			m := RawMessage{Group: id(t, c.Group), Timestamp: c.Timestamp, Body: unhex(t, c.Body)}
			got = AppendMessage(nil, m)
			if m.RecordLen() != len(want) {
				t.Errorf("%s: RecordLen %d, want %d", c.Name, m.RecordLen(), len(want))
			}
			r, _, err := Next(want)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeMessage(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Group != m.Group || dec.Timestamp != m.Timestamp || !bytes.Equal(dec.Body, m.Body) || dec.ID() != id(t, c.ID) {
				t.Errorf("%s: decoded %+v", c.Name, dec)
			}
		case Versions:
			got = AppendVersions(nil, unhex(t, c.Versions)...)
			r, _, err := Next(want)
			if err != nil {
				t.Fatal(err)
			}
			if vs, err := DecodeVersions(r.Payload); err != nil || !bytes.Equal(vs, unhex(t, c.Versions)) {
				t.Errorf("%s: %x %v", c.Name, vs, err)
			}
		case Priority:
			nonce := [PriorityNonceLen]byte(unhex(t, c.Nonce))
			got = AppendPriority(nil, nonce)
			r, _, err := Next(want)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := DecodePriority(r.Payload); err != nil || n != nonce {
				t.Errorf("%s: %x %v", c.Name, n, err)
			}
		default:
			t.Fatalf("%s: type %d", c.Name, c.Type)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded\n %x\nwant\n %x", c.Name, got, want)
		}
		seen[c.Type] = true
	}
	for ty := Ack; ty <= Priority; ty++ {
		if !seen[ty] {
			t.Errorf("no vector of %v", ty)
		}
	}
}

var errKinds = map[string]error{
	"version": ErrVersion, "too_large": ErrTooLarge, "truncated": ErrTruncated, "ids": ErrIDs,
	"message": ErrMessage, "versions": ErrVersions, "priority": ErrPriority,
}

// TestBadVectors: every record a conforming reader rejects is an error of
// its kind, from Next (the header) or from Check (the payload).
func TestBadVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.Bad) == 0 {
		t.Fatal("no vectors")
	}
	for _, c := range v.Bad {
		b := append(unhex(t, c.Bytes), make([]byte, c.Pad)...)
		want, ok := errKinds[c.Error]
		if !ok {
			t.Fatalf("%s: error kind %q", c.Name, c.Error)
		}
		r, _, err := Next(b)
		if err == nil {
			err = r.Check()
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", c.Name, err, want)
		}
	}
}

// TestStreamSkipsUnknown reads records back to back; an unknown type is
// returned with Known false, and its payload passes Check.
func TestStreamSkipsUnknown(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Stream {
		b := unhex(t, c.Bytes)
		var types []Type
		for len(b) > 0 {
			r, n, err := Next(b)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if err := r.Check(); err != nil {
				t.Fatalf("%s: %v: %v", c.Name, r.Type, err)
			}
			types = append(types, r.Type)
			b = b[n:]
		}
		if len(types) != len(c.Types) {
			t.Fatalf("%s: %v, want %v", c.Name, types, c.Types)
		}
		for i := range types {
			if types[i] != c.Types[i] || types[i].Known() != (types[i] <= Priority) {
				t.Errorf("%s: %v, want %v", c.Name, types, c.Types)
			}
		}
	}
}

// TestLimits checks the constants against §2.4 and the largest records.
func TestLimits(t *testing.T) {
	if MaxIDs != 1536 || MaxMessageLen != 32808 || MaxRecordPayload != 49152 {
		t.Fatalf("limits %d %d %d", MaxIDs, MaxMessageLen, MaxRecordPayload)
	}
	ids := make([]ID, MaxIDs)
	b := AppendIDs(nil, Offer, ids)
	r, n, err := Next(b)
	if err != nil || n != len(b) || r.Check() != nil {
		t.Fatalf("largest OFFER: %v", err)
	}
	if _, err := DecodeIDs(make([]byte, MaxRecordPayload+IDLen)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many ids: %v", err)
	}
	m := RawMessage{Body: make([]byte, MaxBody)}
	b = AppendMessage(nil, m)
	if r, _, err := Next(b); err != nil || r.Check() != nil {
		t.Fatalf("largest MESSAGE: %v", err)
	}
}
