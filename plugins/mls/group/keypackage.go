package group

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Identity is a member's long-term signing identity: its credential and
// the signature key pair its leaves carry.
type Identity struct {
	Credential    wire.Credential
	SignaturePriv []byte
	SignaturePub  []byte
}

// KeyPackageBundle is a KeyPackage and the private keys that go with it:
// the init key (for the Welcome) and the leaf's encryption key (for the
// tree), and the signing identity.
type KeyPackageBundle struct {
	KeyPackage     wire.KeyPackage
	InitPriv       []byte
	EncryptionPriv []byte
	Identity       Identity
}

// Destroy zeroes the bundle's HPKE private keys (a KeyPackage is used
// once).
func (b *KeyPackageBundle) Destroy() {
	clear(b.InitPriv)
	clear(b.EncryptionPriv)
}

// defaultCapabilities lists what this library supports: MLS 1.0, the
// suite, basic credentials, and the non-default proposal and extension
// types it does not need to list.
func defaultCapabilities(cs *suite.Suite) wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{1},
		CipherSuites: []wire.CipherSuite{wire.CipherSuite(cs.ID())},
		Credentials:  []wire.CredentialType{wire.CredentialBasic},
	}
}

// NewKeyPackage makes a KeyPackage for id with fresh init and encryption
// keys, valid from now for lifetime (RFC 9420 §10). random may be nil for
// crypto/rand.
func NewKeyPackage(cs *suite.Suite, id Identity, now time.Time, lifetime time.Duration, random io.Reader) (*KeyPackageBundle, error) {
	initPriv, initPub, err := cs.GenerateHPKEKey(random)
	if err != nil {
		return nil, fmt.Errorf("mls/group: key package: %w", err)
	}
	leaf, encPriv, err := newKeyPackageLeaf(cs, id, now, lifetime, random)
	if err != nil {
		return nil, fmt.Errorf("mls/group: key package: %w", err)
	}
	kp := wire.KeyPackage{Version: 1, CipherSuite: wire.CipherSuite(cs.ID()), InitKey: initPub, LeafNode: leaf}
	tbs, err := kp.TBS()
	if err != nil {
		return nil, fmt.Errorf("mls/group: key package: %w", err)
	}
	if kp.Signature, err = cs.SignWithLabel(id.SignaturePriv, "KeyPackageTBS", tbs); err != nil {
		return nil, fmt.Errorf("mls/group: key package: %w", err)
	}
	return &KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, Identity: id}, nil
}

// newKeyPackageLeaf makes id's leaf of source key_package (a KeyPackage's,
// or a new group's creator's) with a fresh encryption key, valid from now
// for lifetime, signed; it returns the encryption key's private half too.
func newKeyPackageLeaf(cs *suite.Suite, id Identity, now time.Time, lifetime time.Duration, random io.Reader) (wire.LeafNode, []byte, error) {
	encPriv, encPub, err := cs.GenerateHPKEKey(random)
	if err != nil {
		return wire.LeafNode{}, nil, err
	}
	leaf := wire.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  id.SignaturePub,
		Credential:    id.Credential,
		Capabilities:  defaultCapabilities(cs),
		Source:        wire.LeafNodeSourceKeyPackage,
		Lifetime:      wire.Lifetime{NotBefore: uint64(now.Unix()), NotAfter: uint64(now.Add(lifetime).Unix())},
	}
	if err := signLeaf(cs, &leaf, id.SignaturePriv, nil, 0); err != nil {
		clear(encPriv)
		return wire.LeafNode{}, nil, err
	}
	return leaf, encPriv, nil
}

func signLeaf(cs *suite.Suite, leaf *wire.LeafNode, sigPriv, groupID []byte, index uint32) error {
	tbs, err := leaf.TBS(groupID, index)
	if err != nil {
		return fmt.Errorf("mls/group: leaf: %w", err)
	}
	if leaf.Signature, err = cs.SignWithLabel(sigPriv, "LeafNodeTBS", tbs); err != nil {
		return fmt.Errorf("mls/group: sign leaf: %w", err)
	}
	return nil
}

