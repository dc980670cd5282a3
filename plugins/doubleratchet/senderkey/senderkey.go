// Package senderkey implements the sender keys with which the
// doubleratchet layer can seal a group message once for the whole group,
// after Signal's sender keys (libsignal's group cipher): each member has,
// per conversation, a symmetric hash chain and an Ed25519 signing key. It
// hands both to every other member over their pairwise Double Ratchet
// sessions (a Distribution), then seals each group message with the
// chain's next message key and signs it. Receivers step their copy of the
// chain to the message's iteration, keeping the keys they skipped, and
// check the signature before anything else.
//
// The profile:
//
//	message key, next chain key   HMAC-SHA256(CK, 0x01), HMAC-SHA256(CK, 0x02)  (as KDF_CK)
//	key ‖ nonce                   HKDF-SHA256(salt = 32 zero bytes, IKM = MK,
//	                              info "Strata_SenderKey_MessageKeys") → 32 ‖ 12 bytes
//	cipher                        ChaCha20-Poly1305, AD = header ‖ signing key
//	header                        "strata-dr-senderkey-v1\0" ‖ uint32 len(conversation)
//	                              ‖ conversation ‖ uint32 key id ‖ uint32 iteration
//	signature                     Ed25519 over header ‖ ciphertext
//
// (integers big-endian). What sender keys give up against pairwise
// ratchets: a message key follows from the chain key alone, so whoever
// learns a member's chain key reads that member's later group messages
// until it makes a new one (no post-compromise security within a chain;
// forward secrecy holds, as the chain only moves forward). The layer makes
// a new chain when a member leaves, so a removed member reads nothing
// sealed after its removal.
//
// The package does no I/O and keeps no clock: state in, state out. A
// failed Open leaves the receiver as it was.
package senderkey

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
)

// KeySize is the size of a chain key.
const KeySize = 32

// context separates sender-key signatures and AD from every other use of
// the keys.
const context = "strata-dr-senderkey-v1\x00"

const infoMessageKeys = "Strata_SenderKey_MessageKeys"

// Errors. Open wraps them; test with errors.Is.
var (
	// ErrSignature: the signature does not verify with the sender's key.
	ErrSignature = errors.New("senderkey: bad signature")
	// ErrDecrypt: the ciphertext does not authenticate.
	ErrDecrypt = errors.New("senderkey: ciphertext does not authenticate")
	// ErrKeyID: the message is for another chain.
	ErrKeyID = errors.New("senderkey: message is for another key id")
	// ErrReplay: the message's key was used already, or dropped.
	ErrReplay = errors.New("senderkey: message key already used or expired")
	// ErrTooFar: the message is further ahead in the chain than Limits.MaxSkip.
	ErrTooFar = errors.New("senderkey: message too far ahead in the chain")
	// ErrExhausted: the chain has no iteration left; make a new sender.
	ErrExhausted = errors.New("senderkey: chain exhausted")
	// ErrMalformed: a distribution or stored state is not well formed.
	ErrMalformed = errors.New("senderkey: malformed")
)

// Limits bound what a receiver keeps.
type Limits struct {
	// MaxSkip is how far ahead of the receiver's position a message may be.
	MaxSkip uint32
	// MaxSkippedKeys is how many skipped message keys a receiver keeps; the
	// oldest go first.
	MaxSkippedKeys int
}

// DefaultLimits are 1000 and 1000, as the pairwise ratchet's.
func DefaultLimits() Limits { return Limits{MaxSkip: 1000, MaxSkippedKeys: 1000} }

// Distribution is what a member hands to the others so that they can open
// its group messages from Iteration on.
type Distribution struct {
	KeyID      uint32
	Iteration  uint32
	ChainKey   [KeySize]byte
	SigningKey ed25519.PublicKey
}

// Message is one sealed group message.
type Message struct {
	KeyID      uint32
	Iteration  uint32
	Ciphertext []byte
	Signature  []byte
}

