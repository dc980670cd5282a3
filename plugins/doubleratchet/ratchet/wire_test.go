package ratchet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestWireVisibility checks that no header field appears in the clear:
// across many messages in both directions (with DH ratchet steps), no
// message contains its own N or PN as a 4-byte big-endian value, any
// ratchet public key of the session (or its first 8 bytes), or its header
// plaintext.
func TestWireVisibility(t *testing.T) {
	a, b := newPair(t, "wire", DefaultLimits())
	type out struct {
		wire  []byte
		pn, n uint32
		hdr   [headerLen]byte
	}
	var msgs []out
	pubs := map[[32]byte]bool{}
	send := func(p, q *peer, i int) {
		c := p.s.c
		pubs[c.dhsPub] = true
		m := p.send(t, fmt.Sprint("message ", i))
		msgs = append(msgs, out{append(bytes.Clone(m.Header), m.Ciphertext...), c.pn, c.ns, encodeHeader(&c.dhsPub, c.pn, c.ns)})
		q.recv(t, m, fmt.Sprint("message ", i))
	}
	i := 0
	for burst := range 60 {
		for range 1 + burst%7 {
			send(a, b, i)
			i++
		}
		for range 1 + burst%3 {
			send(b, a, i)
			i++
		}
	}
	if len(pubs) < 100 {
		t.Fatalf("only %d ratchet keys", len(pubs))
	}
	for j, m := range msgs {
		var pn, n [4]byte
		binary.BigEndian.PutUint32(pn[:], m.pn)
		binary.BigEndian.PutUint32(n[:], m.n)
		if bytes.Contains(m.wire, n[:]) || bytes.Contains(m.wire, pn[:]) {
			t.Errorf("message %d shows its counter (pn %d, n %d)", j, m.pn, m.n)
		}
		if bytes.Contains(m.wire, m.hdr[:]) {
			t.Errorf("message %d carries its header in clear", j)
		}
		for pub := range pubs {
			if bytes.Contains(m.wire, pub[:8]) {
				t.Errorf("message %d shows a ratchet public key", j)
			}
		}
	}
}
