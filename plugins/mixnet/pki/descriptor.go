package pki

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/blake2b"
)

// Format versions this code writes and reads. A record with a higher
// version is refused (ErrUnsupportedVersion); compatible additions do not
// bump the version but add fields with new tags, which older decoders keep
// as Unknown.
const (
	DescriptorVersion = 1
	DocumentVersion   = 1
)

// Decoder bounds. Anything larger is refused with ErrTooLarge before it is
// allocated.
const (
	// MaxDocumentSize bounds an encoded signed document.
	MaxDocumentSize = 4 << 20
	// MaxDescriptorSize bounds one encoded signed descriptor.
	MaxDescriptorSize = 16 << 10
	// MaxNodes bounds the descriptors in a document (all layers and
	// providers together).
	MaxNodes = 1024
	// MaxLayers bounds the mix layers of a document.
	MaxLayers = 16
	// MaxSignatures bounds the signatures a document may carry.
	MaxSignatures = 64
	// MaxSphinxKeys bounds the per-epoch keys one descriptor publishes.
	MaxSphinxKeys = 8
	// MaxAddresses bounds the libp2p multiaddrs of one descriptor.
	MaxAddresses = 16
	// MaxAddressLen bounds a peer id, multiaddr or enode URL, in bytes.
	MaxAddressLen = 256
	// MaxNameLen bounds a node's or network's name, in bytes.
	MaxNameLen = 64
	// MaxGeometryIDLen bounds the packet geometry id, in bytes.
	MaxGeometryIDLen = 64
	// maxRecordFields bounds the fields of any one record, known and
	// unknown, beyond the lists bounded above.
	maxRecordFields = 64
)

// LayerProvider is the Layer of a provider's descriptor; mix nodes carry
// their layer index, 0 ≤ Layer < MaxLayers.
const LayerProvider = 255

// Domain-separation prefixes of the two kinds of signature.
const (
	descriptorSigContext = "strata-mixnet-descriptor-v1\x00"
	documentSigContext   = "strata-mixnet-document-v1\x00"
)

// Field tags of a descriptor body.
const (
	tagDescVersion = iota + 1
	tagDescNetworkID
	tagDescName
	tagDescIdentityKey
	tagDescProvider
	tagDescLayer
	tagDescSphinxKey
	tagDescLibp2pPeerID
	tagDescLibp2pAddr
	tagDescEnode
	tagDescLast = tagDescEnode
)

// Field tags of a signed descriptor and of an epoch key.
const (
	tagSignedBody = 1
	tagSignedSig  = 2
	tagKeyEpoch   = 1
	tagKeyPublic  = 2
)

// EpochKey is a node's Sphinx public key for one epoch.
type EpochKey struct {
	// Epoch is the epoch the key serves.
	Epoch uint64
	// Public is the X25519 public key.
	Public [SphinxKeySize]byte
}

// Descriptor describes one relay: who it is (its Ed25519 identity key),
// its role (a mix layer or provider), its Sphinx public keys per epoch,
// and where the overlays reach it. A descriptor is signed by its own
// identity key (SignDescriptor), so it can be relayed by anyone — an
// authority, a gossip network, a chain — without trusting the relayer.
type Descriptor struct {
	// Version is the descriptor format version, DescriptorVersion.
	Version uint64
	// NetworkID names the network; a descriptor signed for one network
	// is refused in a document of another.
	NetworkID string
	// Name is a human-readable node name, 1..MaxNameLen bytes of
	// printable UTF-8.
	Name string
	// IdentityKey is the node's long-term Ed25519 public key.
	IdentityKey ed25519.PublicKey
	// Provider marks a provider (Katzenpost: gateway), which holds
	// client mailboxes; providers are not in any mix layer.
	Provider bool
	// Layer is the node's mix layer, from 0 at the sender's side, or
	// LayerProvider for a provider.
	Layer uint8
	// SphinxKeys are the node's X25519 Sphinx public keys, one per epoch,
	// in increasing epoch order; a document requires its epoch and the
	// next one to be present.
	SphinxKeys []EpochKey
	// Libp2pPeerID is the node's libp2p peer id in base58 (as
	// peer.ID.String gives it; the CID form is refused), empty if the
	// node is not on the libp2p overlay.
	Libp2pPeerID string
	// Libp2pAddrs are multiaddrs the peer listens on.
	Libp2pAddrs []string
	// Enode is the node's devp2p enode URL, empty if it is not on the
	// devp2p overlay.
	Enode string
	// Unknown holds fields of a newer format version, in tag order.
	Unknown []Field
}

