package sphinx

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
)

// rawCommand injects arbitrary bytes into a routing block, to make packets
// that authenticate but carry commands the decoder must refuse.
type rawCommand []byte

func (c rawCommand) AppendTo(b []byte) []byte { return append(b, c...) }
func (c rawCommand) EncodedLen() int          { return len(c) }
func (rawCommand) isCommand()                 {}

// testPacket returns a 5-hop forward packet of the default geometry, its
// nodes and its payload.
func testPacket(t testing.TB, label string) (*Geometry, []testNode, []byte, []byte) {
	t.Helper()
	g := DefaultGeometry()
	nodes := newNodes(t, 5, label)
	payload := make([]byte, g.ForwardPayloadLength)
	copy(payload, label)
	pkt, err := g.NewPacket(seeded(label), forwardPath(nodes, RecipientID{7}, nil), payload)
	if err != nil {
		t.Fatal(err)
	}
	return g, nodes, pkt, payload
}

// expectUnwrapError unwraps pkt and requires err to match want and pkt to
// be unchanged.
func expectUnwrapError(t *testing.T, g *Geometry, priv *PrivateKey, pkt []byte, want ...error) {
	t.Helper()
	before := bytes.Clone(pkt)
	res, err := g.Unwrap(priv, pkt)
	if err == nil {
		t.Fatalf("Unwrap succeeded (%d commands), want %v", len(res.Commands), want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("Unwrap: %v, want %v", err, w)
		}
	}
	if res != nil {
		t.Fatal("Unwrap returned a result with an error")
	}
	if !bytes.Equal(before, pkt) {
		t.Fatal("failed Unwrap modified the packet")
	}
}

func TestUnwrapTampered(t *testing.T) {
	g, nodes, pkt, _ := testPacket(t, "tamper")
	cases := []struct {
		name string
		off  int
		want error
	}{
		{"version", 0, ErrVersion},
		{"reserved", 1, ErrVersion},
		{"alpha", alphaOffset + 5, ErrInvalidMAC},
		{"beta-first", betaOffset, ErrInvalidMAC},
		{"beta-last", g.macOffset() - 1, ErrInvalidMAC},
		{"gamma", g.macOffset(), ErrInvalidMAC},
		{"gamma-last", g.HeaderLength - 1, ErrInvalidMAC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(pkt)
			bad[c.off] ^= 0x01
			expectUnwrapError(t, g, nodes[0].priv, bad, c.want)
		})
	}
	t.Run("nil-key", func(t *testing.T) {
		p := bytes.Clone(pkt)
		if _, err := g.Unwrap(nil, p); err == nil || !bytes.Equal(p, pkt) {
			t.Fatalf("Unwrap with a nil key: %v", err)
		}
	})
	t.Run("wrong-key", func(t *testing.T) {
		expectUnwrapError(t, g, nodes[1].priv, bytes.Clone(pkt), ErrInvalidMAC)
	})
	// The payload is not covered by the header MAC: every hop unwraps it,
	// and the SPRP turns the change into garbage that fails the zero tag
	// at the end (no tagging attack).
	t.Run("payload", func(t *testing.T) {
		bad := bytes.Clone(pkt)
		bad[g.PacketLength-1] ^= 0x80
		for i := 0; i < len(nodes)-1; i++ {
			if _, err := g.Unwrap(nodes[i].priv, bad); err != nil {
				t.Fatalf("hop %d: %v", i, err)
			}
		}
		expectUnwrapError(t, g, nodes[len(nodes)-1].priv, bad, ErrPayloadTag)
	})
}

func TestUnwrapLength(t *testing.T) {
	g, nodes, pkt, _ := testPacket(t, "length")
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"one-byte", pkt[:1], ErrTruncated},
		{"header-only", pkt[:g.HeaderLength], ErrTruncated},
		{"one-short", pkt[:len(pkt)-1], ErrTruncated},
		{"one-long", append(bytes.Clone(pkt), 0), ErrOversize},
		{"double", append(bytes.Clone(pkt), pkt...), ErrOversize},
	} {
		t.Run(c.name, func(t *testing.T) {
			expectUnwrapError(t, g, nodes[0].priv, bytes.Clone(c.pkt), c.want)
		})
	}
}

// p25519 returns 2^255-19 + k, little-endian (k small).
func p25519(k byte) [32]byte {
	var u [32]byte
	for i := range u {
		u[i] = 0xff
	}
	u[31] = 0x7f
	u[0] = 0xed + k
	return u
}

