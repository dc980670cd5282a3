package wire

import (
	"bytes"
	"testing"
)

// fuzzDecode decodes in with a fresh value from newV; if that works, the
// value must encode to exactly in (every MLS encoding is canonical), and
// decoding that again must work.
func fuzzDecode(t *testing.T, in []byte, newV func() interface {
	Encoder
	Decoder
}) {
	v := newV()
	if err := Unmarshal(in, v); err != nil {
		return
	}
	out, err := Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("decode∘encode changed the bytes:\n in %x\nout %x", in, out)
	}
	if err := Unmarshal(out, newV()); err != nil {
		t.Fatalf("re-encoded value does not decode: %v", err)
	}
}

func addSamples(f *testing.F, names ...string) {
	s := samples()
	for _, name := range names {
		b, err := Marshal(s[name])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzMLSMessage(f *testing.F) {
	addSamples(f, "key package", "public commit", "public external proposal", "private", "welcome", "group info")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzDecode(t, in, func() interface {
			Encoder
			Decoder
		} {
			return new(MLSMessage)
		})
	})
}

func FuzzRatchetTree(f *testing.F) {
	addSamples(f, "ratchet tree")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzDecode(t, in, func() interface {
			Encoder
			Decoder
		} {
			return new(RatchetTree)
		})
	})
}

func FuzzGroupSecrets(f *testing.F) {
	addSamples(f, "group secrets", "group secrets without path")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzDecode(t, in, func() interface {
			Encoder
			Decoder
		} {
			return new(GroupSecrets)
		})
	})
}

func FuzzCommit(f *testing.F) {
	c := sampleCommit()
	b, _ := Marshal(&c)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzDecode(t, in, func() interface {
			Encoder
			Decoder
		} {
			return new(Commit)
		})
	})
}

func FuzzPrivateMessageContent(f *testing.F) {
	for _, c := range []PrivateMessageContent{
		{Content: Content{ContentType: ContentApplication, ApplicationData: []byte("hi")}, Auth: FramedContentAuthData{Signature: []byte{1}}, Padding: 3},
		{Content: Content{ContentType: ContentCommit, Commit: sampleCommit()}, Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}},
	} {
		b, _ := Marshal(&c)
		f.Add(uint8(c.ContentType), b)
	}
	f.Fuzz(func(t *testing.T, ct uint8, in []byte) {
		c, err := DecodePrivateMessageContent(in, ContentType(ct))
		if err != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("decode∘encode changed the bytes (%v):\n in %x\nout %x", err, in, out)
		}
	})
}
