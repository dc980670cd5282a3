package pki_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	testNetwork = "strata-test"
	testEpoch   = 1000
)

var testGeometry = []byte("x25519-5hops-test")

// seeded returns a deterministic byte stream for seed.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// fixture is a generated 3×2 + 2 network signed by auths[:signers].
type fixture struct {
	net   *testnet.Testnet
	auths []ed25519.PrivateKey
	opts  pki.VerifyOptions
}

func authorities(t testing.TB, r io.Reader, n int) []ed25519.PrivateKey {
	t.Helper()
	out := make([]ed25519.PrivateKey, n)
	for i := range out {
		_, k, err := ed25519.GenerateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

func newFixture(t testing.TB, seed uint64, nAuth, signers int) fixture {
	t.Helper()
	r := seeded(seed)
	auths := authorities(t, r, nAuth)
	net, err := testnet.Generate(testnet.Config{
		NetworkID:     testNetwork,
		Epoch:         testEpoch,
		Layers:        3,
		MixesPerLayer: 2,
		Providers:     2,
		Params:        testnet.DefaultParams(testGeometry),
		Authorities:   auths[:signers],
		Rand:          r,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := pki.VerifyOptions{NetworkID: testNetwork, Epoch: testEpoch, Layers: 3, GeometryID: testGeometry, Threshold: signers}
	for _, a := range auths {
		opts.Authorities = append(opts.Authorities, a.Public().(ed25519.PublicKey))
	}
	return fixture{net: net, auths: auths, opts: opts}
}

// doc returns a copy of the fixture's document whose lists can be
// changed without touching the fixture.
func (f fixture) doc() *pki.Document {
	d := *f.net.Document.Document
	d.Layers = make([][]*pki.SignedDescriptor, len(f.net.Document.Document.Layers))
	for i, l := range f.net.Document.Document.Layers {
		d.Layers[i] = slices.Clone(l)
	}
	d.Providers = slices.Clone(d.Providers)
	d.Params.GeometryID = slices.Clone(d.Params.GeometryID)
	return &d
}

// sign encodes d without checks and signs it with every authority.
func (f fixture) sign(t *testing.T, d *pki.Document) []byte {
	t.Helper()
	body, err := pki.MarshalUnchecked(d)
	if err != nil {
		t.Fatal(err)
	}
	return pki.SignBody(body, f.auths...)
}

// member returns the generated member whose descriptor is s.
func (f fixture) member(t *testing.T, s *pki.SignedDescriptor) testnet.Member {
	t.Helper()
	for _, m := range f.net.Members {
		if bytes.Equal(m.Descriptor.Body, s.Body) {
			return m
		}
	}
	t.Fatal("no member for descriptor")
	return testnet.Member{}
}

// redescribe re-signs s's descriptor (by its own identity) after mutate.
func (f fixture) redescribe(t *testing.T, s *pki.SignedDescriptor, mutate func(*pki.Descriptor)) *pki.SignedDescriptor {
	t.Helper()
	d := s.Descriptor
	d.SphinxKeys = slices.Clone(d.SphinxKeys)
	mutate(&d)
	out, err := pki.SignDescriptorUnchecked(&d, f.member(t, s).Identity)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func freshKeys(t *testing.T, seed uint64, epochs ...uint64) []pki.EpochKey {
	t.Helper()
	var out []pki.EpochKey
	for _, e := range epochs {
		k, err := pki.RandomSphinxKey(seeded(seed+e), e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pki.EpochKey{Epoch: e, Public: k.Public})
	}
	return out
}

func TestVerifyGenerated(t *testing.T) {
	f := newFixture(t, 1, 1, 1)
	d, err := pki.Verify(f.net.Encoded, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Layers) != 3 || len(d.Providers) != 2 || d.Epoch != testEpoch {
		t.Fatalf("document shape: %d layers, %d providers, epoch %d", len(d.Layers), len(d.Providers), d.Epoch)
	}
	for i, l := range d.Layers {
		if len(l) != 2 {
			t.Fatalf("layer %d has %d mixes", i, len(l))
		}
		for _, s := range l {
			if s.Layer != uint8(i) || s.Provider {
				t.Fatalf("layer %d holds %q with layer %d provider %v", i, s.Name, s.Layer, s.Provider)
			}
		}
	}
	// Every member's key chain derives the keys its descriptor publishes.
	for _, m := range f.net.Members {
		for _, k := range m.Descriptor.SphinxKeys {
			kp, err := m.Keys.Key(k.Epoch)
			if err != nil || kp.Public != k.Public {
				t.Fatalf("%s epoch %d: key chain disagrees with the descriptor (%v)", m.Name, k.Epoch, err)
			}
		}
	}
	// Re-encoding the parsed document gives the signed bytes.
	s, err := pki.ParseSignedDocument(f.net.Encoded)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Marshal(), f.net.Encoded) {
		t.Fatal("signed document does not re-encode to its bytes")
	}
	body, err := s.Document.Marshal()
	if err != nil || !bytes.Equal(body, s.Body) {
		t.Fatalf("document body does not re-encode to its bytes (%v)", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t, 2, 1, 1)
	order8 := [32]byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	for _, tt := range []struct {
		name         string
		mutate       func(t *testing.T, d *pki.Document)
		opts         func(o *pki.VerifyOptions)
		want         error
		inconsistent bool // the error must also match ErrInconsistent
	}{
		{name: "valid", want: nil},
		{name: "stale: previous epoch's document", opts: func(o *pki.VerifyOptions) { o.Epoch = testEpoch + 1 }, want: pki.ErrStale},
		{name: "stale: next epoch's document", opts: func(o *pki.VerifyOptions) { o.Epoch = testEpoch - 1 }, want: pki.ErrStale},
		{name: "other network", opts: func(o *pki.VerifyOptions) { o.NetworkID = "other" }, want: pki.ErrWrongNetwork},
		{name: "layer count", opts: func(o *pki.VerifyOptions) { o.Layers = 2 }, want: pki.ErrLayerCount, inconsistent: true},
		{name: "geometry", opts: func(o *pki.VerifyOptions) { o.GeometryID = []byte("other") }, want: pki.ErrGeometryMismatch},
		{name: "no layers", mutate: func(t *testing.T, d *pki.Document) { d.Layers = nil }, want: pki.ErrLayerCount, inconsistent: true},
		{name: "empty layer", mutate: func(t *testing.T, d *pki.Document) { d.Layers[1] = nil }, want: pki.ErrEmptyLayer, inconsistent: true},
		{name: "no providers", mutate: func(t *testing.T, d *pki.Document) { d.Providers = nil }, want: pki.ErrNoProviders, inconsistent: true},
		{name: "provider in a mix layer", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0] = append(d.Layers[0], d.Providers[0])
			d.Providers = d.Providers[1:]
			d.Sort()
		}, want: pki.ErrProviderInMixLayer, inconsistent: true},
		{name: "mix in the provider list", mutate: func(t *testing.T, d *pki.Document) {
			d.Providers = append(d.Providers, d.Layers[0][1])
			d.Layers[0] = d.Layers[0][:1]
			d.Sort()
		}, want: pki.ErrProviderInMixLayer, inconsistent: true},
		{name: "node in two layers", mutate: func(t *testing.T, d *pki.Document) {
			again := f.redescribe(t, d.Layers[0][0], func(x *pki.Descriptor) {
				x.Layer = 1
				x.SphinxKeys = freshKeys(t, 10, testEpoch, testEpoch+1)
			})
			d.Layers[1] = append(d.Layers[1], again)
			d.Sort()
		}, want: pki.ErrDuplicateNode, inconsistent: true},
		{name: "node twice in one layer", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[2] = append(d.Layers[2], d.Layers[2][0])
			d.Sort()
		}, want: pki.ErrDuplicateNode, inconsistent: true},
		{name: "sphinx key of another node", mutate: func(t *testing.T, d *pki.Document) {
			other := d.Layers[0][0].SphinxKeys
			d.Layers[1][0] = f.redescribe(t, d.Layers[1][0], func(x *pki.Descriptor) { x.SphinxKeys = other })
		}, want: pki.ErrDuplicateSphinxKey, inconsistent: true},
		{name: "one sphinx key for two epochs", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][0] = f.redescribe(t, d.Layers[1][0], func(x *pki.Descriptor) { x.SphinxKeys[1].Public = x.SphinxKeys[0].Public })
		}, want: pki.ErrDuplicateSphinxKey, inconsistent: true},
		{name: "low-order sphinx key", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[2][1] = f.redescribe(t, d.Layers[2][1], func(x *pki.Descriptor) { x.SphinxKeys[0].Public = order8 })
		}, want: pki.ErrBadSphinxKey, inconsistent: true},
		{name: "zero sphinx key", mutate: func(t *testing.T, d *pki.Document) {
			d.Providers[0] = f.redescribe(t, d.Providers[0], func(x *pki.Descriptor) { x.SphinxKeys[1].Public = [32]byte{} })
		}, want: pki.ErrBadSphinxKey, inconsistent: true},
		{name: "no key for the next epoch", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0][1] = f.redescribe(t, d.Layers[0][1], func(x *pki.Descriptor) { x.SphinxKeys = x.SphinxKeys[:1] })
		}, want: pki.ErrMissingSphinxKey, inconsistent: true},
		{name: "no key for the epoch", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0][1] = f.redescribe(t, d.Layers[0][1], func(x *pki.Descriptor) { x.SphinxKeys = x.SphinxKeys[1:] })
		}, want: pki.ErrMissingSphinxKey, inconsistent: true},
		{name: "sphinx keys out of epoch order", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0][1] = f.redescribe(t, d.Layers[0][1], func(x *pki.Descriptor) { x.SphinxKeys[0], x.SphinxKeys[1] = x.SphinxKeys[1], x.SphinxKeys[0] })
		}, want: pki.ErrNonCanonical},
		{name: "descriptor names another layer", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0][0] = f.redescribe(t, d.Layers[0][0], func(x *pki.Descriptor) { x.Layer = 2 })
		}, want: pki.ErrLayerMismatch, inconsistent: true},
		{name: "provider flag with a mix layer", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[0][0] = f.redescribe(t, d.Layers[0][0], func(x *pki.Descriptor) { x.Provider = true })
		}, want: pki.ErrProviderInMixLayer, inconsistent: true},
		{name: "descriptor of another network", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][1] = f.redescribe(t, d.Layers[1][1], func(x *pki.Descriptor) { x.NetworkID = "other" })
		}, want: pki.ErrWrongNetwork, inconsistent: true},
		{name: "descriptor without addresses", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][1] = f.redescribe(t, d.Layers[1][1], func(x *pki.Descriptor) { x.Libp2pPeerID, x.Libp2pAddrs, x.Enode = "", nil, "" })
		}, want: pki.ErrBadField, inconsistent: true},
		{name: "descriptor with a bad multiaddr", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][1] = f.redescribe(t, d.Layers[1][1], func(x *pki.Descriptor) { x.Libp2pAddrs = []string{"ip4/1.2.3.4"} })
		}, want: pki.ErrBadField, inconsistent: true},
		{name: "descriptor with a control character in its name", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][1] = f.redescribe(t, d.Layers[1][1], func(x *pki.Descriptor) { x.Name = "mix\n1" })
		}, want: pki.ErrBadField, inconsistent: true},
		{name: "forged descriptor signature", mutate: func(t *testing.T, d *pki.Document) {
			s := *d.Layers[2][0]
			s.Signature = bytes.Clone(s.Signature)
			s.Signature[5] ^= 1
			d.Layers[2][0] = &s
		}, want: pki.ErrBadDescriptorSignature, inconsistent: true},
		{name: "layer not sorted", mutate: func(t *testing.T, d *pki.Document) {
			d.Layers[1][0], d.Layers[1][1] = d.Layers[1][1], d.Layers[1][0]
		}, want: pki.ErrNonCanonical},
		{name: "zero mu", mutate: func(t *testing.T, d *pki.Document) { d.Params.MuPerSecond = 0 }, want: pki.ErrBadParams, inconsistent: true},
		{name: "NaN lambda", mutate: func(t *testing.T, d *pki.Document) { d.Params.LambdaLPerSecond = math.NaN() }, want: pki.ErrBadParams, inconsistent: true},
		{name: "negative zero lambda", mutate: func(t *testing.T, d *pki.Document) { d.Params.LambdaDPerSecond = math.Copysign(0, -1) }, want: pki.ErrBadParams, inconsistent: true},
		{name: "infinite lambda", mutate: func(t *testing.T, d *pki.Document) { d.Params.LambdaMPerSecond = math.Inf(1) }, want: pki.ErrBadParams, inconsistent: true},
		{name: "newer version", mutate: func(t *testing.T, d *pki.Document) { d.Version = 2 }, want: pki.ErrUnsupportedVersion},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := f.net.Encoded
			if tt.mutate != nil {
				d := f.doc()
				tt.mutate(t, d)
				raw = f.sign(t, d)
			}
			opts := f.opts
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := pki.Verify(raw, opts)
			t.Logf("Verify: %v", err)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if tt.inconsistent && !errors.Is(err, pki.ErrInconsistent) {
				t.Fatalf("Verify: %v does not match ErrInconsistent", err)
			}
		})
	}
}

