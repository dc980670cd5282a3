package pki

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math"
	"slices"
)

// Field tags of a document body, of its parameters and of a layer.
const (
	tagDocVersion = iota + 1
	tagDocNetworkID
	tagDocEpoch
	tagDocParams
	tagDocLayer
	tagDocProvider
	tagDocLast = tagDocProvider
)

const (
	tagParamLambdaP = iota + 1
	tagParamLambdaL
	tagParamLambdaD
	tagParamLambdaM
	tagParamMu
	tagParamGeometryID
	tagParamLast = tagParamGeometryID
)

const (
	tagLayerNode  = 1
	tagSigKey     = 1
	tagSigValue   = 2
	tagSignedSigs = 2 // the signatures list of a signed document
)

// Params are the Loopix traffic parameters every client and relay of the
// network must share, and the Sphinx packet geometry. Rates are per
// second: the mean time between events of a stream is 1/rate seconds.
type Params struct {
	// LambdaPPerSecond is λP, the client's payload stream rate (real
	// message if one is queued, else cover). Must be > 0.
	LambdaPPerSecond float64
	// LambdaLPerSecond is λL, the client's loop cover rate; 0 disables.
	LambdaLPerSecond float64
	// LambdaDPerSecond is λD, the client's drop cover rate; 0 disables.
	LambdaDPerSecond float64
	// LambdaMPerSecond is λM, the mix (and provider) loop rate; 0
	// disables.
	LambdaMPerSecond float64
	// MuPerSecond is μ, the rate of the exponential per-hop delay the
	// sender samples (mean delay 1/μ seconds). Must be > 0.
	MuPerSecond float64
	// GeometryID identifies the Sphinx packet geometry (1..MaxGeometryIDLen
	// opaque bytes, e.g. a hash of the geometry's description); every
	// node must use the same one.
	GeometryID []byte
	// Unknown holds fields of a newer format version, in tag order.
	Unknown []Field
}

// Check reports whether the parameters are finite, non-negative, not
// negative zero (whose encoding differs from zero's), with λP and μ
// positive and a geometry id present.
func (p *Params) Check() error {
	for _, f := range []struct {
		name     string
		v        float64
		positive bool
	}{
		{"lambda_p_per_second", p.LambdaPPerSecond, true},
		{"lambda_l_per_second", p.LambdaLPerSecond, false},
		{"lambda_d_per_second", p.LambdaDPerSecond, false},
		{"lambda_m_per_second", p.LambdaMPerSecond, false},
		{"mu_per_second", p.MuPerSecond, true},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || math.Signbit(f.v) {
			return fmt.Errorf("%w: %s = %v", ErrBadParams, f.name, f.v)
		}
		if f.positive && f.v == 0 {
			return fmt.Errorf("%w: %s must be positive", ErrBadParams, f.name)
		}
	}
	if len(p.GeometryID) == 0 || len(p.GeometryID) > MaxGeometryIDLen {
		return fmt.Errorf("%w: geometry id is %d bytes, want 1..%d", ErrBadParams, len(p.GeometryID), MaxGeometryIDLen)
	}
	return nil
}

// Document is one epoch's network description: the parameters, the mix
// layers in path order and the providers, each node by its self-signed
// descriptor. Authorities sign its canonical encoding (Marshal).
type Document struct {
	// Version is the document format version, DocumentVersion.
	Version uint64
	// NetworkID names the network (1..MaxNameLen printable bytes).
	NetworkID string
	// Epoch is the epoch the document is valid for.
	Epoch uint64
	// Params are the traffic parameters and packet geometry.
	Params Params
	// Layers are the mix layers, Layers[0] next to the sender's provider;
	// each sorted by identity key (Sort).
	Layers [][]*SignedDescriptor
	// Providers are the providers, sorted by identity key.
	Providers []*SignedDescriptor
	// Unknown holds fields of a newer format version, in tag order.
	Unknown []Field
}

// Sort puts every layer and the provider list in canonical order, by
// identity key, so that independent assemblers of one set of descriptors
// produce identical bytes.
func (d *Document) Sort() {
	cmp := func(a, b *SignedDescriptor) int { return bytes.Compare(a.IdentityKey, b.IdentityKey) }
	for _, l := range d.Layers {
		slices.SortFunc(l, cmp)
	}
	slices.SortFunc(d.Providers, cmp)
}