// TestSmallOrderList checks the list itself: each entry gives an all-zero
// X25519 output with a clamped scalar, and circl agrees it is bad.
func TestSmallOrderList(t *testing.T) {
	var scalar, out x25519.Key
	seeded("scalar").Read(scalar[:])
	for i, u := range smallOrderPoints {
		pt := x25519.Key(u)
		if x25519.Shared(&out, &scalar, &pt) {
			t.Errorf("point %d (%x): circl accepts it", i, u)
		}
		if !isZero(out[:]) {
			t.Errorf("point %d (%x): X25519 output %x, want zero", i, u, out)
		}
	}
}

func TestUnwrapInvalidAlpha(t *testing.T) {
	g, nodes, pkt, _ := testPacket(t, "alpha")
	var bad [][32]byte
	bad = append(bad, smallOrderPoints[:]...)
	bad = append(bad, p25519(0), p25519(1), p25519(2), p25519(0x12)) // p, p+1 (non-canonical 0, 1), p+2, 2^255-1
	for _, u := range smallOrderPoints {
		u[31] |= 0x80 // top bit set: X25519 would mask it
		bad = append(bad, u)
	}
	good := nodes[3].priv.PublicKey()
	good[31] |= 0x80
	bad = append(bad, good) // a valid point, non-canonically encoded
	for i, u := range bad {
		p := bytes.Clone(pkt)
		copy(p[alphaOffset:betaOffset], u[:])
		// The MAC check comes after, so the error must be the group
		// element one even though the MAC no longer matches.
		expectUnwrapError(t, g, nodes[0].priv, p, ErrInvalidGroupElement)
		if _, err := ParsePublicKey(u[:]); !errors.Is(err, ErrInvalidGroupElement) {
			t.Errorf("point %d: ParsePublicKey: %v", i, err)
		}
		path := forwardPath(nodes[:1], RecipientID{}, nil)
		path[0].PublicKey = PublicKey(u)
		if _, err := g.NewPacket(seeded("x"), path, make([]byte, g.ForwardPayloadLength)); !errors.Is(err, ErrInvalidGroupElement) || !errors.Is(err, ErrPath) {
			t.Errorf("point %d: NewPacket to that public key: %v", i, err)
		}
	}
	if _, err := ParsePublicKey(nodes[0].priv.PublicKey().bytes()); err != nil {
		t.Fatalf("ParsePublicKey of a real key: %v", err)
	}
}

func (p PublicKey) bytes() []byte { return p[:] }

// TestUnwrapBadCommands makes packets that authenticate but whose routing
// block does not parse.
func TestUnwrapBadCommands(t *testing.T) {
	g := DefaultGeometry()
	nodes := newNodes(t, 2, "badcmd")
	cases := []struct {
		name string
		cmd  rawCommand
		want error
	}{
		{"unknown", rawCommand{0x42, 1, 2, 3}, ErrUnknownCommand},
		{"unknown-high", rawCommand{0xff}, ErrUnknownCommand},
		{"padding", rawCommand{0x00, 0x00, 0x01}, ErrCommandPadding},
		{"duplicate-delay", rawCommand{0x80, 0, 0, 0, 1, 0x80, 0, 0, 0, 2}, ErrDuplicateCommand},
		// Recipient, SURBReply, NodeDelay (55 bytes), then a NextNodeHop id
		// with only the 26 bytes left in the 82-byte block after it.
		{"truncated-next-hop", rawCommand(bytes.Join([][]byte{
			{0x02}, make([]byte, 32), {0x03}, make([]byte, 16), {0x80, 0, 0, 0, 1}, {0x01}, bytes.Repeat([]byte{0xaa}, 26),
		}, nil)), ErrTruncatedCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// At the terminal hop the whole 82-byte block is the caller's.
			path := forwardPath(nodes, RecipientID{}, nil)
			path[1].Commands = Commands{c.cmd}
			pkt, err := g.NewPacket(seeded(c.name), path, make([]byte, g.ForwardPayloadLength))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.Unwrap(nodes[0].priv, pkt); err != nil {
				t.Fatalf("first hop: %v", err)
			}
			expectUnwrapError(t, g, nodes[1].priv, pkt, ErrInvalidCommands, c.want)
		})
	}
}

