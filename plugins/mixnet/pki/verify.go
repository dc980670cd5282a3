package pki

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// VerifyOptions say which documents a node accepts.
type VerifyOptions struct {
	// Authorities are the Ed25519 public keys of the configured
	// authorities (at least one, no duplicates). Signatures by other keys
	// are ignored.
	Authorities []ed25519.PublicKey
	// Threshold is how many distinct authorities must have signed
	// validly: k of the n Authorities, 1 if zero.
	Threshold int
	// NetworkID is the network the node belongs to; a document of
	// another network is refused.
	NetworkID string
	// Epoch is the epoch the document must be for; any other is stale.
	Epoch uint64
	// Layers, if not zero, is the number of mix layers the node's packet
	// geometry routes through.
	Layers int
	// GeometryID, if not nil, is the node's Sphinx geometry id, which the
	// document's must equal.
	GeometryID []byte
}

// check validates the options themselves.
func (o *VerifyOptions) check() (int, error) {
	if len(o.Authorities) == 0 {
		return 0, fmt.Errorf("%w: no authority keys", ErrConfig)
	}
	if o.NetworkID == "" {
		return 0, fmt.Errorf("%w: no network id", ErrConfig)
	}
	for i, a := range o.Authorities {
		if len(a) != ed25519.PublicKeySize {
			return 0, fmt.Errorf("%w: authority key %d is %d bytes", ErrConfig, i, len(a))
		}
		for _, b := range o.Authorities[:i] {
			if bytes.Equal(a, b) {
				return 0, fmt.Errorf("%w: authority key %d listed twice", ErrConfig, i)
			}
		}
	}
	k := o.Threshold
	if k == 0 {
		k = 1
	}
	if k < 0 || k > len(o.Authorities) {
		return 0, fmt.Errorf("%w: threshold %d of %d authorities", ErrConfig, o.Threshold, len(o.Authorities))
	}
	if o.Layers < 0 || o.Layers > MaxLayers {
		return 0, fmt.Errorf("%w: %d layers", ErrConfig, o.Layers)
	}
	return k, nil
}

// Verify decodes a signed document from untrusted bytes and accepts it
// only if, in this order: its envelope decodes within the size bounds
// (ErrMalformed, ErrTooLarge); it carries signatures (ErrUnsigned); at
// least Threshold distinct configured authorities signed its body validly
// (ErrUnderSigned — signatures by unknown keys are ignored, an
// authority's repeated signatures count once, and an invalid signature by
// a configured authority counts for nothing); its body and every
// descriptor decode, with valid self-signatures; it is for NetworkID
// (ErrWrongNetwork) and for Epoch (ErrStale); it is consistent
// (Document.Check, ErrInconsistent); and it matches the expected layer
// count (ErrLayerCount) and geometry (ErrGeometryMismatch).
func Verify(b []byte, opts VerifyOptions) (*Document, error) {
	k, err := opts.check()
	if err != nil {
		return nil, err
	}
	// The authority signatures are checked before the body is decoded,
	// so that unsigned input costs one pass over the envelope rather
	// than a signature check per descriptor.
	s, err := parseEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("verify document: %w", err)
	}
	if err := s.verifySignatures(opts.Authorities, k); err != nil {
		return nil, fmt.Errorf("verify document: %w", err)
	}
	d, err := unmarshalDocument(s.Body)
	if err != nil {
		return nil, fmt.Errorf("verify document: %w", err)
	}
	if d.NetworkID != opts.NetworkID {
		return nil, fmt.Errorf("verify document: %w: %q, want %q", ErrWrongNetwork, d.NetworkID, opts.NetworkID)
	}
	if d.Epoch != opts.Epoch {
		return nil, fmt.Errorf("verify document: %w: epoch %d, want %d", ErrStale, d.Epoch, opts.Epoch)
	}
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("verify document for epoch %d: %w", d.Epoch, err)
	}
	if opts.Layers != 0 && len(d.Layers) != opts.Layers {
		return nil, fmt.Errorf("verify document: %w: %d, want %d", ErrLayerCount, len(d.Layers), opts.Layers)
	}
	if opts.GeometryID != nil && !bytes.Equal(d.Params.GeometryID, opts.GeometryID) {
		return nil, fmt.Errorf("verify document: %w: %x, want %x", ErrGeometryMismatch, d.Params.GeometryID, opts.GeometryID)
	}
	return d, nil
}

// verifySignatures counts the distinct configured authorities with a
// valid signature over the body and requires at least k.
func (s *SignedDocument) verifySignatures(authorities []ed25519.PublicKey, k int) error {
	if len(s.Signatures) == 0 {
		return ErrUnsigned
	}
	msg := signedMessage(s.Body)
	counted := make([]bool, len(authorities))
	valid, invalid, unknown := 0, 0, 0
	for _, sig := range s.Signatures {
		i := -1
		for j, a := range authorities {
			if bytes.Equal(a, sig.AuthorityKey) {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			unknown++
		case counted[i]:
			// An authority counts once, however many of its
			// signatures are attached.
		case ed25519.Verify(authorities[i], msg, sig.Signature):
			counted[i] = true
			valid++
		default:
			invalid++
		}
		if valid == k {
			return nil
		}
	}
	return fmt.Errorf("%w: %d valid of %d required (%d invalid by configured authorities, %d by unknown keys)",
		ErrUnderSigned, valid, k, invalid, unknown)
}
