package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/crypto/ecies"
)

// MessageParams specifies how a message is built and wrapped into an
// envelope (geth's whisperv6.MessageParams).
type MessageParams struct {
	TTL      uint32            // seconds; 0 means DefaultTTL
	Src      *ecdsa.PrivateKey // optional signer
	Dst      *ecdsa.PublicKey  // recipient for asymmetric encryption
	KeySym   []byte            // 32-byte key for symmetric encryption (used if Dst is nil)
	Topic    TopicType         // envelope topic
	WorkTime uint32            // seconds allowed for sealing
	PoW      float64           // PoW target; 0 = none, < 0 = best effort for WorkTime
	Payload  []byte            // application data
	Padding  []byte            // explicit padding; nil/empty = geth's random padding
	Flags    byte              // extra bits of the flags byte, within FreeFlags
}

// SentMessage is an unencrypted, unsigned plaintext in the payload format
// flags | size field | payload | padding (geth's sentMessage).
type SentMessage struct {
	Raw []byte
}

// ReceivedMessage is a decrypted and parsed message (geth's
// ReceivedMessage). Payload, Padding and Signature alias Raw.
type ReceivedMessage struct {
	Raw []byte // full plaintext

	// Flags is the plaintext's flags byte; Flags&FreeFlags are the bits
	// geth leaves unused (see MessageParams.Flags).
	Flags     byte
	Payload   []byte
	Padding   []byte
	Signature []byte           // 65 bytes R|S|V, nil if unsigned
	Src       *ecdsa.PublicKey // recovered signer, nil if unsigned

	Topic        TopicType
	TTL          uint32
	Sent         uint32 // Expiry - TTL
	PoW          float64
	EnvelopeHash [32]byte
}

// maxPayload is the largest payload whose size field fits the 2 size bits
// (3 bytes); a 4-byte field would collide with the signed flag.
const maxPayload = 1<<24 - 1

func sizeFieldLen(n int) int {
	s := 1
	for i := n; i >= 256; i /= 256 {
		s++
	}
	return s
}

// NewSentMessage builds the plaintext for params: flags, minimal
// little-endian size field (at least 1 byte), payload and padding. If
// params.Padding is empty, random padding is added so the plaintext
// (including a signature if params.Src is set) is a multiple of 256 bytes,
// adding between 1 and 256 bytes, as geth does.
func NewSentMessage(params *MessageParams) (*SentMessage, error) {
	if params == nil {
		return nil, ErrNoKey
	}
	if len(params.Payload) > maxPayload {
		return nil, ErrPayloadTooLarge
	}
	if params.Flags&^FreeFlags != 0 {
		return nil, fmt.Errorf("%w: flags %#x use bits geth gives a meaning", ErrBadPayload, params.Flags)
	}
	l := sizeFieldLen(len(params.Payload))
	raw := make([]byte, 1+l, flagsLength+l+len(params.Payload)+len(params.Padding)+signatureLength+padSizeLimit)
	raw[0] = byte(l) | params.Flags
	var field [4]byte
	binary.LittleEndian.PutUint32(field[:], uint32(len(params.Payload)))
	copy(raw[1:], field[:l])
	raw = append(raw, params.Payload...)
	if len(params.Padding) != 0 {
		raw = append(raw, params.Padding...)
	} else {
		size := len(raw)
		if params.Src != nil {
			size += signatureLength
		}
		pad := make([]byte, padSizeLimit-size%padSizeLimit)
		if _, err := rand.Read(pad); err != nil {
			return nil, err
		}
		raw = append(raw, pad...)
	}
	return &SentMessage{Raw: raw}, nil
}

