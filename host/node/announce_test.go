package node

import (
	"bytes"
	"testing"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// FuzzDecodeHostMessage: a host message from the network decodes or is
// refused with an error, never a panic; what decodes encodes back to a
// message that decodes the same.
func FuzzDecodeHostMessage(f *testing.F) {
	good, err := encodeHostMessage(&appv1.HostMessage{Kind: &appv1.HostMessage_Conversation{Conversation: &appv1.ConversationAnnouncement{
		Id: []byte("team"), Members: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}, Name: "the team",
	}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(hostMessagePrefix)
	f.Add(append(bytes.Clone(hostMessagePrefix), 0x0a, 0xff))
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := decodeHostMessage(payload)
		if err != nil {
			return
		}
		again, err := encodeHostMessage(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := decodeHostMessage(again)
		if err != nil {
			t.Fatalf("decode of a re-encoding: %v", err)
		}
		a, b := m.GetConversation(), m2.GetConversation()
		if !bytes.Equal(a.GetId(), b.GetId()) || a.GetName() != b.GetName() || len(a.GetMembers()) != len(b.GetMembers()) {
			t.Fatalf("round trip changed the announcement: %v → %v", a, b)
		}
	})
}

// TestDecodeHostMessageRefuses: each kind of bad host message is refused.
func TestDecodeHostMessageRefuses(t *testing.T) {
	enc := func(a *appv1.ConversationAnnouncement) []byte {
		b, err := encodeHostMessage(&appv1.HostMessage{Kind: &appv1.HostMessage_Conversation{Conversation: a}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"no prefix", []byte("team")},
		{"empty", hostMessagePrefix},
		{"not protobuf", append(bytes.Clone(hostMessagePrefix), 0xff, 0xff, 0xff)},
		{"no id", enc(&appv1.ConversationAnnouncement{Members: [][]byte{key}})},
		{"no members", enc(&appv1.ConversationAnnouncement{Id: []byte("x")})},
		{"short key", enc(&appv1.ConversationAnnouncement{Id: []byte("x"), Members: [][]byte{key[:31]}})},
		{"long name", enc(&appv1.ConversationAnnouncement{Id: []byte("x"), Members: [][]byte{key}, Name: string(bytes.Repeat([]byte("n"), 257))})},
	} {
		if _, err := decodeHostMessage(tc.payload); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