// Nodes returns every descriptor, the mix layers in order then the
// providers.
func (d *Document) Nodes() []*SignedDescriptor {
	var out []*SignedDescriptor
	for _, l := range d.Layers {
		out = append(out, l...)
	}
	return append(out, d.Providers...)
}

// Check reports whether the document describes a usable network: a
// supported version; valid parameters; 1..MaxLayers mix layers, none
// empty; at least one provider; at most MaxNodes nodes; every mix in the
// layer its descriptor names and flagged as a mix, every provider flagged
// as provider; every descriptor of this network, well formed and with
// Sphinx keys for Epoch and Epoch+1; no identity key or Sphinx key used
// twice; lists in canonical order. Errors match ErrInconsistent (or
// ErrMalformed for order and size, ErrUnsupportedVersion for the version).
func (d *Document) Check() error {
	if d.Version != DocumentVersion {
		return fmt.Errorf("%w: document version %d", ErrUnsupportedVersion, d.Version)
	}
	if err := checkName("network id", d.NetworkID); err != nil {
		return err
	}
	if err := d.Params.Check(); err != nil {
		return err
	}
	if len(d.Layers) == 0 {
		return fmt.Errorf("%w: no mix layers", ErrLayerCount)
	}
	if len(d.Layers) > MaxLayers {
		return fmt.Errorf("%w: %d mix layers, over %d", ErrTooLarge, len(d.Layers), MaxLayers)
	}
	if len(d.Providers) == 0 {
		return ErrNoProviders
	}
	n := len(d.Providers)
	for i, l := range d.Layers {
		if len(l) == 0 {
			return fmt.Errorf("layer %d: %w", i, ErrEmptyLayer)
		}
		n += len(l)
	}
	if n > MaxNodes {
		return fmt.Errorf("%w: %d nodes, over %d", ErrTooLarge, n, MaxNodes)
	}
	ids := make(map[string]string, n)
	keys := make(map[[SphinxKeySize]byte]string, 2*n)
	check := func(where string, list []*SignedDescriptor, layer int) error {
		for j, s := range list {
			if s == nil {
				return fmt.Errorf("%w: %s: missing descriptor", ErrMalformed, where)
			}
			if err := s.Descriptor.Check(); err != nil {
				return fmt.Errorf("%s: node %q: %w", where, s.Name, err)
			}
			if s.NetworkID != d.NetworkID {
				return fmt.Errorf("%s: node %q: %w: %w: descriptor for %q", where, s.Name, ErrInconsistent, ErrWrongNetwork, s.NetworkID)
			}
			if layer == LayerProvider && !s.Provider {
				return fmt.Errorf("%s: mix %q in the provider list: %w", where, s.Name, ErrProviderInMixLayer)
			}
			if layer != LayerProvider && s.Provider {
				return fmt.Errorf("%s: provider %q in a mix layer: %w", where, s.Name, ErrProviderInMixLayer)
			}
			if int(s.Layer) != layer {
				return fmt.Errorf("%s: node %q names layer %d: %w", where, s.Name, s.Layer, ErrLayerMismatch)
			}
			if j > 0 {
				switch c := bytes.Compare(list[j-1].IdentityKey, s.IdentityKey); {
				case c == 0:
					return fmt.Errorf("%s: node %q twice: %w", where, s.Name, ErrDuplicateNode)
				case c > 0:
					return fmt.Errorf("%w: %s: nodes not sorted by identity key", ErrNonCanonical, where)
				}
			}
			if other, dup := ids[string(s.IdentityKey)]; dup {
				return fmt.Errorf("%s: node %q has the identity key of %s: %w", where, s.Name, other, ErrDuplicateNode)
			}
			ids[string(s.IdentityKey)] = fmt.Sprintf("%q in %s", s.Name, where)
			for _, e := range []uint64{d.Epoch, d.Epoch + 1} {
				if _, ok := s.SphinxKey(e); !ok {
					return fmt.Errorf("%s: node %q has no key for epoch %d: %w", where, s.Name, e, ErrMissingSphinxKey)
				}
			}
			for _, k := range s.SphinxKeys {
				if other, dup := keys[k.Public]; dup {
					return fmt.Errorf("%s: node %q epoch %d reuses the sphinx key of %s: %w", where, s.Name, k.Epoch, other, ErrDuplicateSphinxKey)
				}
				keys[k.Public] = fmt.Sprintf("%q epoch %d", s.Name, k.Epoch)
			}
		}
		return nil
	}
	for i, l := range d.Layers {
		if err := check(fmt.Sprintf("layer %d", i), l, i); err != nil {
			return err
		}
	}
	return check("providers", d.Providers, LayerProvider)
}