// Sender is a member's own chain for one conversation.
type Sender struct {
	keyID     uint32
	iteration uint32
	chainKey  [KeySize]byte
	signing   ed25519.PrivateKey
}

// NewSender makes a chain with a random key id, chain key and signing key.
func NewSender(rand io.Reader) (*Sender, error) {
	s := &Sender{}
	var id [4]byte
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return nil, fmt.Errorf("senderkey: key id: %w", err)
	}
	s.keyID = binary.BigEndian.Uint32(id[:])
	if _, err := io.ReadFull(rand, s.chainKey[:]); err != nil {
		return nil, fmt.Errorf("senderkey: chain key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		clear(s.chainKey[:])
		return nil, fmt.Errorf("senderkey: signing key: %w", err)
	}
	s.signing = priv
	return s, nil
}

// KeyID identifies the chain in its messages.
func (s *Sender) KeyID() uint32 { return s.keyID }

// Iteration is the iteration the next sealed message takes.
func (s *Sender) Iteration() uint32 { return s.iteration }

// Distribution is the chain at its current position, for the members.
func (s *Sender) Distribution() Distribution {
	return Distribution{
		KeyID:      s.keyID,
		Iteration:  s.iteration,
		ChainKey:   s.chainKey,
		SigningKey: s.signing.Public().(ed25519.PublicKey),
	}
}

// Seal encrypts and signs plaintext for conversation with the chain's next
// message key, and moves the chain on.
func (s *Sender) Seal(conversation, plaintext []byte) (Message, error) {
	if s.iteration == ^uint32(0) {
		return Message{}, ErrExhausted
	}
	mk, next := step(&s.chainKey)
	defer clear(mk[:])
	h := header(conversation, s.keyID, s.iteration)
	ct, err := crypt(mk[:], h, s.signing.Public().(ed25519.PublicKey), plaintext, nil)
	if err != nil {
		clear(next[:])
		return Message{}, err
	}
	m := Message{
		KeyID:      s.keyID,
		Iteration:  s.iteration,
		Ciphertext: ct,
		Signature:  ed25519.Sign(s.signing, append(h, ct...)),
	}
	s.chainKey = next
	clear(next[:])
	s.iteration++
	return m, nil
}

// Zero overwrites the sender's secrets.
func (s *Sender) Zero() {
	clear(s.chainKey[:])
	clear(s.signing)
}

// Receiver is a member's copy of another member's chain.
type Receiver struct {
	keyID     uint32
	iteration uint32 // the next iteration not yet stepped past
	chainKey  [KeySize]byte
	verify    ed25519.PublicKey
	skipped   map[uint32][KeySize]byte
	limits    Limits
}

// NewReceiver starts a receiver from a member's distribution.
func NewReceiver(d Distribution, limits Limits) (*Receiver, error) {
	if len(d.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signing key is %d bytes", ErrMalformed, len(d.SigningKey))
	}
	return &Receiver{
		keyID:     d.KeyID,
		iteration: d.Iteration,
		chainKey:  d.ChainKey,
		verify:    slices.Clone(d.SigningKey),
		skipped:   map[uint32][KeySize]byte{},
		limits:    limits,
	}, nil
}

// KeyID is the chain's key id.
func (r *Receiver) KeyID() uint32 { return r.keyID }

// SigningKey is the key the chain's messages are signed with.
func (r *Receiver) SigningKey() ed25519.PublicKey { return r.verify }

// SetLimits changes the limits for later messages.
func (r *Receiver) SetLimits(l Limits) { r.limits = l }