func TestVerifySignatures(t *testing.T) {
	f := newFixture(t, 3, 3, 1)
	body := f.net.Document.Body
	stranger := authorities(t, seeded(99), 1)[0]
	a0, a1, a2 := f.auths[0], f.auths[1], f.auths[2]
	for _, tt := range []struct {
		name      string
		signers   []ed25519.PrivateKey
		threshold int
		corrupt   int // index of a signature whose bytes are flipped, or -1
		want      error
	}{
		{"unsigned", nil, 1, -1, pki.ErrUnsigned},
		{"stranger only", []ed25519.PrivateKey{stranger}, 1, -1, pki.ErrUnderSigned},
		{"1 of 3", []ed25519.PrivateKey{a0}, 1, -1, nil},
		{"default threshold is 1", []ed25519.PrivateKey{a2}, 0, -1, nil},
		{"2 of 3 with one", []ed25519.PrivateKey{a0}, 2, -1, pki.ErrUnderSigned},
		{"2 of 3 with one authority twice", []ed25519.PrivateKey{a0, a0}, 2, -1, pki.ErrUnderSigned},
		{"2 of 3 with two", []ed25519.PrivateKey{a0, a1}, 2, -1, nil},
		{"2 of 3 with one and a stranger", []ed25519.PrivateKey{stranger, a1}, 2, -1, pki.ErrUnderSigned},
		{"2 of 3 with two and a stranger first", []ed25519.PrivateKey{stranger, a2, a1}, 2, -1, nil},
		{"2 of 3, one signature invalid", []ed25519.PrivateKey{a0, a1}, 2, 1, pki.ErrUnderSigned},
		{"2 of 3, invalid then valid by the same authority", []ed25519.PrivateKey{a0, a1, a1}, 2, 1, nil},
		{"3 of 3", []ed25519.PrivateKey{a2, a0, a1}, 3, -1, nil},
		{"3 of 3 with two", []ed25519.PrivateKey{a2, a0}, 3, -1, pki.ErrUnderSigned},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pki.ParseSignedDocument(pki.SignBody(body, tt.signers...))
			if err != nil {
				t.Fatal(err)
			}
			if tt.corrupt >= 0 {
				s.Signatures[tt.corrupt].Signature[0] ^= 0x40
			}
			opts := f.opts
			opts.Threshold = tt.threshold
			_, err = pki.Verify(s.Marshal(), opts)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
	// A signature over another body does not count.
	otherBody := newFixture(t, 8, 1, 1).net.Document.Body
	so, err := pki.ParseSignedDocument(pki.SignBody(otherBody, a0))
	if err != nil {
		t.Fatal(err)
	}
	mixed := &pki.SignedDocument{Body: body, Signatures: so.Signatures}
	if _, err := pki.Verify(mixed.Marshal(), f.opts); !errors.Is(err, pki.ErrUnderSigned) {
		t.Fatalf("signature over another body: %v, want ErrUnderSigned", err)
	}

	for _, tt := range []struct {
		name string
		opts func(o *pki.VerifyOptions)
	}{
		{"no authorities", func(o *pki.VerifyOptions) { o.Authorities = nil }},
		{"no network id", func(o *pki.VerifyOptions) { o.NetworkID = "" }},
		{"threshold above n", func(o *pki.VerifyOptions) { o.Threshold = 4 }},
		{"negative threshold", func(o *pki.VerifyOptions) { o.Threshold = -1 }},
		{"authority listed twice", func(o *pki.VerifyOptions) { o.Authorities = append(o.Authorities, o.Authorities[0]) }},
		{"short authority key", func(o *pki.VerifyOptions) { o.Authorities = append(o.Authorities, make([]byte, 31)) }},
	} {
		t.Run("config/"+tt.name, func(t *testing.T) {
			opts := f.opts
			opts.Authorities = slices.Clone(opts.Authorities)
			tt.opts(&opts)
			if _, err := pki.Verify(f.net.Encoded, opts); !errors.Is(err, pki.ErrConfig) {
				t.Fatalf("Verify: %v, want ErrConfig", err)
			}
		})
	}
}

// Authorities that build the document apart from one another sign the
// same bytes, and their signatures merge.
func TestIndependentAuthoritiesAgree(t *testing.T) {
	a := newFixture(t, 4, 2, 1)
	// The same network again, signed by the second authority only.
	r := seeded(4)
	auths := authorities(t, r, 2)
	b, err := testnet.Generate(testnet.Config{
		NetworkID: testNetwork, Epoch: testEpoch, Layers: 3, MixesPerLayer: 2, Providers: 2,
		Params: testnet.DefaultParams(testGeometry), Authorities: auths[1:], Rand: r,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.net.Document.Body, b.Document.Body) {
		t.Fatal("two generations of one network give different bodies")
	}
	opts := a.opts
	opts.Threshold = 2
	if _, err := pki.Verify(a.net.Encoded, opts); !errors.Is(err, pki.ErrUnderSigned) {
		t.Fatalf("one signature for 2 of 2: %v", err)
	}
	if err := a.net.Document.Merge(b.Document); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Verify(a.net.Document.Marshal(), opts); err != nil {
		t.Fatalf("merged 2 of 2: %v", err)
	}
	c := newFixture(t, 5, 1, 1)
	if err := a.net.Document.Merge(c.net.Document); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("merging another body: %v, want ErrConfig", err)
	}
	// Re-signing by one authority replaces its signature.
	n := len(a.net.Document.Signatures)
	if err := a.net.Document.Sign(a.auths[0]); err != nil || len(a.net.Document.Signatures) != n {
		t.Fatalf("re-sign: %v, %d signatures, want %d", err, len(a.net.Document.Signatures), n)
	}
}

// Fields of a newer version survive decoding and re-encoding, and the
// document still verifies.
func TestUnknownFieldsPreserved(t *testing.T) {
	f := newFixture(t, 6, 1, 1)
	d := f.doc()
	d.Unknown = []pki.Field{{Tag: 40, Value: []byte("future document field")}, {Tag: 41, Value: nil}}
	d.Params.Unknown = []pki.Field{{Tag: 9, Value: []byte{1, 2, 3}}}
	d.Layers[0][0] = f.redescribe(t, d.Layers[0][0], func(x *pki.Descriptor) {
		x.Unknown = []pki.Field{{Tag: 30, Value: []byte("link key")}, {Tag: 30, Value: []byte("twice")}}
	})
	d.Sort()
	raw := f.sign(t, d)
	got, err := pki.Verify(raw, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.Unknown, d.Unknown, fieldEqual) || !slices.EqualFunc(got.Params.Unknown, d.Params.Unknown, fieldEqual) {
		t.Fatalf("unknown fields lost: %v %v", got.Unknown, got.Params.Unknown)
	}
	var found bool
	for _, s := range got.Layers[0] {
		if len(s.Unknown) == 2 && string(s.Unknown[1].Value) == "twice" {
			found = true
		}
	}
	if !found {
		t.Fatal("descriptor's unknown fields lost")
	}
	body, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := pki.ParseSignedDocument(raw)
	if !bytes.Equal(body, s.Body) {
		t.Fatal("re-encoding a document with unknown fields changes its bytes")
	}
	// Unknown fields may not reuse a known tag.
	d.Unknown = []pki.Field{{Tag: 3, Value: []byte{1}}}
	if _, err := d.Marshal(); !errors.Is(err, pki.ErrMalformed) {
		t.Fatalf("unknown field with a known tag: %v, want ErrMalformed", err)
	}
}

func fieldEqual(a, b pki.Field) bool { return a.Tag == b.Tag && bytes.Equal(a.Value, b.Value) }

func TestDecodeMalformed(t *testing.T) {
	f := newFixture(t, 7, 1, 1)
	good := f.net.Encoded
	// Every strict prefix fails without panicking, except the one that
	// ends where the signatures begin, which Verify refuses as unsigned.
	for n := range len(good) {
		s, err := pki.ParseSignedDocument(good[:n])
		if err != nil {
			continue
		}
		if len(s.Signatures) != 0 {
			t.Fatalf("prefix of %d bytes parsed with a signature", n)
		}
		if _, err := pki.Verify(good[:n], f.opts); !errors.Is(err, pki.ErrUnsigned) {
			t.Fatalf("prefix of %d bytes: Verify: %v, want ErrUnsigned", n, err)
		}
	}
	body := f.net.Document.Body
	bigProviders := func() []byte {
		// MaxNodes+1 provider entries of one descriptor: refused on the
		// count before the copies are compared.
		b := slices.Clone(body)
		desc := f.net.Document.Document.Providers[0].Marshal()
		for range pki.MaxNodes + 1 {
			b = binary.AppendUvarint(b, 6)
			b = binary.AppendUvarint(b, uint64(len(desc)))
			b = append(b, desc...)
		}
		return pki.SignBody(b, f.auths...)
	}
	for _, tt := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, pki.ErrMalformed},
		{"trailing byte", append(slices.Clone(good), 0), pki.ErrMalformed},
		{"non-minimal tag varint", append([]byte{0x81, 0x00}, good[1:]...), pki.ErrNonCanonical},
		{"tag zero", append([]byte{0x00}, good[1:]...), pki.ErrMalformed},
		{"signatures before body", func() []byte {
			s, _ := pki.ParseSignedDocument(good)
			sig := (&pki.SignedDocument{Signatures: s.Signatures}).Marshal()
			// sig starts with an empty body field (tag 1, length 0):
			// drop it, then append the body field.
			b := slices.Clone(sig[2:])
			b = binary.AppendUvarint(b, 1)
			b = binary.AppendUvarint(b, uint64(len(s.Body)))
			return append(b, s.Body...)
		}(), pki.ErrNonCanonical},
		{"length past the end", []byte{0x01, 0x7f, 0x00}, pki.ErrMalformed},
		{"huge length", []byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, pki.ErrMalformed},
		{"over the size bound", make([]byte, pki.MaxDocumentSize+1), pki.ErrTooLarge},
		{"too many nodes", bigProviders(), pki.ErrTooLarge},
		{"too many signatures", pki.SignBody(body, slices.Repeat(f.auths[:1], pki.MaxSignatures+1)...), pki.ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.ParseSignedDocument(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseSignedDocument: %v, want %v", err, tt.want)
			}
			if _, err := pki.Verify(tt.raw, f.opts); err == nil {
				t.Fatal("Verify accepted it")
			}
		})
	}
}

// The encoding of a seeded network is fixed: a change to the format shows
// here first. Run with -update to accept a deliberate change.
func TestGolden(t *testing.T) {
	f := newFixture(t, 42, 1, 1)
	again := newFixture(t, 42, 1, 1)
	if !bytes.Equal(f.net.Encoded, again.net.Encoded) {
		t.Fatal("one seed, two different documents")
	}
	path := filepath.Join("testdata", "testnet-seed42.pkidoc")
	if *update {
		if err := os.WriteFile(path, f.net.Encoded, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run with -update to create it)", err)
	}
	if !bytes.Equal(f.net.Encoded, want) {
		t.Fatalf("encoding of the seed-42 network changed (%d bytes, golden %d); run with -update if deliberate", len(f.net.Encoded), len(want))
	}
	if _, err := pki.Verify(want, f.opts); err != nil {
		t.Fatalf("golden document does not verify: %v", err)
	}
}