// Marshal returns the document's canonical body encoding, the bytes the
// authorities sign. The document must pass Check (call Sort first).
func (d *Document) Marshal() ([]byte, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d.marshal()
}

// marshal encodes the document without checking its consistency.
func (d *Document) marshal() ([]byte, error) {
	if err := checkUnknown("document", d.Unknown, tagsUpTo(tagDocLast)); err != nil {
		return nil, err
	}
	if err := checkUnknown("params", d.Params.Unknown, tagsUpTo(tagParamLast)); err != nil {
		return nil, err
	}
	var e encoder
	u := d.Unknown
	u = e.unknownBefore(tagDocVersion, u)
	e.uint(tagDocVersion, d.Version)
	u = e.unknownBefore(tagDocNetworkID, u)
	e.string(tagDocNetworkID, d.NetworkID)
	u = e.unknownBefore(tagDocEpoch, u)
	e.uint(tagDocEpoch, d.Epoch)
	u = e.unknownBefore(tagDocParams, u)
	e.record(tagDocParams, d.Params.encode)
	u = e.unknownBefore(tagDocLayer, u)
	for _, l := range d.Layers {
		e.record(tagDocLayer, func(le *encoder) {
			for _, s := range l {
				le.bytes(tagLayerNode, s.Marshal())
			}
		})
	}
	u = e.unknownBefore(tagDocProvider, u)
	for _, s := range d.Providers {
		e.bytes(tagDocProvider, s.Marshal())
	}
	e.unknownBefore(maxTag+1, u)
	if len(e.b) > MaxDocumentSize-(MaxSignatures*128) {
		return nil, fmt.Errorf("%w: document body is %d bytes", ErrTooLarge, len(e.b))
	}
	return e.b, nil
}

func (p *Params) encode(e *encoder) {
	u := p.Unknown
	u = e.unknownBefore(tagParamLambdaP, u)
	e.float(tagParamLambdaP, p.LambdaPPerSecond)
	u = e.unknownBefore(tagParamLambdaL, u)
	e.float(tagParamLambdaL, p.LambdaLPerSecond)
	u = e.unknownBefore(tagParamLambdaD, u)
	e.float(tagParamLambdaD, p.LambdaDPerSecond)
	u = e.unknownBefore(tagParamLambdaM, u)
	e.float(tagParamLambdaM, p.LambdaMPerSecond)
	u = e.unknownBefore(tagParamMu, u)
	e.float(tagParamMu, p.MuPerSecond)
	u = e.unknownBefore(tagParamGeometryID, u)
	e.bytes(tagParamGeometryID, p.GeometryID)
	e.unknownBefore(maxTag+1, u)
}

func decodeParams(b []byte) (Params, error) {
	var p Params
	r, err := newFieldReader("params", b, maxRecordFields)
	if err != nil {
		return p, err
	}
	for _, f := range []struct {
		tag  uint64
		name string
		dst  *float64
	}{
		{tagParamLambdaP, "lambda_p_per_second", &p.LambdaPPerSecond},
		{tagParamLambdaL, "lambda_l_per_second", &p.LambdaLPerSecond},
		{tagParamLambdaD, "lambda_d_per_second", &p.LambdaDPerSecond},
		{tagParamLambdaM, "lambda_m_per_second", &p.LambdaMPerSecond},
		{tagParamMu, "mu_per_second", &p.MuPerSecond},
	} {
		if *f.dst, err = r.float(f.tag, f.name); err != nil {
			return p, err
		}
	}
	g, err := r.one(tagParamGeometryID, "geometry id")
	if err != nil {
		return p, err
	}
	if len(g) > MaxGeometryIDLen {
		return p, fmt.Errorf("%w: geometry id is %d bytes", ErrTooLarge, len(g))
	}
	p.GeometryID = append([]byte(nil), g...)
	p.Unknown = r.done()
	return p, nil
}