// Open checks a message's signature, decrypts it, and moves the chain on
// past it. On any error the receiver is unchanged.
func (r *Receiver) Open(conversation []byte, m Message) ([]byte, error) {
	if m.KeyID != r.keyID {
		return nil, ErrKeyID
	}
	h := header(conversation, m.KeyID, m.Iteration)
	if len(m.Signature) != ed25519.SignatureSize || !ed25519.Verify(r.verify, append(h, m.Ciphertext...), m.Signature) {
		return nil, ErrSignature
	}
	if m.Iteration < r.iteration {
		mk, ok := r.skipped[m.Iteration]
		if !ok {
			return nil, ErrReplay
		}
		pt, err := crypt(mk[:], h, r.verify, nil, m.Ciphertext)
		if err != nil {
			return nil, err
		}
		delete(r.skipped, m.Iteration)
		clear(mk[:])
		return pt, nil
	}
	if m.Iteration-r.iteration > r.limits.MaxSkip {
		return nil, ErrTooFar
	}
	// Step a copy of the chain; commit only when the message opens.
	ck := r.chainKey
	defer clear(ck[:])
	var skipped [][KeySize]byte
	for range m.Iteration - r.iteration {
		mk, next := step(&ck)
		skipped = append(skipped, mk)
		ck = next
	}
	mk, next := step(&ck)
	defer clear(mk[:])
	pt, err := crypt(mk[:], h, r.verify, nil, m.Ciphertext)
	if err != nil {
		for i := range skipped {
			clear(skipped[i][:])
		}
		clear(next[:])
		return nil, err
	}
	for i, k := range skipped {
		r.skipped[r.iteration+uint32(i)] = k
		clear(skipped[i][:])
	}
	r.chainKey = next
	clear(next[:])
	r.iteration = m.Iteration + 1
	r.trim()
	return pt, nil
}

// trim drops the oldest skipped keys beyond the limit.
func (r *Receiver) trim() {
	over := len(r.skipped) - r.limits.MaxSkippedKeys
	if over <= 0 {
		return
	}
	its := make([]uint32, 0, len(r.skipped))
	for it := range r.skipped {
		its = append(its, it)
	}
	slices.Sort(its)
	for _, it := range its[:over] {
		k := r.skipped[it]
		clear(k[:])
		delete(r.skipped, it)
	}
}

// Zero overwrites the receiver's secrets.
func (r *Receiver) Zero() {
	clear(r.chainKey[:])
	for it, k := range r.skipped {
		clear(k[:])
		delete(r.skipped, it)
	}
}

// step is KDF_CK, the pairwise ratchet's (ratchet.ChainStep).
func step(ck *[KeySize]byte) (mk, next [KeySize]byte) { return ratchet.ChainStep(ck) }

// header is the signed and authenticated header of a message.
func header(conversation []byte, keyID, iteration uint32) []byte {
	h := make([]byte, 0, len(context)+12+len(conversation)+64+ed25519.SignatureSize)
	h = append(h, context...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(conversation)))
	h = append(h, conversation...)
	h = binary.BigEndian.AppendUint32(h, keyID)
	return binary.BigEndian.AppendUint32(h, iteration)
}

// crypt seals plaintext, or opens ciphertext when plaintext is nil, under
// the message key mk.
func crypt(mk, h []byte, signing ed25519.PublicKey, plaintext, ciphertext []byte) ([]byte, error) {
	okm, err := hkdf.Key(sha256.New, mk, make([]byte, sha256.Size), infoMessageKeys, chacha20poly1305.KeySize+chacha20poly1305.NonceSize)
	if err != nil {
		return nil, fmt.Errorf("senderkey: message keys: %w", err)
	}
	defer clear(okm)
	aead, err := chacha20poly1305.New(okm[:chacha20poly1305.KeySize])
	if err != nil {
		return nil, fmt.Errorf("senderkey: cipher: %w", err)
	}
	nonce := okm[chacha20poly1305.KeySize:]
	ad := append(slices.Clip(h), signing...)
	if ciphertext == nil {
		return aead.Seal(nil, nonce, plaintext, ad), nil
	}
	pt, err := aead.Open(nil, nonce, ciphertext, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
