package node

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/identity"
)

func signer(t testing.TB) *Node {
	t.Helper()
	id, err := identity.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { id.Close() })
	return &Node{id: id}
}

// TestEnvelopeOpens: what seal makes opens to the author, conversation,
// payload and id it was made with; two seals of the same payload are two
// messages; a payload above MaxPayload is refused, and one of MaxPayload
// with the longest conversation id stays within EnvelopeOverhead.
func TestEnvelopeOpens(t *testing.T) {
	n := signer(t)
	a, err := n.seal([]byte("conv"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := openEnvelope(a.wire)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.author, n.id.Public()) || string(o.conversation) != "conv" || string(o.payload) != "hello" || !bytes.Equal(o.id, a.id) {
		t.Fatalf("opened %+v", o)
	}
	b, err := n.seal([]byte("conv"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.id, b.id) {
		t.Fatal("two messages with the same text have the same id")
	}
	if _, err := n.seal([]byte("conv"), make([]byte, MaxPayload+1)); err == nil {
		t.Fatal("sealed a payload above MaxPayload")
	}
	big, err := n.seal(make([]byte, 256), make([]byte, MaxPayload))
	if err != nil {
		t.Fatal(err)
	}
	if over := len(big.wire) - MaxPayload; over > EnvelopeOverhead {
		t.Fatalf("the envelope adds %d bytes, more than EnvelopeOverhead %d", over, EnvelopeOverhead)
	}
	if _, err := openEnvelope(big.wire); err != nil {
		t.Fatalf("the largest envelope: %v", err)
	}
}

// TestEnvelopeRefuses: an envelope whose signed bytes changed, whose
// author is another key, or whose signature another key made fails as
// forged; one that is not an envelope, or is of another version, or has
// fields of the wrong size, fails as malformed.
func TestEnvelopeRefuses(t *testing.T) {
	n, other := signer(t), signer(t)
	s, err := n.seal([]byte("conv"), []byte("pay the bearer"))
	if err != nil {
		t.Fatal(err)
	}
	var sm appv1.SignedMessage
	if err := proto.Unmarshal(s.wire, &sm); err != nil {
		t.Fatal(err)
	}
	var env appv1.MessageEnvelope
	if err := proto.Unmarshal(sm.GetEnvelope(), &env); err != nil {
		t.Fatal(err)
	}
	// remake re-encodes env after change, signed by by (nil: the
	// original signature).
	remake := func(change func(e *appv1.MessageEnvelope), by *Node) []byte {
		e := proto.CloneOf(&env)
		change(e)
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		sig := sm.GetSignature()
		if by != nil {
			sig = by.id.Sign(signedBytes(b))
		}
		w, err := proto.Marshal(&appv1.SignedMessage{Envelope: b, Signature: sig})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	flipped := bytes.Clone(s.wire)
	flipped[bytes.Index(flipped, []byte("bearer"))] ^= 1
	for name, wire := range map[string][]byte{
		"payload changed":          flipped,
		"conversation changed":     remake(func(e *appv1.MessageEnvelope) { e.Conversation = []byte("other") }, nil),
		"another author named":     remake(func(e *appv1.MessageEnvelope) { e.Author = other.id.Public() }, nil),
		"signed by another key":    remake(func(e *appv1.MessageEnvelope) {}, other),
		"another's key, signed by": remake(func(e *appv1.MessageEnvelope) { e.Author = other.id.Public() }, n),
	} {
		if _, err := openEnvelope(wire); !errors.Is(err, errForged) {
			t.Errorf("%s: %v, want errForged", name, err)
		}
	}
	noSignatureContext := func() []byte {
		b, _ := proto.Marshal(&env)
		w, _ := proto.Marshal(&appv1.SignedMessage{Envelope: b, Signature: n.id.Sign(b)})
		return w
	}()
	if _, err := openEnvelope(noSignatureContext); !errors.Is(err, errForged) {
		t.Errorf("a signature without the context: %v, want errForged", err)
	}
	for name, wire := range map[string][]byte{
		"raw text":        []byte("hello, not an envelope"),
		"empty":           nil,
		"version 2":       remake(func(e *appv1.MessageEnvelope) { e.Version = 2 }, n),
		"short author":    remake(func(e *appv1.MessageEnvelope) { e.Author = e.Author[:31] }, n),
		"no nonce":        remake(func(e *appv1.MessageEnvelope) { e.Nonce = nil }, n),
		"no conversation": remake(func(e *appv1.MessageEnvelope) { e.Conversation = nil }, n),
		"short signature": func() []byte {
			w, _ := proto.Marshal(&appv1.SignedMessage{Envelope: sm.GetEnvelope(), Signature: sm.GetSignature()[:63]})
			return w
		}(),
		"oversize": make([]byte, maxEnvelope+1),
	} {
		if _, err := openEnvelope(wire); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want errMalformed", name, err)
		}
	}
}

// FuzzOpenEnvelope: openEnvelope takes any bytes without panicking, and
// what it accepts re-opens to the same.
func FuzzOpenEnvelope(f *testing.F) {
	n := signer(f)
	for _, p := range []string{"", "hello", "\x00strata-host-v1\x00"} {
		s, err := n.seal([]byte("conv"), []byte(p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.wire)
	}
	f.Add([]byte("not an envelope"))
	f.Fuzz(func(t *testing.T, wire []byte) {
		o, err := openEnvelope(wire)
		if err != nil {
			return
		}
		again, err := openEnvelope(wire)
		if err != nil || !bytes.Equal(again.id, o.id) || !bytes.Equal(again.author, o.author) {
			t.Fatalf("opened once, then %v", err)
		}
	})
}

// BenchmarkEnvelope measures what the signed envelope costs per message:
// sealing (one Ed25519 signature) at the sender and opening (one
// verification) at every receiver, for a 100-byte payload in a
// conversation with a 16-byte id; it reports the bytes the envelope adds.
func BenchmarkEnvelope(b *testing.B) {
	n := signer(b)
	conv, payload := make([]byte, 16), make([]byte, 100)
	s, err := n.seal(conv, payload)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := n.seal(conv, payload); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(s.wire)-len(payload)), "overhead-bytes")
	})
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			if _, err := openEnvelope(s.wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOpenPublicChatMessage: through the privacy layer's public chat
// path, the author is whoever signed, contact or not; a message signed for
// another conversation is refused, and so is one signed longer ago than
// public.retention (the history has forgotten it: a replay would be new
// again), each counted.
func TestOpenPublicChatMessage(t *testing.T) {
	n, stranger := signer(t), signer(t)
	n.cfg = &config.Config{Public: config.Public{Retention: time.Hour}}
	n.log = hclog.NewNullLogger()
	n.book = &addressBook{byID: map[string]*contacts.Card{}, byPrivacy: map[string]map[string]bool{}}
	chat := conversations.PublicChatID("lobby")
	received := func(wire []byte, conv []byte) *conversations.Message {
		return &conversations.Message{Conversation: conv, Payload: wire}
	}
	s, err := stranger.seal(chat, []byte("hi all"))
	if err != nil {
		t.Fatal(err)
	}
	m := received(s.wire, chat)
	if v, err := n.open(t.Context(), m, false, nil); v != taken || err != nil {
		t.Fatalf("a stranger's message: %v, %v", v, err)
	}
	if !bytes.Equal(m.Author, stranger.id.Public()) || string(m.Payload) != "hi all" || !bytes.Equal(m.MessageID, s.id) {
		t.Fatalf("taken as %+v", m)
	}
	if v, _ := n.open(t.Context(), received(s.wire, conversations.PublicChatID("other")), false, nil); v != refused || n.MessageStats()["dropped_wrong_conversation"] != 1 {
		t.Fatalf("in another chat: %v, %v", v, n.MessageStats())
	}
	old, err := proto.Marshal(&appv1.MessageEnvelope{
		Version: envelopeVersion, Author: stranger.id.Public(), Conversation: chat,
		SentUnixMilli: time.Now().Add(-2 * time.Hour).UnixMilli(), Nonce: make([]byte, nonceSize), Payload: []byte("old news"),
	})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := proto.Marshal(&appv1.SignedMessage{Envelope: old, Signature: stranger.id.Sign(signedBytes(old))})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := n.open(t.Context(), received(wire, chat), false, nil); v != refused || n.MessageStats()["dropped_expired"] != 1 {
		t.Fatalf("signed two hours ago, retention one hour: %v, %v", v, n.MessageStats())
	}
}
