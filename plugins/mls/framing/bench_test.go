package framing

import (
	"bytes"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// BenchmarkPrivateMessage measures what every group chat message costs: sign
// and protect 1 KiB of application data as a PrivateMessage, then unprotect
// and verify it, for suites 1 and 3.
func BenchmarkPrivateMessage(b *testing.B) {
	for _, id := range []suite.ID{suite.MLS128DHKEMX25519AES128GCMSHA256Ed25519, suite.MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519} {
		b.Run(id.String(), func(b *testing.B) {
			g := newGroup(b, id)
			sender, receiver := g.keys(b), g.keys(b)
			fc := g.content(0, wire.ContentApplication)
			fc.ApplicationData = bytes.Repeat([]byte{'x'}, 1024)
			b.SetBytes(1024)
			b.ResetTimer()
			for b.Loop() {
				ac, err := Sign(g.s, wire.WireFormatPrivateMessage, fc, g.ctx, g.sigPriv[0])
				if err != nil {
					b.Fatal(err)
				}
				pm, err := ProtectPrivate(g.s, ac, sender, PrivateOptions{PadTo: 256})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := UnprotectPrivate(g.s, pm, g.ctx, receiver, g.signerKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