// SphinxKey returns the node's Sphinx public key for epoch.
func (d *Descriptor) SphinxKey(epoch uint64) ([SphinxKeySize]byte, bool) {
	for _, k := range d.SphinxKeys {
		if k.Epoch == epoch {
			return k.Public, true
		}
	}
	return [SphinxKeySize]byte{}, false
}

// NodeID returns BLAKE2b-256 of the identity key, the node id Katzenpost's
// Sphinx routing commands carry.
func (d *Descriptor) NodeID() [32]byte { return blake2b.Sum256(d.IdentityKey) }

// Check reports whether the descriptor's fields are each well formed:
// version, name, key sizes, role and layer agreeing, usable Sphinx keys in
// increasing epoch order, and at least one overlay address of the right
// shape. It does not check the signature or the placement in a document.
func (d *Descriptor) Check() error {
	if d.Version != DescriptorVersion {
		return fmt.Errorf("%w: descriptor version %d", ErrUnsupportedVersion, d.Version)
	}
	if err := checkName("network id", d.NetworkID); err != nil {
		return err
	}
	if err := checkName("name", d.Name); err != nil {
		return err
	}
	if len(d.IdentityKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: identity key is %d bytes", ErrBadField, len(d.IdentityKey))
	}
	if d.Provider != (d.Layer == LayerProvider) {
		return fmt.Errorf("%w: provider flag %v with layer %d", ErrProviderInMixLayer, d.Provider, d.Layer)
	}
	if !d.Provider && d.Layer >= MaxLayers {
		return fmt.Errorf("%w: layer %d is not below %d", ErrBadField, d.Layer, MaxLayers)
	}
	if len(d.SphinxKeys) == 0 {
		return fmt.Errorf("%w: no sphinx keys", ErrMissingSphinxKey)
	}
	if len(d.SphinxKeys) > MaxSphinxKeys {
		return fmt.Errorf("%w: %d sphinx keys, over %d", ErrTooLarge, len(d.SphinxKeys), MaxSphinxKeys)
	}
	for i, k := range d.SphinxKeys {
		if i > 0 && k.Epoch <= d.SphinxKeys[i-1].Epoch {
			return fmt.Errorf("%w: sphinx key epochs not strictly increasing (%d after %d)", ErrNonCanonical, k.Epoch, d.SphinxKeys[i-1].Epoch)
		}
		if err := CheckSphinxKey(k.Public[:]); err != nil {
			return fmt.Errorf("sphinx key for epoch %d: %w", k.Epoch, err)
		}
		for _, o := range d.SphinxKeys[:i] {
			if o.Public == k.Public {
				return fmt.Errorf("%w: one key for epochs %d and %d", ErrDuplicateSphinxKey, o.Epoch, k.Epoch)
			}
		}
	}
	return d.checkAddresses()
}

func (d *Descriptor) checkAddresses() error {
	if len(d.Libp2pAddrs) > MaxAddresses {
		return fmt.Errorf("%w: %d libp2p addresses, over %d", ErrTooLarge, len(d.Libp2pAddrs), MaxAddresses)
	}
	if d.Libp2pPeerID != "" {
		if len(d.Libp2pPeerID) > MaxAddressLen {
			return fmt.Errorf("%w: libp2p peer id is %d bytes", ErrTooLarge, len(d.Libp2pPeerID))
		}
		for _, c := range d.Libp2pPeerID {
			if !strings.ContainsRune(base58Alphabet, c) {
				return fmt.Errorf("%w: libp2p peer id %q is not base58", ErrBadField, d.Libp2pPeerID)
			}
		}
		if len(d.Libp2pAddrs) == 0 {
			return fmt.Errorf("%w: libp2p peer id without addresses", ErrBadField)
		}
	} else if len(d.Libp2pAddrs) > 0 {
		return fmt.Errorf("%w: libp2p addresses without a peer id", ErrBadField)
	}
	for _, a := range d.Libp2pAddrs {
		if err := checkAddress("libp2p multiaddr", a, "/"); err != nil {
			return err
		}
	}
	if d.Enode != "" {
		if err := checkAddress("enode", d.Enode, "enode://"); err != nil {
			return err
		}
	}
	if d.Libp2pPeerID == "" && d.Enode == "" {
		return fmt.Errorf("%w: no overlay address", ErrBadField)
	}
	return nil
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// checkName checks a 1..MaxNameLen byte printable UTF-8 string.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrBadField, what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s is %d bytes, over %d", ErrTooLarge, what, len(s), MaxNameLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrBadField, what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %s %q has a non-printable character", ErrBadField, what, s)
		}
	}
	return nil
}