func TestParseCommands(t *testing.T) {
	id := bytes.Repeat([]byte{0x11}, 32)
	mac := bytes.Repeat([]byte{0x22}, 32)
	next := append(append([]byte{0x01}, id...), mac...)
	rcpt := append([]byte{0x02}, id...)
	reply := append([]byte{0x03}, id[:16]...)
	delay := []byte{0x80, 0, 0, 0x30, 0x39}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		in   []byte
		n    int
		want error
	}{
		{"empty", nil, 0, nil},
		{"all-zero", make([]byte, 82), 0, nil},
		{"mix-hop", cat(delay, next, make([]byte, 12)), 2, nil},
		{"mix-hop-exact", cat(delay, next), 2, nil},
		{"terminal-surb", cat(rcpt, reply, make([]byte, 32)), 2, nil},
		{"all-four", cat(delay, rcpt, reply, next), 4, nil},
		{"unknown-0x04", []byte{0x04}, 0, ErrUnknownCommand},
		{"unknown-0x81", cat(delay, []byte{0x81, 0, 0}), 0, ErrUnknownCommand},
		{"truncated-next", next[:64], 0, ErrTruncatedCommand},
		{"truncated-delay", delay[:4], 0, ErrTruncatedCommand},
		{"truncated-recipient", rcpt[:1], 0, ErrTruncatedCommand},
		{"truncated-reply", reply[:16], 0, ErrTruncatedCommand},
		{"padding", cat(delay, []byte{0, 0, 0, 1}), 0, ErrCommandPadding},
		{"two-next", cat(next, next), 0, ErrDuplicateCommand},
		{"two-reply", cat(reply, reply), 0, ErrDuplicateCommand},
		{"two-recipient", cat(rcpt, rcpt), 0, ErrDuplicateCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs, err := ParseCommands(c.in)
			if c.want != nil {
				if !errors.Is(err, c.want) || cs != nil {
					t.Fatalf("ParseCommands: %v (%d commands), want %v", err, len(cs), c.want)
				}
				return
			}
			if err != nil || len(cs) != c.n {
				t.Fatalf("ParseCommands: %v, %d commands; want %d", err, len(cs), c.n)
			}
			enc := cs.AppendTo(nil)
			if !bytes.Equal(enc, c.in[:len(enc)]) || !isZero(c.in[len(enc):]) || cs.EncodedLen() != len(enc) {
				t.Fatalf("re-encoding %x is not a prefix of %x followed by zeros", enc, c.in)
			}
		})
	}
	cs, _ := ParseCommands(cat(delay, next))
	if d, ok := cs.NodeDelay(); !ok || d.Delay != 12345 || d.Duration().Milliseconds() != 12345 {
		t.Fatalf("NodeDelay %v %v", d, ok)
	}
	if _, ok := cs.Recipient(); ok {
		t.Fatal("Recipient found in a mix hop's commands")
	}
}

func TestCreationErrors(t *testing.T) {
	g := DefaultGeometry()
	nodes := newNodes(t, 6, "create")
	payload := make([]byte, g.ForwardPayloadLength)
	var rnd = seeded("create")
	cases := []struct {
		name string
		path func() []PathHop
		want error
	}{
		{"no-hops", func() []PathHop { return nil }, ErrPath},
		{"too-many-hops", func() []PathHop { return forwardPath(nodes, RecipientID{}, nil) }, ErrPath},
		{"caller-next-hop", func() []PathHop {
			p := forwardPath(nodes[:2], RecipientID{}, nil)
			p[0].Commands = append(p[0].Commands, NextNodeHop{})
			return p
		}, ErrPath},
		{"mix-hop-too-full", func() []PathHop {
			p := forwardPath(nodes[:2], RecipientID{}, nil)
			p[0].Commands = append(p[0].Commands, Recipient{}) // 5 + 33 > 82 - 65
			return p
		}, ErrPath},
		{"duplicate", func() []PathHop {
			p := forwardPath(nodes[:2], RecipientID{}, nil)
			p[1].Commands = append(p[1].Commands, Recipient{})
			return p
		}, ErrPath},
		{"nil-command", func() []PathHop {
			p := forwardPath(nodes[:2], RecipientID{}, nil)
			p[1].Commands = append(p[1].Commands, nil)
			return p
		}, ErrPath},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := g.NewPacket(rnd, c.path(), payload); !errors.Is(err, c.want) {
				t.Fatalf("NewPacket: %v, want %v", err, c.want)
			}
		})
	}
	path := forwardPath(nodes[:3], RecipientID{}, nil)
	if _, err := g.NewPacket(rnd, path, payload[:len(payload)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short payload: %v", err)
	}
	if _, err := g.NewPacket(rnd, path, append(payload, 0)); !errors.Is(err, ErrOversize) {
		t.Fatalf("long payload: %v", err)
	}
	if _, _, err := g.NewSURB(rnd, path); !errors.Is(err, ErrPath) {
		t.Fatalf("SURB path without SURBReply: %v", err)
	}
	if _, err := g.NewPacket(strings.NewReader("short"), path, payload); err == nil {
		t.Fatal("NewPacket with a failing random source succeeded")
	}
}

