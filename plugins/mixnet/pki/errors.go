package pki

import (
	"errors"
	"fmt"
)

// Errors a decoder or verifier returns, wrapped with context; test them
// with errors.Is. Every consistency error below also matches
// ErrInconsistent, and ErrTooLarge and ErrNonCanonical also match
// ErrMalformed.
var (
	// ErrMalformed: the bytes are not a well-formed encoding.
	ErrMalformed = errors.New("pki: malformed encoding")
	// ErrTooLarge: an input, a field or a count exceeds a decoder bound.
	ErrTooLarge = fmt.Errorf("%w: over a size bound", ErrMalformed)
	// ErrNonCanonical: a well-formed encoding that is not the canonical
	// one (non-minimal varint, fields or list entries out of order), so
	// that two encodings of one document cannot both carry signatures.
	ErrNonCanonical = fmt.Errorf("%w: not canonical", ErrMalformed)
	// ErrUnsupportedVersion: the format version is not one this code reads.
	ErrUnsupportedVersion = errors.New("pki: unsupported format version")

	// ErrUnsigned: the document carries no signatures at all.
	ErrUnsigned = errors.New("pki: document is unsigned")
	// ErrUnderSigned: fewer distinct configured authorities than the
	// threshold signed the document validly.
	ErrUnderSigned = errors.New("pki: document has fewer valid authority signatures than the threshold")
	// ErrStale: the document is for another epoch than the one expected.
	ErrStale = errors.New("pki: document is for another epoch")
	// ErrWrongNetwork: the document names another network.
	ErrWrongNetwork = errors.New("pki: document is for another network")
	// ErrGeometryMismatch: the document's packet geometry is not the
	// verifier's.
	ErrGeometryMismatch = errors.New("pki: packet geometry mismatch")
	// ErrConfig: the verifier or generator was configured wrongly.
	ErrConfig = errors.New("pki: bad configuration")

	// ErrInconsistent: the document or a descriptor is well formed and
	// signed but describes an impossible network.
	ErrInconsistent = errors.New("pki: inconsistent document")
	// ErrBadDescriptorSignature: a descriptor's self-signature by its
	// identity key does not verify.
	ErrBadDescriptorSignature = fmt.Errorf("%w: bad descriptor self-signature", ErrInconsistent)
	// ErrDuplicateNode: one identity key appears twice (in one layer, in
	// two layers, or as mix and provider).
	ErrDuplicateNode = fmt.Errorf("%w: duplicate identity key", ErrInconsistent)
	// ErrDuplicateSphinxKey: one Sphinx public key appears twice.
	ErrDuplicateSphinxKey = fmt.Errorf("%w: duplicate sphinx key", ErrInconsistent)
	// ErrBadSphinxKey: a Sphinx public key is zero, of low order, or not
	// canonically encoded.
	ErrBadSphinxKey = fmt.Errorf("%w: unusable sphinx key", ErrInconsistent)
	// ErrMissingSphinxKey: a node publishes no key for the document's
	// epoch or the next one.
	ErrMissingSphinxKey = fmt.Errorf("%w: missing sphinx key for a required epoch", ErrInconsistent)
	// ErrEmptyLayer: a mix layer has no nodes.
	ErrEmptyLayer = fmt.Errorf("%w: empty mix layer", ErrInconsistent)
	// ErrNoProviders: the document lists no providers.
	ErrNoProviders = fmt.Errorf("%w: no providers", ErrInconsistent)
	// ErrProviderInMixLayer: a descriptor flagged as provider sits in a
	// mix layer, or a mix descriptor in the provider list.
	ErrProviderInMixLayer = fmt.Errorf("%w: provider/mix role does not match placement", ErrInconsistent)
	// ErrLayerMismatch: a descriptor's own layer is not the layer it is
	// placed in.
	ErrLayerMismatch = fmt.Errorf("%w: descriptor layer does not match placement", ErrInconsistent)
	// ErrLayerCount: the number of mix layers is not the expected one.
	ErrLayerCount = fmt.Errorf("%w: wrong number of mix layers", ErrInconsistent)
	// ErrBadParams: a Loopix parameter is negative, zero where it must
	// not be, or not a finite number.
	ErrBadParams = fmt.Errorf("%w: bad parameters", ErrInconsistent)
	// ErrBadField: a descriptor field is out of its allowed form (empty
	// name, non-printable characters, an address of the wrong shape).
	ErrBadField = fmt.Errorf("%w: bad descriptor field", ErrInconsistent)
)
