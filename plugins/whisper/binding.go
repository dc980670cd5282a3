package whisper

import (
	"context"
	"crypto/ecdsa"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
)

// bindingContext separates address bindings from every other signature
// the whisper key makes (envelope signatures sign Keccak256 of a payload,
// never of this prefix).
const bindingContext = "strata-whisper-binding-v1\x00"

// bindingLength is the length of a binding: a recoverable secp256k1
// signature (r, s, v).
const bindingLength = crypto.SignatureLength

// bindingDigest is what a binding signs: Keccak256 of the context, the
// identity key and the contact address, each but the context
// length-prefixed.
func bindingDigest(identity, addr []byte) []byte {
	msg := make([]byte, 0, len(bindingContext)+4+len(identity)+len(addr))
	msg = append(msg, bindingContext...)
	msg = append(msg, byte(len(identity)>>8), byte(len(identity)))
	msg = append(msg, identity...)
	msg = append(msg, byte(len(addr)>>8), byte(len(addr)))
	msg = append(msg, addr...)
	return crypto.Keccak256(msg)
}

// bindAddress signs the binding of the contact address addr, whose key is
// key, to identity.
func bindAddress(key *ecdsa.PrivateKey, identity, addr []byte) ([]byte, error) {
	return crypto.Sign(bindingDigest(identity, addr), key)
}

// errUnbound reports a binding that does not hold.
var errUnbound = errors.New("whisper: the address is not bound to this identity")

// checkBinding reports whether binding is the signature, by the key of the
// contact address addr, of its binding to identity.
func checkBinding(identity, addr, binding []byte) error {
	a, err := decodeAddress(addr)
	if err != nil {
		return err
	}
	if a.kind != addrKindContact {
		return fmt.Errorf("%w: not a contact address", ErrBadAddress)
	}
	if len(binding) != bindingLength {
		return fmt.Errorf("%w: the binding is %d bytes, want %d", errUnbound, len(binding), bindingLength)
	}
	digest := bindingDigest(identity, addr)
	pub, err := crypto.SigToPub(digest, binding)
	if err != nil {
		return fmt.Errorf("%w: %v", errUnbound, err)
	}
	want := crypto.FromECDSAPub(a.pub)
	if subtle.ConstantTimeCompare(crypto.FromECDSAPub(pub), want) != 1 ||
		!crypto.VerifySignature(want, digest, binding[:64]) {
		return errUnbound
	}
	return nil
}

// BindAddress implements privacyv1.ControlServer: the node's contact
// address, bound to its identity by the whisper key's signature.
func (l *Layer) BindAddress(_ context.Context, req *privacyv1.BindAddressRequest) (*privacyv1.BindAddressResponse, error) {
	if len(req.GetIdentityKey()) == 0 {
		return nil, grpcstatus.Error(codes.InvalidArgument, "whisper: no identity key to bind to")
	}
	l.mu.Lock()
	key, addr := l.key, l.ownAddr
	l.mu.Unlock()
	if key == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	b, err := bindAddress(key, req.GetIdentityKey(), addr)
	if err != nil {
		return nil, grpcstatus.Error(codes.Internal, err.Error())
	}
	return &privacyv1.BindAddressResponse{Binding: b}, nil
}

// CheckBinding implements privacyv1.ControlServer.
func (l *Layer) CheckBinding(_ context.Context, req *privacyv1.CheckBindingRequest) (*privacyv1.CheckBindingResponse, error) {
	if err := checkBinding(req.GetIdentityKey(), req.GetAddress(), req.GetBinding()); err != nil {
		return nil, grpcstatus.Error(codes.InvalidArgument, err.Error())
	}
	return &privacyv1.CheckBindingResponse{}, nil
}