// checkAddress checks an address of printable ASCII without spaces,
// starting with prefix, of at most MaxAddressLen bytes.
func checkAddress(what, s, prefix string) error {
	if len(s) > MaxAddressLen {
		return fmt.Errorf("%w: %s is %d bytes, over %d", ErrTooLarge, what, len(s), MaxAddressLen)
	}
	if !strings.HasPrefix(s, prefix) || len(s) == len(prefix) {
		return fmt.Errorf("%w: %s %q does not start with %q", ErrBadField, what, s, prefix)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("%w: %s %q has a space or non-ASCII byte", ErrBadField, what, s)
		}
	}
	return nil
}

// checkUnknown refuses unknown fields that reuse a known tag (≤ last) or
// are out of order, which would make the encoding ambiguous.
func checkUnknown(record string, unknown []Field, known func(uint64) bool) error {
	for i, f := range unknown {
		if f.Tag == 0 || f.Tag > maxTag || known(f.Tag) {
			return fmt.Errorf("%w: %s: unknown field with tag %d", ErrMalformed, record, f.Tag)
		}
		if i > 0 && f.Tag < unknown[i-1].Tag {
			return fmt.Errorf("%w: %s: unknown fields out of tag order", ErrNonCanonical, record)
		}
	}
	return nil
}

func tagsUpTo(last uint64) func(uint64) bool {
	return func(t uint64) bool { return t >= 1 && t <= last }
}

// Marshal returns the descriptor's canonical body encoding, the bytes its
// identity key signs. The descriptor must pass Check.
func (d *Descriptor) Marshal() ([]byte, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d.marshal()
}

// marshal encodes the descriptor without checking its fields.
func (d *Descriptor) marshal() ([]byte, error) {
	if err := checkUnknown("descriptor", d.Unknown, tagsUpTo(tagDescLast)); err != nil {
		return nil, err
	}
	var e encoder
	u := d.Unknown
	u = e.unknownBefore(tagDescVersion, u)
	e.uint(tagDescVersion, d.Version)
	u = e.unknownBefore(tagDescNetworkID, u)
	e.string(tagDescNetworkID, d.NetworkID)
	u = e.unknownBefore(tagDescName, u)
	e.string(tagDescName, d.Name)
	u = e.unknownBefore(tagDescIdentityKey, u)
	e.bytes(tagDescIdentityKey, d.IdentityKey)
	u = e.unknownBefore(tagDescProvider, u)
	e.bool(tagDescProvider, d.Provider)
	u = e.unknownBefore(tagDescLayer, u)
	e.uint(tagDescLayer, uint64(d.Layer))
	u = e.unknownBefore(tagDescSphinxKey, u)
	for _, k := range d.SphinxKeys {
		e.record(tagDescSphinxKey, func(r *encoder) {
			r.uint(tagKeyEpoch, k.Epoch)
			r.bytes(tagKeyPublic, k.Public[:])
		})
	}
	u = e.unknownBefore(tagDescLibp2pPeerID, u)
	e.string(tagDescLibp2pPeerID, d.Libp2pPeerID)
	u = e.unknownBefore(tagDescLibp2pAddr, u)
	for _, a := range d.Libp2pAddrs {
		e.string(tagDescLibp2pAddr, a)
	}
	u = e.unknownBefore(tagDescEnode, u)
	e.string(tagDescEnode, d.Enode)
	e.unknownBefore(maxTag+1, u)
	if len(e.b) > MaxDescriptorSize-ed25519.SignatureSize-8 {
		return nil, fmt.Errorf("%w: descriptor body is %d bytes", ErrTooLarge, len(e.b))
	}
	return e.b, nil
}

