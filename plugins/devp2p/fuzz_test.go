package devp2p

import (
	"bytes"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// FuzzDecodeContact feeds untrusted contact sections to the decoder: it
// must never panic, and what it accepts is a dialable node whose id is the
// section's id.
func FuzzDecodeContact(f *testing.F) {
	k, err := crypto.ToECDSA(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	good, err := encodeContact(enode.NewV4(&k.PublicKey, []byte{127, 0, 0, 1}, 30303, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x20})
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeContact(b)
		if err != nil {
			return
		}
		if n.TCP() == 0 || !n.IPAddr().IsValid() || n.Pubkey() == nil {
			t.Fatalf("accepted an undialable node %v", n)
		}
		again, err := decodeContact(b)
		if err != nil || again.ID() != n.ID() {
			t.Fatal("decoding is not deterministic")
		}
	})
}

// FuzzParseNode feeds untrusted enode URLs and ENR text to parseNode.
func FuzzParseNode(f *testing.F) {
	k, err := crypto.ToECDSA(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	n := enode.NewV4(&k.PublicKey, []byte{10, 0, 0, 1}, 30303, 30301)
	f.Add(n.URLv4())
	f.Add(n.String())
	f.Add("enode://00@1.2.3.4:5")
	f.Add("enr:-")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseNode(s)
		if err != nil {
			return
		}
		if n.TCP() == 0 || !n.IPAddr().IsValid() {
			t.Fatalf("accepted an undialable node from %q", s)
		}
	})
}

// FuzzFrameSplit checks the code/payload split of DOWN frames against the
// join of inbound messages: whatever splits joins back to the same bytes,
// and no accepted code reaches message_codes.
func FuzzFrameSplit(f *testing.F) {
	f.Add(uint32(128), []byte{0, 0xc0})
	f.Add(uint32(1), []byte{0x30, 1})
	f.Add(uint32(2), []byte{})
	f.Add(uint32(256), []byte{255})
	f.Fuzz(func(t *testing.T, codes uint32, payload []byte) {
		tab, err := newProtocolTable([]*commonv1.Protocol{{Name: "p", Version: 1, MessageCodes: codes}})
		if err != nil {
			return
		}
		p := tab.byName["p"]
		code, body, err := p.splitFrame(payload)
		if err != nil {
			return
		}
		if code >= p.length {
			t.Fatalf("code %d accepted with %d codes", code, p.length)
		}
		frame, dst := p.newFrameBuffer(code, uint32(len(body)))
		copy(dst, body)
		if !bytes.Equal(frame, payload) || p.frameSize(uint32(len(body))) != uint64(len(payload)) {
			t.Fatalf("join(split(%x)) = %x", payload, frame)
		}
	})
}
