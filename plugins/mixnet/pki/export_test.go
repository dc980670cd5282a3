package pki

import "crypto/ed25519"

// MarshalUnchecked encodes d without Check, so tests can sign documents
// that verification must refuse.
func MarshalUnchecked(d *Document) ([]byte, error) { return d.marshal() }

// SignDescriptorUnchecked encodes and signs d without Check.
func SignDescriptorUnchecked(d *Descriptor, identity ed25519.PrivateKey) (*SignedDescriptor, error) {
	body, err := d.marshal()
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(identity, append([]byte(descriptorSigContext), body...))
	return &SignedDescriptor{Descriptor: *d, Body: body, Signature: sig}, nil
}

// SignBody returns a signed document of body, signed by each key.
func SignBody(body []byte, keys ...ed25519.PrivateKey) []byte {
	s := &SignedDocument{Body: body}
	for _, k := range keys {
		s.Signatures = append(s.Signatures, Signature{AuthorityKey: k.Public().(ed25519.PublicKey), Signature: ed25519.Sign(k, signedMessage(body))})
	}
	return s.Marshal()
}

// UnmarshalDocument and UnmarshalDescriptor expose the body decoders to
// the fuzz target.
var (
	UnmarshalDocument   = unmarshalDocument
	UnmarshalDescriptor = unmarshalDescriptor
)

// MarshalDescriptorUnchecked encodes d without Check.
func MarshalDescriptorUnchecked(d *Descriptor) ([]byte, error) { return d.marshal() }