// unmarshalDescriptor decodes a descriptor body and checks its fields.
func unmarshalDescriptor(b []byte) (*Descriptor, error) {
	r, err := newFieldReader("descriptor", b, maxRecordFields+MaxSphinxKeys+MaxAddresses)
	if err != nil {
		return nil, err
	}
	d := &Descriptor{}
	if d.Version, err = r.uint(tagDescVersion, "version"); err != nil {
		return nil, err
	}
	if d.Version != DescriptorVersion {
		return nil, fmt.Errorf("%w: descriptor version %d", ErrUnsupportedVersion, d.Version)
	}
	if d.NetworkID, err = r.str(tagDescNetworkID, "network id", MaxNameLen); err != nil {
		return nil, err
	}
	if d.Name, err = r.str(tagDescName, "name", MaxNameLen); err != nil {
		return nil, err
	}
	id, err := r.fixed(tagDescIdentityKey, "identity key", ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	d.IdentityKey = id
	if d.Provider, err = r.bool(tagDescProvider, "provider"); err != nil {
		return nil, err
	}
	layer, err := r.uint(tagDescLayer, "layer")
	if err != nil {
		return nil, err
	}
	if layer > LayerProvider {
		return nil, fmt.Errorf("%w: descriptor layer %d", ErrMalformed, layer)
	}
	d.Layer = uint8(layer)
	keys, err := r.list(tagDescSphinxKey, "sphinx keys", MaxSphinxKeys)
	if err != nil {
		return nil, err
	}
	for _, kb := range keys {
		kr, err := newFieldReader("sphinx key", kb, maxRecordFields)
		if err != nil {
			return nil, err
		}
		var k EpochKey
		if k.Epoch, err = kr.uint(tagKeyEpoch, "epoch"); err != nil {
			return nil, err
		}
		pub, err := kr.fixed(tagKeyPublic, "public key", SphinxKeySize)
		if err != nil {
			return nil, err
		}
		copy(k.Public[:], pub)
		if u := kr.done(); len(u) > 0 {
			// The key record has no room for extension: a key is a key.
			return nil, fmt.Errorf("%w: sphinx key record has unknown field %d", ErrMalformed, u[0].Tag)
		}
		d.SphinxKeys = append(d.SphinxKeys, k)
	}
	if d.Libp2pPeerID, err = r.str(tagDescLibp2pPeerID, "libp2p peer id", MaxAddressLen); err != nil {
		return nil, err
	}
	addrs, err := r.list(tagDescLibp2pAddr, "libp2p addresses", MaxAddresses)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if len(a) > MaxAddressLen {
			return nil, fmt.Errorf("%w: libp2p address is %d bytes", ErrTooLarge, len(a))
		}
		d.Libp2pAddrs = append(d.Libp2pAddrs, string(a))
	}
	if d.Enode, err = r.str(tagDescEnode, "enode", MaxAddressLen); err != nil {
		return nil, err
	}
	d.Unknown = r.done()
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d, nil
}

// SignedDescriptor is a descriptor with its identity key's signature. Body
// is authoritative: it is what was signed, and Descriptor is its decoding.
type SignedDescriptor struct {
	// Descriptor is Body decoded.
	Descriptor
	// Body is the canonical descriptor encoding that was signed.
	Body []byte
	// Signature is the identity key's Ed25519 signature over the
	// descriptor signing context followed by Body.
	Signature []byte
}

// SignDescriptor encodes d canonically and signs it with identity, which
// must be the private key of d.IdentityKey.
func SignDescriptor(d *Descriptor, identity ed25519.PrivateKey) (*SignedDescriptor, error) {
	if len(identity) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: identity private key is %d bytes", ErrConfig, len(identity))
	}
	if !bytes.Equal(identity.Public().(ed25519.PublicKey), d.IdentityKey) {
		return nil, fmt.Errorf("%w: identity private key does not match the descriptor's identity key", ErrConfig)
	}
	body, err := d.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sign descriptor %q: %w", d.Name, err)
	}
	sig := ed25519.Sign(identity, append([]byte(descriptorSigContext), body...))
	dec, err := unmarshalDescriptor(body)
	if err != nil {
		return nil, fmt.Errorf("sign descriptor %q: re-decode: %w", d.Name, err)
	}
	return &SignedDescriptor{Descriptor: *dec, Body: body, Signature: sig}, nil
}

// Marshal returns the signed descriptor's encoding: Body and Signature.
func (s *SignedDescriptor) Marshal() []byte {
	var e encoder
	e.bytes(tagSignedBody, s.Body)
	e.bytes(tagSignedSig, s.Signature)
	return e.b
}

// ParseSignedDescriptor decodes a signed descriptor from untrusted bytes,
// checks its fields and verifies its self-signature.
func ParseSignedDescriptor(b []byte) (*SignedDescriptor, error) {
	if len(b) > MaxDescriptorSize {
		return nil, fmt.Errorf("%w: signed descriptor is %d bytes, over %d", ErrTooLarge, len(b), MaxDescriptorSize)
	}
	r, err := newFieldReader("signed descriptor", b, 2)
	if err != nil {
		return nil, err
	}
	body, err := r.one(tagSignedBody, "body")
	if err != nil {
		return nil, err
	}
	sig, err := r.fixed(tagSignedSig, "signature", ed25519.SignatureSize)
	if err != nil {
		return nil, err
	}
	if u := r.done(); len(u) > 0 {
		return nil, fmt.Errorf("%w: signed descriptor has unknown field %d", ErrMalformed, u[0].Tag)
	}
	d, err := unmarshalDescriptor(body)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(d.IdentityKey, append([]byte(descriptorSigContext), body...), sig) {
		return nil, fmt.Errorf("descriptor %q: %w", d.Name, ErrBadDescriptorSignature)
	}
	return &SignedDescriptor{Descriptor: *d, Body: append([]byte(nil), body...), Signature: sig}, nil
}