// Wrap signs (if params.Src is set), encrypts (asymmetrically to
// params.Dst if set, else symmetrically with params.KeySym) and seals the
// message into an envelope with Expiry = now + TTL, as geth's Wrap. It does
// not modify msg or params.
func (msg *SentMessage) Wrap(params *MessageParams, now time.Time) (*Envelope, error) {
	if msg == nil || params == nil || len(msg.Raw) == 0 {
		return nil, ErrNoKey
	}
	raw := append([]byte(nil), msg.Raw...)
	ttl := params.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if params.Src != nil {
		var err error
		if raw, err = sign(raw, params.Src); err != nil {
			return nil, err
		}
	}
	var (
		data []byte
		err  error
	)
	switch {
	case params.Dst != nil:
		data, err = encryptAsymmetric(raw, params.Dst)
	case params.KeySym != nil:
		data, err = encryptSymmetric(raw, params.KeySym)
	default:
		err = ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	env := &Envelope{
		Expiry: unixSeconds(now) + ttl,
		TTL:    ttl,
		Topic:  params.Topic,
		Data:   data,
	}
	if err := env.Seal(params.PoW, time.Duration(params.WorkTime)*time.Second); err != nil {
		return nil, err
	}
	return env, nil
}

// normPrivate validates a secp256k1 private key (0 < D < N) and returns a
// copy on go-ethereum's S256 curve with its public key recomputed, or nil.
func normPrivate(k *ecdsa.PrivateKey) (out *ecdsa.PrivateKey) {
	if k == nil || k.Curve == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	out, err := crypto.ToECDSA(crypto.FromECDSA(k))
	if err != nil {
		return nil
	}
	return out
}

// normPublic validates a public key as a point on secp256k1 (which also
// implies geth's non-zero X and Y check) and returns a copy on
// go-ethereum's S256 curve, or nil.
func normPublic(k *ecdsa.PublicKey) (out *ecdsa.PublicKey) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	out, err := crypto.UnmarshalPubkey(crypto.FromECDSAPub(k))
	if err != nil {
		return nil
	}
	return out
}