// unmarshalDocument decodes a document body. It checks the encoding and
// every descriptor's fields and self-signature, not the document's
// consistency (Check).
func unmarshalDocument(b []byte) (*Document, error) {
	r, err := newFieldReader("document", b, maxRecordFields+MaxLayers+MaxNodes)
	if err != nil {
		return nil, err
	}
	d := &Document{}
	if d.Version, err = r.uint(tagDocVersion, "version"); err != nil {
		return nil, err
	}
	if d.Version != DocumentVersion {
		return nil, fmt.Errorf("%w: document version %d", ErrUnsupportedVersion, d.Version)
	}
	if d.NetworkID, err = r.str(tagDocNetworkID, "network id", MaxNameLen); err != nil {
		return nil, err
	}
	if d.Epoch, err = r.uint(tagDocEpoch, "epoch"); err != nil {
		return nil, err
	}
	pb, err := r.one(tagDocParams, "params")
	if err != nil {
		return nil, err
	}
	if d.Params, err = decodeParams(pb); err != nil {
		return nil, err
	}
	layers, err := r.list(tagDocLayer, "layers", MaxLayers)
	if err != nil {
		return nil, err
	}
	nodes := 0
	decodeList := func(where string, raw [][]byte) ([]*SignedDescriptor, error) {
		out := make([]*SignedDescriptor, 0, len(raw))
		for _, nb := range raw {
			if nodes++; nodes > MaxNodes {
				return nil, fmt.Errorf("%w: more than %d nodes", ErrTooLarge, MaxNodes)
			}
			s, err := ParseSignedDescriptor(nb)
			if err != nil {
				return nil, fmt.Errorf("%s: descriptor %d: %w", where, len(out), err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	for i, lb := range layers {
		lr, err := newFieldReader("layer", lb, MaxNodes)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		raw, err := lr.list(tagLayerNode, "nodes", MaxNodes)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if u := lr.done(); len(u) > 0 {
			return nil, fmt.Errorf("%w: layer %d has unknown field %d", ErrMalformed, i, u[0].Tag)
		}
		l, err := decodeList(fmt.Sprintf("layer %d", i), raw)
		if err != nil {
			return nil, err
		}
		d.Layers = append(d.Layers, l)
	}
	provs, err := r.list(tagDocProvider, "providers", MaxNodes)
	if err != nil {
		return nil, err
	}
	if d.Providers, err = decodeList("providers", provs); err != nil {
		return nil, err
	}
	d.Unknown = r.done()
	return d, nil
}

// Signature is one authority's signature of a document body.
type Signature struct {
	// AuthorityKey is the signer's Ed25519 public key.
	AuthorityKey ed25519.PublicKey
	// Signature is the Ed25519 signature over the document signing
	// context followed by the body.
	Signature []byte
}

// SignedDocument is a document body with the authority signatures that
// travel with it. Body is authoritative; Document is its decoding.
type SignedDocument struct {
	// Document is Body decoded.
	Document *Document
	// Body is the canonical document encoding that was signed.
	Body []byte
	// Signatures are the authorities' signatures, in no particular order;
	// they are not covered by any signature.
	Signatures []Signature
}

// NewSignedDocument encodes d canonically (it must pass Check) with no
// signatures yet.
func NewSignedDocument(d *Document) (*SignedDocument, error) {
	body, err := d.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode document: %w", err)
	}
	dec, err := unmarshalDocument(body)
	if err != nil {
		return nil, fmt.Errorf("encode document: re-decode: %w", err)
	}
	return &SignedDocument{Document: dec, Body: body}, nil
}

// Sign adds authority's signature, replacing an earlier one by the same
// key. Every authority that encodes the same Document gets the same Body,
// so signatures made apart can be merged (Merge).
func (s *SignedDocument) Sign(authority ed25519.PrivateKey) error {
	if len(authority) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: authority private key is %d bytes", ErrConfig, len(authority))
	}
	pub := authority.Public().(ed25519.PublicKey)
	sig := Signature{AuthorityKey: pub, Signature: ed25519.Sign(authority, signedMessage(s.Body))}
	for i, o := range s.Signatures {
		if bytes.Equal(o.AuthorityKey, pub) {
			s.Signatures[i] = sig
			return nil
		}
	}
	if len(s.Signatures) == MaxSignatures {
		return fmt.Errorf("%w: already %d signatures", ErrTooLarge, MaxSignatures)
	}
	s.Signatures = append(s.Signatures, sig)
	return nil
}

// Merge adds the signatures of o, which must carry the same body, that s
// does not have yet (by authority key).
func (s *SignedDocument) Merge(o *SignedDocument) error {
	if !bytes.Equal(s.Body, o.Body) {
		return fmt.Errorf("%w: cannot merge signatures of different document bodies", ErrConfig)
	}
	for _, sig := range o.Signatures {
		if !slices.ContainsFunc(s.Signatures, func(x Signature) bool { return bytes.Equal(x.AuthorityKey, sig.AuthorityKey) }) {
			if len(s.Signatures) == MaxSignatures {
				return fmt.Errorf("%w: more than %d signatures", ErrTooLarge, MaxSignatures)
			}
			s.Signatures = append(s.Signatures, sig)
		}
	}
	return nil
}

func signedMessage(body []byte) []byte {
	return append([]byte(documentSigContext), body...)
}

// Marshal returns the signed document's encoding: the body, then the
// signatures, each {authority key, signature}.
func (s *SignedDocument) Marshal() []byte {
	var e encoder
	e.bytes(tagSignedBody, s.Body)
	for _, sig := range s.Signatures {
		e.record(tagSignedSigs, func(r *encoder) {
			r.bytes(tagSigKey, sig.AuthorityKey)
			r.bytes(tagSigValue, sig.Signature)
		})
	}
	return e.b
}

// ParseSignedDocument decodes a signed document from untrusted bytes of at
// most MaxDocumentSize: the envelope, the body and each descriptor
// (including its self-signature). It neither verifies the authority
// signatures nor checks consistency; Verify does both. It returns errors,
// never panics.
func ParseSignedDocument(b []byte) (*SignedDocument, error) {
	s, err := parseEnvelope(b)
	if err != nil {
		return nil, err
	}
	if s.Document, err = unmarshalDocument(s.Body); err != nil {
		return nil, err
	}
	return s, nil
}

// parseEnvelope decodes the body bytes and the signatures, not the body.
func parseEnvelope(b []byte) (*SignedDocument, error) {
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: document is %d bytes, over %d", ErrTooLarge, len(b), MaxDocumentSize)
	}
	r, err := newFieldReader("signed document", b, 1+MaxSignatures)
	if err != nil {
		return nil, err
	}
	body, err := r.one(tagSignedBody, "body")
	if err != nil {
		return nil, err
	}
	sigs, err := r.list(tagSignedSigs, "signatures", MaxSignatures)
	if err != nil {
		return nil, err
	}
	if u := r.done(); len(u) > 0 {
		return nil, fmt.Errorf("%w: signed document has unknown field %d", ErrMalformed, u[0].Tag)
	}
	s := &SignedDocument{Body: append([]byte(nil), body...)}
	for i, sb := range sigs {
		sr, err := newFieldReader("signature", sb, 2)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
		key, err := sr.fixed(tagSigKey, "authority key", ed25519.PublicKeySize)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
		val, err := sr.fixed(tagSigValue, "signature", ed25519.SignatureSize)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
		if u := sr.done(); len(u) > 0 {
			return nil, fmt.Errorf("%w: signature %d has unknown field %d", ErrMalformed, i, u[0].Tag)
		}
		s.Signatures = append(s.Signatures, Signature{AuthorityKey: key, Signature: val})
	}
	return s, nil
}