// ValidateKeyPackage checks a KeyPackage as RFC 9420 §10.1 requires before
// it is used: version MLS 1.0 and the given suite, a signature that
// verifies with the leaf's signature key, an init key that differs from
// the leaf's encryption key, and a leaf node that is valid by itself
// (source key_package, lifetime covering now, its signature, its
// credential and extensions within its capabilities).
func ValidateKeyPackage(cs *suite.Suite, kp *wire.KeyPackage, now time.Time) error {
	if kp.Version != 1 {
		return fmt.Errorf("%w: KeyPackage version %d", ErrInvalidKeyPackage, kp.Version)
	}
	if suite.ID(kp.CipherSuite) != cs.ID() {
		return fmt.Errorf("%w: KeyPackage suite 0x%04x, group 0x%04x", ErrInvalidKeyPackage, kp.CipherSuite, cs.ID())
	}
	tbs, err := kp.TBS()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if err := cs.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", tbs, kp.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidKeyPackage, err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init key equals the leaf's encryption key", ErrInvalidKeyPackage)
	}
	if err := validateLeaf(cs, &kp.LeafNode, wire.LeafNodeSourceKeyPackage, nil, 0, now); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// validateLeaf checks what RFC 9420 §7.3 asks of a leaf node by itself:
// its source, its signature, its lifetime (key_package source), that its
// capabilities list MLS 1.0 and its own credential type, and that every
// non-default extension it carries is in its capabilities. The checks
// against the rest of the group (keys unique, credentials supported by
// every member, required capabilities) are validateLeafInGroup's.
func validateLeaf(cs *suite.Suite, leaf *wire.LeafNode, source wire.LeafNodeSource, groupID []byte, index uint32, now time.Time) error {
	if leaf.Source != source {
		return fmt.Errorf("%w: leaf source %d, want %d", ErrInvalidLeaf, leaf.Source, source)
	}
	tbs, err := leaf.TBS(groupID, index)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeaf, err)
	}
	if err := cs.VerifyWithLabel(leaf.SignatureKey, "LeafNodeTBS", tbs, leaf.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidLeaf, err)
	}
	if source == wire.LeafNodeSourceKeyPackage {
		t := uint64(now.Unix())
		if t < leaf.Lifetime.NotBefore || t > leaf.Lifetime.NotAfter {
			return fmt.Errorf("%w: lifetime [%d, %d] does not cover %d", ErrInvalidLeaf, leaf.Lifetime.NotBefore, leaf.Lifetime.NotAfter, t)
		}
	}
	caps := &leaf.Capabilities
	if !slices.Contains(caps.Versions, 1) {
		return fmt.Errorf("%w: capabilities lack MLS 1.0", ErrInvalidLeaf)
	}
	if !slices.Contains(caps.Credentials, leaf.Credential.Type) {
		return fmt.Errorf("%w: capabilities lack its own credential type %d", ErrInvalidLeaf, leaf.Credential.Type)
	}
	for _, e := range leaf.Extensions {
		if !defaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return fmt.Errorf("%w: extension %d is not in its capabilities", ErrInvalidLeaf, e.Type)
		}
	}
	return nil
}

// defaultExtension reports whether an extension type is one of RFC 9420's
// own (§7.2: these need not be listed in capabilities).
func defaultExtension(t wire.ExtensionType) bool {
	return t >= wire.ExtensionApplicationID && t <= wire.ExtensionExternalSenders
}

// requiredCapabilities is the required_capabilities extension (RFC 9420
// §11.1).
type requiredCapabilities struct {
	extensions  []wire.ExtensionType
	proposals   []wire.ProposalType
	credentials []wire.CredentialType
}

func parseRequiredCapabilities(exts []wire.Extension) (*requiredCapabilities, error) {
	for _, e := range exts {
		if e.Type != wire.ExtensionRequiredCapabilities {
			continue
		}
		r := codec.NewReader(e.Data)
		var rc requiredCapabilities
		err := r.Vector(func(r *codec.Reader) error {
			v, err := r.Uint16()
			rc.extensions = append(rc.extensions, wire.ExtensionType(v))
			return err
		})
		if err == nil {
			err = r.Vector(func(r *codec.Reader) error {
				v, err := r.Uint16()
				rc.proposals = append(rc.proposals, wire.ProposalType(v))
				return err
			})
		}
		if err == nil {
			err = r.Vector(func(r *codec.Reader) error {
				v, err := r.Uint16()
				rc.credentials = append(rc.credentials, wire.CredentialType(v))
				return err
			})
		}
		if err == nil {
			err = r.Done()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: required_capabilities: %w", ErrInvalidProposal, err)
		}
		return &rc, nil
	}
	return nil, nil
}

// supports reports whether a leaf's capabilities meet the group's
// required capabilities.
func (rc *requiredCapabilities) supports(caps *wire.Capabilities) bool {
	if rc == nil {
		return true
	}
	for _, e := range rc.extensions {
		if !defaultExtension(e) && !slices.Contains(caps.Extensions, e) {
			return false
		}
	}
	for _, p := range rc.proposals {
		if p > wire.ProposalGroupContextExtensions && !slices.Contains(caps.Proposals, p) {
			return false
		}
	}
	for _, c := range rc.credentials {
		if !slices.Contains(caps.Credentials, c) {
			return false
		}
	}
	return true
}