func TestSURBErrors(t *testing.T) {
	g := DefaultGeometry()
	nodes := newNodes(t, 3, "surberr")
	id := SURBID{9}
	path := forwardPath(nodes, RecipientID{}, &id)
	r := seeded("surberr")
	surb, keys, err := g.NewSURB(r, path)
	if err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, g.ForwardPayloadLength)
	if _, _, err := g.NewPacketFromSURB(surb[:len(surb)-1], reply); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short SURB: %v", err)
	}
	if _, _, err := g.NewPacketFromSURB(append(bytes.Clone(surb), 0), reply); !errors.Is(err, ErrOversize) {
		t.Fatalf("long SURB: %v", err)
	}
	if _, _, err := g.NewPacketFromSURB(surb, reply[1:]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short reply: %v", err)
	}
	bad := bytes.Clone(surb)
	bad[0] = 1
	if _, _, err := g.NewPacketFromSURB(bad, reply); !errors.Is(err, ErrVersion) {
		t.Fatalf("SURB version: %v", err)
	}
	bad = bytes.Clone(surb)
	copy(bad[alphaOffset:betaOffset], smallOrderPoints[3][:])
	if _, _, err := g.NewPacketFromSURB(bad, reply); !errors.Is(err, ErrInvalidGroupElement) {
		t.Fatalf("SURB alpha: %v", err)
	}

	pkt, _, err := g.NewPacketFromSURB(surb, reply)
	if err != nil {
		t.Fatal(err)
	}
	var res *Result
	for _, nd := range nodes {
		if res, err = g.Unwrap(nd.priv, pkt); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range [][]byte{nil, keys[:64], keys[:len(keys)-1], append(bytes.Clone(keys), make([]byte, 64*4)...)} {
		if _, err := g.DecryptSURBPayload(res.Payload, bytes.Clone(k)); !errors.Is(err, ErrSURBKeys) {
			t.Fatalf("keys of %d bytes: %v", len(k), err)
		}
	}
	if _, err := g.DecryptSURBPayload(res.Payload[1:], bytes.Clone(keys)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short payload: %v", err)
	}
	// Tampered reply, and wrong keys: ErrPayloadTag, keys kept.
	tampered := bytes.Clone(res.Payload)
	tampered[100] ^= 1
	k := bytes.Clone(keys)
	if _, err := g.DecryptSURBPayload(tampered, k); !errors.Is(err, ErrPayloadTag) {
		t.Fatalf("tampered reply: %v", err)
	}
	if !bytes.Equal(k, keys) {
		t.Fatal("keys erased after a failed decryption")
	}
	wrong := bytes.Clone(keys)
	wrong[0] ^= 1
	if _, err := g.DecryptSURBPayload(res.Payload, wrong); !errors.Is(err, ErrPayloadTag) {
		t.Fatalf("wrong keys: %v", err)
	}
	if got, err := g.DecryptSURBPayload(res.Payload, keys); err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("genuine reply after failures: %v", err)
	}
}

func TestForwardPayloadErrors(t *testing.T) {
	g := DefaultGeometry()
	user := make([]byte, g.UserForwardPayloadLength)
	if _, err := g.EncodeForwardPayload(nil, user[1:]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short user payload: %v", err)
	}
	if _, err := g.EncodeForwardPayload(make([]byte, 10), user); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short SURB: %v", err)
	}
	body, err := g.EncodeForwardPayload(nil, user)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mut  func([]byte)
	}{
		{"flags", func(b []byte) { b[0] = 2 }},
		{"reserved", func(b []byte) { b[1] = 1 }},
		{"slot-without-flag", func(b []byte) { b[10] = 1 }},
	} {
		b := bytes.Clone(body)
		c.mut(b)
		if _, _, err := g.DecodeForwardPayload(b); !errors.Is(err, ErrForwardPayload) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, _, err := g.DecodeForwardPayload(body[1:]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short body: %v", err)
	}
	noSURB, _ := NewGeometry(100, 5, false)
	if _, err := noSURB.EncodeForwardPayload(nil, make([]byte, 100)); !errors.Is(err, ErrForwardPayload) {
		t.Fatalf("geometry without SURB room: %v", err)
	}
	if _, _, err := noSURB.DecodeForwardPayload(make([]byte, 100)); !errors.Is(err, ErrForwardPayload) {
		t.Fatalf("geometry without SURB room: %v", err)
	}
}

func TestPrivateKey(t *testing.T) {
	if _, err := NewPrivateKey(make([]byte, 31)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("31-byte key: %v", err)
	}
	k, err := GenerateKey(seeded("key"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewPrivateKey(k.Bytes())
	if err != nil || k2.PublicKey() != k.PublicKey() {
		t.Fatalf("NewPrivateKey(Bytes()) differs: %v", err)
	}
	k2.Zero()
	if !isZero(k2.Bytes()) || k2.PublicKey() != (PublicKey{}) {
		t.Fatal("Zero left key bytes")
	}
	if _, err := GenerateKey(strings.NewReader("")); err == nil {
		t.Fatal("GenerateKey from an empty reader succeeded")
	}
}
