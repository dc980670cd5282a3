package sphinx

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnwrap feeds arbitrary packets to Unwrap with a fixed key (the first
// hop of the 5-hop forward vector, vector geometry). Unwrap must not panic,
// must return one of the package's errors, and must leave the packet
// untouched when it fails. Seeds: every vector packet and mutations of the
// one that key opens.
func FuzzUnwrap(f *testing.F) {
	g := vectorGeometry(f)
	vs := loadSphinxVectors(f)
	priv, err := NewPrivateKey(vs[4].Nodes[0].PrivateKey)
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		for _, p := range v.Packets {
			f.Add([]byte(p))
		}
	}
	good := []byte(vs[4].Packets[0])
	for _, off := range []int{0, alphaOffset, betaOffset, g.macOffset(), g.HeaderLength, len(good) - 1} {
		p := bytes.Clone(good)
		p[off] ^= 1
		f.Add(p)
	}
	f.Add(good[:g.HeaderLength])
	known := []error{ErrTruncated, ErrOversize, ErrVersion, ErrInvalidGroupElement, ErrInvalidMAC, ErrInvalidCommands, ErrPayloadTag}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := bytes.Clone(pkt)
		res, err := g.Unwrap(priv, pkt)
		if err != nil {
			if !bytes.Equal(before, pkt) {
				t.Fatalf("failed Unwrap (%v) modified the packet", err)
			}
			for _, k := range known {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("Unwrap error %v is none of the package's errors", err)
		}
		if len(pkt) != g.PacketLength {
			t.Fatalf("accepted a %d-byte packet", len(pkt))
		}
		if res.ReplayTag != sha512_256(before[alphaOffset:betaOffset]) {
			t.Fatal("replay tag is not SHA-512/256(alpha)")
		}
		if res.IsTerminal() == (res.Payload == nil) {
			t.Fatalf("terminal %v but payload present %v", res.IsTerminal(), res.Payload != nil)
		}
		if len(res.Commands.AppendTo(nil)) > g.PerHopRoutingInfoLength {
			t.Fatal("commands longer than a routing block")
		}
	})
}

// FuzzCommands feeds arbitrary routing blocks to ParseCommands. It must not
// panic; what it accepts must re-encode to the input's prefix followed only
// by zero bytes.
func FuzzCommands(f *testing.F) {
	raw := readVectorFile(f, "sphinx_commands_vectors.json")
	f.Add(raw) // not a block, but bytes worth trying
	for _, s := range []string{"01", "02", "03", "80"} {
		f.Add(bytes.Repeat([]byte{s[1] - '0'}, 40))
	}
	f.Add(make([]byte, 82))
	// Real blocks: every hop of the 5-hop SURB vector.
	g := vectorGeometry(f)
	vs := loadSphinxVectors(f)
	v9 := vs[9]
	pkt := bytes.Clone(v9.Packets[0])
	for i := range v9.Nodes {
		priv, err := NewPrivateKey(v9.Nodes[i].PrivateKey)
		if err != nil {
			f.Fatal(err)
		}
		res, err := g.Unwrap(priv, pkt)
		if err != nil {
			f.Fatal(err)
		}
		block := res.Commands.AppendTo(nil)
		f.Add(append(block, make([]byte, g.PerHopRoutingInfoLength-len(block))...))
		f.Add(block[:len(block)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCommands(b)
		if err != nil {
			for _, k := range []error{ErrUnknownCommand, ErrTruncatedCommand, ErrCommandPadding, ErrDuplicateCommand} {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("ParseCommands error %v is none of the command errors", err)
		}
		enc := cs.AppendTo(nil)
		if len(enc) > len(b) || !bytes.Equal(enc, b[:len(enc)]) || !isZero(b[len(enc):]) {
			t.Fatalf("accepted %x, re-encodes as %x", b, enc)
		}
		again, err := ParseCommands(enc)
		if err != nil || len(again) != len(cs) {
			t.Fatalf("re-parse of %x: %v", enc, err)
		}
	})
}
