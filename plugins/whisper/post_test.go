package whisper

import (
	"bytes"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// TestSealConversationFlag: seal sets bit 7 of the message's flags byte,
// and puts uvarint len · conversation in front of the payload, exactly when
// the frame names a conversation; without one the message is what a stock
// Status client sends: the bare payload, flags bits 3-7 clear. Both for a
// contact address (1:1, asymmetric) and a shared one (public chat).
func TestSealConversationFlag(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	them, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	chatKey, err := wire.SymKeyFromPassword("flag-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{MinPoW: 0.01, MaxMessageSize: 1 << 20, TTL: 50 * time.Second, PoWTime: 5 * time.Second}
	payload := []byte("hello")
	for _, c := range []struct {
		name string
		addr []byte
	}{
		{"contact", encodeContact(&them.PublicKey)},
		{"shared", encodeShared(NameTopic("flag-test"), chatKey)},
	} {
		a, err := decodeAddress(c.addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, conv := range [][]byte{nil, []byte("group")} {
			env, err := seal(&post{addr: a, conversation: conv, payload: payload}, cfg, key, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var msg *wire.ReceivedMessage
			if a.kind == addrKindContact {
				msg, err = wire.OpenAsymmetric(env, them)
			} else {
				msg, err = wire.OpenSymmetric(env, chatKey)
			}
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := payload
			if conv != nil {
				want = append(append([]byte{byte(len(conv))}, conv...), payload...)
			}
			if set := msg.Flags&conversationFlag != 0; set != (conv != nil) || msg.Flags&^0x07 != msg.Flags&conversationFlag {
				t.Errorf("%s, conversation %q: flags %08b", c.name, conv, msg.Flags)
			}
			if !bytes.Equal(msg.Payload, want) {
				t.Errorf("%s, conversation %q: payload %q, want %q", c.name, conv, msg.Payload, want)
			}
		}
	}
}
