package framing

import (
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// FuzzUnprotect feeds arbitrary MLSMessage bytes to UnprotectPublic and
// UnprotectPrivate with a fixed group's keys: they must return an error or
// content, never panic. The seeds are valid messages of that group, so the
// fuzzer starts past the decryption and tag checks' early exits.
func FuzzUnprotect(f *testing.F) {
	g := newGroup(f, suite.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	sender := g.keys(f)
	for _, ct := range []wire.ContentType{wire.ContentApplication, wire.ContentProposal, wire.ContentCommit} {
		pm, err := ProtectPrivate(g.s, g.sign(f, wire.WireFormatPrivateMessage, g.content(1, ct)), sender, PrivateOptions{PadTo: 16})
		if err != nil {
			f.Fatal(err)
		}
		b, err := wire.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: pm})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if ct == wire.ContentApplication {
			continue
		}
		pub, err := ProtectPublic(g.s, g.sign(f, wire.WireFormatPublicMessage, g.content(1, ct)), g.ctx, g.membershipKey)
		if err != nil {
			f.Fatal(err)
		}
		if b, err = wire.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pub}); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m wire.MLSMessage
		if err := wire.Unmarshal(b, &m); err != nil {
			return
		}
		switch {
		case m.PublicMessage != nil:
			_, _ = UnprotectPublic(g.s, m.PublicMessage, g.ctx, g.membershipKey, g.signerKey)
		case m.PrivateMessage != nil:
			// A fresh receiver tree each time, so that generations seen
			// before do not mask the paths behind them.
			_, _ = UnprotectPrivate(g.s, m.PrivateMessage, g.ctx, g.keys(t), g.signerKey)
		}
	})
}