// sign sets the signed flag, then appends a 65-byte signature (V in {0,1})
// over Keccak256 of the flagged plaintext.
func sign(raw []byte, key *ecdsa.PrivateKey) ([]byte, error) {
	key = normPrivate(key)
	if key == nil {
		return nil, fmt.Errorf("%w: signing key", ErrInvalidKey)
	}
	if raw[0]&signatureFlag != 0 {
		return nil, fmt.Errorf("%w: already signed", ErrBadPayload)
	}
	raw[0] |= signatureFlag
	sig, err := crypto.Sign(crypto.Keccak256(raw), key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return append(raw, sig...), nil
}

func validSymKey(key []byte) bool {
	if len(key) != aesKeyLength {
		return false
	}
	for _, b := range key {
		if b != 0 {
			return true
		}
	}
	return false
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if !validSymKey(key) {
		return nil, fmt.Errorf("%w: symmetric key must be %d non-zero bytes", ErrInvalidKey, aesKeyLength)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return cipher.NewGCM(block)
}

// encryptSymmetric returns GCM.Seal(plaintext) || nonce (12 random bytes).
func encryptSymmetric(plain, key []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aesNonceLength)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := gcm.Seal(nil, nonce, plain, nil)
	return append(out, nonce...), nil
}

func encryptAsymmetric(plain []byte, dst *ecdsa.PublicKey) ([]byte, error) {
	dst = normPublic(dst)
	if dst == nil {
		return nil, fmt.Errorf("%w: recipient public key", ErrInvalidKey)
	}
	out, err := ecies.Encrypt(rand.Reader, ecies.ImportECDSAPublic(dst), plain, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return out, nil
}

// OpenSymmetric decrypts env.Data with a 32-byte AES-256-GCM key (nonce in
// the last 12 bytes), parses the plaintext and fills in the envelope
// fields. Errors wrap [ErrInvalidKey], [ErrDecrypt], [ErrBadPayload] or
// [ErrBadSignature]. It never panics.
func OpenSymmetric(env *Envelope, key []byte) (*ReceivedMessage, error) {
	if env == nil {
		return nil, ErrDecrypt
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	d := env.Data
	if len(d) < aesNonceLength+gcm.Overhead() {
		return nil, fmt.Errorf("%w: data too short", ErrDecrypt)
	}
	nonce := d[len(d)-aesNonceLength:]
	plain, err := gcm.Open(nil, nonce, d[:len(d)-aesNonceLength], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return finish(env, plain)
}

// OpenAsymmetric decrypts env.Data with ECIES (secp256k1,
// ECIES_AES128_SHA256, no shared info), parses the plaintext and fills in
// the envelope fields. Errors wrap [ErrInvalidKey], [ErrDecrypt],
// [ErrBadPayload] or [ErrBadSignature]. It never panics.
func OpenAsymmetric(env *Envelope, priv *ecdsa.PrivateKey) (*ReceivedMessage, error) {
	if env == nil {
		return nil, ErrDecrypt
	}
	priv = normPrivate(priv)
	if priv == nil {
		return nil, fmt.Errorf("%w: private key", ErrInvalidKey)
	}
	plain, err := eciesDecrypt(priv, env.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return finish(env, plain)
}

func eciesDecrypt(priv *ecdsa.PrivateKey, data []byte) (plain []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			plain, err = nil, fmt.Errorf("ecies: %v", r)
		}
	}()
	return ecies.ImportECDSA(priv).Decrypt(data, nil, nil)
}

func finish(env *Envelope, plain []byte) (*ReceivedMessage, error) {
	msg, err := ParseMessage(plain)
	if err != nil {
		return nil, err
	}
	msg.Topic = env.Topic
	msg.TTL = env.TTL
	msg.Sent = env.Sent()
	msg.PoW = env.PoW()
	msg.EnvelopeHash = env.Hash()
	return msg, nil
}

// ParseMessage parses a decrypted plaintext: flags | size field (flags&3
// bytes, little-endian) | payload | padding | signature (65 bytes, if
// flags&4). For signed messages it recovers the signer from the signature
// over Keccak256 of everything before it; V must be below 4, as in geth
// (geth itself only produces 0 or 1).
// It is geth's ValidateAndParse made strict: where geth would panic on an
// inconsistent size field this returns [ErrBadPayload]. The result aliases
// raw. It never panics.
func ParseMessage(raw []byte) (*ReceivedMessage, error) {
	end := len(raw)
	if end < 1 {
		return nil, fmt.Errorf("%w: empty", ErrBadPayload)
	}
	flags := raw[0]
	msg := &ReceivedMessage{Raw: raw, Flags: flags}
	if flags&signatureFlag != 0 {
		end -= signatureLength
		if end <= 1 {
			return nil, fmt.Errorf("%w: too short for a signature", ErrBadPayload)
		}
		msg.Signature = raw[end:]
		pub, err := recoverSigner(raw[:end], msg.Signature)
		if err != nil {
			return nil, err
		}
		msg.Src = pub
	}
	l := int(flags & SizeMask)
	beg := 1
	if l != 0 {
		if beg+l > end {
			return nil, fmt.Errorf("%w: size field truncated", ErrBadPayload)
		}
		var n int
		for i := l - 1; i >= 0; i-- {
			n = n<<8 | int(raw[beg+i])
		}
		beg += l
		if n > end-beg {
			return nil, fmt.Errorf("%w: payload size %d exceeds the %d bytes present", ErrBadPayload, n, end-beg)
		}
		msg.Payload = raw[beg : beg+n]
		beg += n
	}
	msg.Padding = raw[beg:end]
	return msg, nil
}

func recoverSigner(signed, sig []byte) (pub *ecdsa.PublicKey, err error) {
	if len(sig) != signatureLength || sig[64] >= 4 {
		return nil, fmt.Errorf("%w: bad length or V", ErrBadSignature)
	}
	defer func() {
		if r := recover(); r != nil {
			pub, err = nil, fmt.Errorf("%w: %v", ErrBadSignature, r)
		}
	}()
	pub, err = crypto.SigToPub(crypto.Keccak256(signed), sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return pub, nil
}

// SymKeyFromPassword derives a 32-byte symmetric key from a password as
// geth's AddSymKeyFromPassword: PBKDF2-HMAC-SHA256, empty salt, 65356
// iterations. Status public chats use the chat name as password.
func SymKeyFromPassword(password string) ([]byte, error) {
	return pbkdf2.Key(sha256.New, password, nil, passwordKDFIterations, aesKeyLength)
}
