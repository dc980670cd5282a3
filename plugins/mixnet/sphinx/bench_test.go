package sphinx

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"
)

// BenchmarkX25519 is one circl X25519 scalar multiplication (variable
// base), the unit the issue measures unwrap against.
func BenchmarkX25519(b *testing.B) {
	var scalar, point, out x25519.Key
	rand.Read(scalar[:])
	x25519.KeyGen(&point, &scalar)
	b.ReportAllocs()
	for b.Loop() {
		x25519.Shared(&out, &scalar, &point)
	}
}

// timeX25519 returns the mean time of n X25519 multiplications, measured
// now (in the same run as the benchmark that calls it).
func timeX25519(n int) time.Duration {
	var scalar, point, out x25519.Key
	rand.Read(scalar[:])
	x25519.KeyGen(&point, &scalar)
	start := time.Now()
	for range n {
		x25519.Shared(&out, &scalar, &point)
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkUnwrap is the first hop's Unwrap of a 5-hop forward packet,
// restoring the packet before each call: in the deployed geometry (2000-byte
// user payload with SURB room, 3082-byte packets) and in the vector file's
// (103-byte payload, 611-byte packets). After the loop it times as many
// X25519 multiplications and reports unwrap time / one X25519 as
// x25519-ratio. Two multiplications per hop are the floor; the rest is
// mostly AEZ over the payload.
func BenchmarkUnwrap(b *testing.B) {
	vec, err := NewGeometry(103, 5, false)
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range []*Geometry{DefaultGeometry(), vec} {
		b.Run(fmt.Sprintf("packet=%d", g.PacketLength), func(b *testing.B) {
			nodes := newNodes(b, 5, "bench")
			pkt, err := g.NewPacket(seeded("bench"), forwardPath(nodes, RecipientID{7}, nil), make([]byte, g.ForwardPayloadLength))
			if err != nil {
				b.Fatal(err)
			}
			work := make([]byte, len(pkt))
			priv := nodes[0].priv
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			n := 0
			start := time.Now()
			for b.Loop() {
				copy(work, pkt)
				if _, err := g.Unwrap(priv, work); err != nil {
					b.Fatal(err)
				}
				n++
			}
			perUnwrap := time.Since(start) / time.Duration(n)
			perX25519 := timeX25519(n)
			b.ReportMetric(float64(perUnwrap)/float64(perX25519), "x25519-ratio")
			b.ReportMetric(float64(perX25519.Nanoseconds()), "x25519-ns")
		})
	}
}

// BenchmarkNewPacket creates a 5-hop forward packet in the deployed
// geometry (21 scalar multiplications, five AEZ layers) and reports the
// cost per hop.
func BenchmarkNewPacket(b *testing.B) {
	g := DefaultGeometry()
	nodes := newNodes(b, 5, "bench-create")
	path := forwardPath(nodes, RecipientID{1}, nil)
	payload := make([]byte, g.ForwardPayloadLength)
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		if _, err := g.NewPacket(rand.Reader, path, payload); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n*len(path)), "ns/hop")
}

// BenchmarkNewSURB creates a 5-hop SURB (header only, no payload layers).
func BenchmarkNewSURB(b *testing.B) {
	g := DefaultGeometry()
	nodes := newNodes(b, 5, "bench-surb")
	id := SURBID{1}
	path := forwardPath(nodes, RecipientID{1}, &id)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := g.NewSURB(rand.Reader, path); err != nil {
			b.Fatal(err)
		}
	}
}
