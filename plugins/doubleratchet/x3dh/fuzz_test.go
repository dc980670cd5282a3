package x3dh

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// typedError reports whether err is one of the package's exported errors.
func typedError(err error) bool {
	for _, e := range []error{ErrMalformed, ErrVersion, ErrBadSignature, ErrIdentityMismatch, ErrBadKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzParseBundle(f *testing.F) {
	for _, sc := range scenarios {
		p := newParty(f, testRand("fuzz bundle "+sc.name), sc)
		enc, err := p.bundle.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := ParseBundle(b)
		if err != nil {
			if !typedError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if err := bundle.Verify(); err != nil {
			t.Fatalf("parsed bundle does not verify: %v", err)
		}
		enc, err := bundle.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseBundle(enc)
		if err != nil {
			t.Fatalf("re-encoded bundle does not parse: %v", err)
		}
		if !equalBundles(bundle, again) || !bundle.SameIdentity(again) {
			t.Fatal("bundle changed across a round trip")
		}
	})
}

func FuzzUnmarshalIdentity(f *testing.F) {
	id, err := NewIdentity(testRand("fuzz identity"))
	if err != nil {
		f.Fatal(err)
	}
	b, _ := id.MarshalBinary()
	f.Add(b)
	f.Add(b[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := UnmarshalIdentity(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		out, err := id.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip: %v", err)
		}
		if len(id.IdentityKey()) != 33 || len(id.SigningKey()) != 32 {
			t.Fatal("bad public keys")
		}
	})
}

func FuzzRespond(f *testing.F) {
	all := scenario{name: "fuzz respond", opk: true, kem: true, oneTime: true}
	p := newParty(f, testRand("fuzz respond"), all)
	aliceIK := p.alice.IdentityKey()
	// Seeds: real headers of each kind, against the same responder keys.
	for i, b := range []*Bundle{
		p.bob.Bundle(p.spk, nil, nil, nil, testIssued),
		p.bob.Bundle(p.spk, nil, []*PreKeyPair{p.opk}, nil, testIssued),
		p.bob.Bundle(p.spk, p.kem, nil, nil, testIssued),
		p.bundle,
	} {
		init, err := Initiate(testRand("fuzz respond seed "+string(rune('0'+i))), p.alice, b)
		if err != nil {
			f.Fatal(err)
		}
		enc, err := proto.Marshal(init.Header)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	// lookup plays the layer: it finds the keys the header's ids name.
	lookup := func(h *wirepb.PreKeyMessage) ResponderKeys {
		k := ResponderKeys{SignedPreKey: p.spk}
		if h.GetOneTimePrekeyId() == p.opk.ID {
			k.OneTimePreKey = p.opk
		}
		switch h.GetKemPrekeyId() {
		case p.kem.ID:
			k.KEMPreKey = p.kem
		case p.pqopk.ID:
			k.KEMPreKey = p.pqopk
		}
		return k
	}
	every := ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: p.opk, KEMPreKey: p.pqopk}
	f.Fuzz(func(t *testing.T, b []byte) {
		var hdr wirepb.PreKeyMessage
		if err := proto.Unmarshal(b, &hdr); err != nil {
			return
		}
		for _, c := range []struct {
			keys   ResponderKeys
			pinned []byte
		}{
			{lookup(&hdr), aliceIK},
			{lookup(&hdr), hdr.GetIdentityKey()}, // any identity: reach the DHs
			{every, aliceIK},
			{ResponderKeys{}, aliceIK},
		} {
			sk, ad, err := Respond(p.bob, c.keys, c.pinned, &hdr)
			if err != nil {
				if !typedError(err) {
					t.Fatalf("untyped error %v", err)
				}
				if sk != nil || ad != nil {
					t.Fatal("keys returned with an error")
				}
				continue
			}
			if len(sk) != 32 || (len(ad) != 66 && len(ad) != 66+1569) {
				t.Fatalf("SK %d bytes, AD %d bytes", len(sk), len(ad))
			}
		}
	})
}
