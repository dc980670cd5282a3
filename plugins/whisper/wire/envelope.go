package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/bits"
	"sync"
	"time"

	ethkeccak "github.com/ethereum/go-ethereum/crypto/keccak"
	"github.com/ethereum/go-ethereum/rlp"
)

// Envelope is the Whisper v6 wire packet. Its RLP encoding is the list
// [Expiry, TTL, Topic, Data, Nonce] with canonical integers, as in geth.
// Fields are encoded in declaration order; do not reorder them.
type Envelope struct {
	Expiry uint32    // unix seconds when the envelope dies
	TTL    uint32    // seconds to live; sent time is Expiry - TTL
	Topic  TopicType // routing label
	Data   []byte    // encrypted message
	Nonce  uint64    // proof-of-work nonce
}

// rlpEnvelope has Envelope's fields but no RLP methods, so the rlp package
// encodes it field by field.
type rlpEnvelope Envelope

// EncodeRLP implements rlp.Encoder.
func (e *Envelope) EncodeRLP(w io.Writer) error {
	return rlp.Encode(w, (*rlpEnvelope)(e))
}

// Encode returns the RLP encoding of the envelope.
func (e *Envelope) Encode() []byte {
	b, err := rlp.EncodeToBytes((*rlpEnvelope)(e))
	if err != nil {
		// Encoding fixed-size integers and byte strings cannot fail.
		panic("whisper: envelope encoding failed: " + err.Error())
	}
	return b
}

// DecodeEnvelope decodes one canonical RLP envelope occupying all of b.
// It rejects (with an error wrapping [ErrMalformed]) everything geth's
// decoder rejects: non-canonical integers or sizes, integer overflow, a
// topic that is not exactly 4 bytes, too few or too many list elements,
// and trailing bytes. It never panics. Data is a copy: b may be reused.
//
// It walks the list with the rlp package's Split functions (which apply
// the canonical-size rules) instead of geth's reflection decoder, which
// was a tenth of a relay's CPU; FuzzDecodeEnvelope holds the two to the
// same answer on every input.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	var e Envelope
	if err := decodeEnvelope(b, &e, false); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &e, nil
}

// DecodeEnvelopeShared is DecodeEnvelope without the copy: the envelope's
// Data is a slice of b, capped at its own length. It is for a caller that
// keeps b unchanged for as long as it keeps the envelope, such as a relay
// that pools the encoding it received beside the decoded envelope.
func DecodeEnvelopeShared(b []byte) (*Envelope, error) {
	var e Envelope
	if err := decodeEnvelope(b, &e, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &e, nil
}

// decodeEnvelope is DecodeEnvelope's walk over [Expiry, TTL, Topic, Data,
// Nonce], with rlp's errors. With share, Data aliases b.
func decodeEnvelope(b []byte, e *Envelope, share bool) error {
	fields, rest, err := rlp.SplitList(b)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return rlp.ErrMoreThanOneValue
	}
	if e.Expiry, fields, err = splitUint32(fields); err != nil {
		return fmt.Errorf("expiry: %w", err)
	}
	if e.TTL, fields, err = splitUint32(fields); err != nil {
		return fmt.Errorf("ttl: %w", err)
	}
	topic, fields, err := splitField(fields)
	if err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if len(topic) != TopicLength {
		return fmt.Errorf("topic: %d bytes, want %d", len(topic), TopicLength)
	}
	copy(e.Topic[:], topic)
	data, fields, err := splitField(fields)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if share {
		e.Data = data[:len(data):len(data)]
	} else {
		e.Data = append(make([]byte, 0, len(data)), data...)
	}
	if len(fields) == 0 {
		return errors.New("nonce: too few elements")
	}
	if e.Nonce, fields, err = rlp.SplitUint64(fields); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	if len(fields) > 0 {
		return errors.New("too many elements")
	}
	return nil
}

// splitField is rlp.SplitString that names a missing element.
func splitField(b []byte) (content, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, errors.New("too few elements")
	}
	return rlp.SplitString(b)
}

// splitUint32 splits a canonical integer of at most 32 bits off b.
func splitUint32(b []byte) (uint32, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errors.New("too few elements")
	}
	v, rest, err := rlp.SplitUint64(b)
	if err != nil {
		return 0, nil, err
	}
	if v > math.MaxUint32 {
		return 0, nil, errors.New("integer overflows uint32")
	}
	return uint32(v), rest, nil
}

// Size is geth's size(): EnvelopeHeaderLength + len(Data), the figure
// compared against the size limit.
func (e *Envelope) Size() int {
	return EnvelopeHeaderLength + len(e.Data)
}

// Hash returns Keccak256 of the envelope's RLP encoding (the dedup key).
func (e *Envelope) Hash() [32]byte {
	var h [32]byte
	k := ethkeccak.NewLegacyKeccak256()
	_ = e.EncodeRLP(k)
	k.Sum(h[:0])
	return h
}

// Bloom returns [TopicToBloom] of the envelope's topic.
func (e *Envelope) Bloom() []byte {
	return TopicToBloom(e.Topic)
}

// Sent returns the time the envelope claims to have been sent, Expiry - TTL
// in uint32 arithmetic (as geth).
func (e *Envelope) Sent() uint32 {
	return e.Expiry - e.TTL
}

// IsExpired reports whether Expiry is before now (an envelope expiring in
// the current second is still live, as in geth).
func (e *Envelope) IsExpired(now time.Time) bool {
	return int64(e.Expiry) < now.Unix()
}

// rlpWithoutNonce returns RLP([Expiry, TTL, Topic, Data]).
func (e *Envelope) rlpWithoutNonce() []byte {
	var buf [maxShortPrefix]byte
	p := e.shortPrefix(buf[:0])
	return append(append(make([]byte, 0, len(p)+len(e.Data)), p...), e.Data...)
}

// maxShortPrefix bounds len(shortPrefix): a list header (9), two uint32s
// (5 each), the topic (5) and a string header (9).
const maxShortPrefix = 33

// shortPrefix appends to dst the RLP encoding of [Expiry, TTL, Topic, Data]
// without Data's content: the list header, the first three items and
// Data's string header (none for a single byte below 0x80). shortPrefix ‖
// Data is rlpWithoutNonce(), byte for byte (canonical RLP, as the rlp
// package encodes it), so the PoW hash needs no copy of Data.
func (e *Envelope) shortPrefix(dst []byte) []byte {
	dataHead := stringHeaderLen(e.Data)
	content := uintLen(uint64(e.Expiry)) + uintLen(uint64(e.TTL)) + 1 + len(e.Topic) + dataHead + len(e.Data)
	dst = appendHeader(dst, 0xc0, content)
	dst = appendUint(dst, uint64(e.Expiry))
	dst = appendUint(dst, uint64(e.TTL))
	dst = append(dst, 0x80+byte(len(e.Topic)))
	dst = append(dst, e.Topic[:]...)
	if dataHead > 0 {
		dst = appendHeader(dst, 0x80, len(e.Data))
	}
	return dst
}

// uintLen is the length of the canonical RLP encoding of v.
func uintLen(v uint64) int {
	if v < 0x80 {
		return 1 // 0x80 for 0, else the byte itself
	}
	return 1 + (bits.Len64(v)+7)/8
}

// appendUint appends the canonical RLP encoding of v.
func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, 0x80)
	case v < 0x80:
		return append(dst, byte(v))
	}
	n := (bits.Len64(v) + 7) / 8
	dst = append(dst, 0x80+byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// stringHeaderLen is the length of the RLP header of byte string b.
func stringHeaderLen(b []byte) int {
	switch {
	case len(b) == 1 && b[0] < 0x80:
		return 0
	case len(b) < 56:
		return 1
	}
	return 1 + (bits.Len64(uint64(len(b)))+7)/8
}

// appendHeader appends an RLP string (base 0x80) or list (base 0xc0)
// header for content of size bytes.
func appendHeader(dst []byte, base byte, size int) []byte {
	if size < 56 {
		return append(dst, base+byte(size))
	}
	n := (bits.Len64(uint64(size)) + 7) / 8
	dst = append(dst, base+55+byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(size>>(8*i)))
	}
	return dst
}

// powHasher is the reusable state of one PoW computation.
type powHasher struct {
	k      hash.Hash
	prefix [maxShortPrefix]byte
	nonce  [8]byte
	sum    [32]byte
}

var powHashers = sync.Pool{New: func() any { return &powHasher{k: ethkeccak.NewLegacyKeccak256()} }}

// leadingZeros counts the leading zero bits of a 32-byte big-endian value.
func leadingZeros(h []byte) int {
	for i := 0; i < 4; i++ {
		if w := binary.BigEndian.Uint64(h[8*i:]); w != 0 {
			return 64*i + bits.LeadingZeros64(w)
		}
	}
	return 256
}

// powFormula is geth's calculatePoW arithmetic, including its uint32
// addition of TTL and the future-dating penalty.
func powFormula(lz int, shortLen int, ttl, diff uint32) float64 {
	x := math.Pow(2, float64(lz))
	x /= float64(shortLen)
	x /= float64(ttl + diff)
	return x
}

func (e *Envelope) powWithDiff(diff uint32) float64 {
	// Keccak256(rlpWithoutNonce ‖ BigEndian64(Nonce)), without building
	// rlpWithoutNonce.
	ph := powHashers.Get().(*powHasher)
	defer powHashers.Put(ph)
	p := e.shortPrefix(ph.prefix[:0])
	binary.BigEndian.PutUint64(ph.nonce[:], e.Nonce)
	ph.k.Reset()
	ph.k.Write(p)
	ph.k.Write(e.Data)
	ph.k.Write(ph.nonce[:])
	h := ph.k.Sum(ph.sum[:0])
	return powFormula(leadingZeros(h), len(p)+len(e.Data), e.TTL, diff)
}

// PoW returns the envelope's proof of work exactly as geth's Envelope.PoW:
// 2^lz / (len(short) * TTL) where short = RLP([Expiry, TTL, Topic, Data]) and
// lz = leading zero bits of Keccak256(short || BigEndian64(Nonce)).
// TTL 0 yields +Inf, as in geth.
func (e *Envelope) PoW() float64 {
	return e.powWithDiff(0)
}

// futureDiff returns geth's PoW penalty for an envelope sent after now:
// sent - now + 1, or 0 when not future-dated.
func (e *Envelope) futureDiff(now uint32) uint32 {
	if sent := e.Sent(); sent > now {
		return sent - now + 1
	}
	return 0
}

// PoWAt returns the PoW a geth node computes on receipt at time now: equal
// to PoW unless the envelope is future-dated, in which case the divisor
// uses TTL + (sent - now + 1).
func (e *Envelope) PoWAt(now time.Time) float64 {
	return e.powWithDiff(e.futureDiff(unixSeconds(now)))
}

func unixSeconds(t time.Time) uint32 {
	return uint32(t.Unix())
}

// Validate applies the checks a geth node applies on receipt (whisper.add),
// in geth's order:
//
//   - sent time more than MaxFutureDrift after now: [ErrFuture];
//   - expired more than MaxPastDrift ago: [ErrVeryOld] (geth disconnects);
//   - expired less long ago: [ErrExpired] (geth drops silently);
//   - EnvelopeHeaderLength + len(Data) > maxSize: [ErrTooLarge];
//   - PoW (with geth's future-dating penalty) below minPoW: [ErrLowPoW].
//
// TTL 0 is accepted as geth accepts it: sent = Expiry, so an envelope that
// expires in the current second has PoW +Inf (division by TTL 0) and
// passes every requirement, one sent up to MaxFutureDrift in the future
// has its PoW divided by sent - now + 1 alone, and later ones are expired.
//
// Bloom and duplicate checks are the node's business.
func (e *Envelope) Validate(now time.Time, maxSize uint32, minPoW float64) error {
	_, err := e.ValidatePoW(now, maxSize, minPoW)
	return err
}

// ValidatePoW is [Envelope.Validate] that also returns the PoW it checked,
// PoWAt(now), so that a receiver does not compute it twice. The PoW is 0
// when a check before the PoW check failed.
func (e *Envelope) ValidatePoW(now time.Time, maxSize uint32, minPoW float64) (float64, error) {
	n := uint64(unixSeconds(now))
	sent := uint64(e.Sent())
	if sent > n+DefaultSyncAllowance {
		return 0, ErrFuture
	}
	if uint64(e.Expiry) < n {
		if uint64(e.Expiry)+2*DefaultSyncAllowance < n {
			return 0, ErrVeryOld
		}
		return 0, ErrExpired
	}
	if uint64(e.Size()) > uint64(maxSize) {
		return 0, ErrTooLarge
	}
	pow := e.powWithDiff(e.futureDiff(uint32(n)))
	if pow < minPoW || math.IsNaN(pow) {
		return pow, ErrLowPoW
	}
	return pow, nil
}

// requiredBits returns the smallest number of leading zero bits for which
// geth's PoW formula reaches target, or -1 if none does.
func requiredBits(target float64, shortLen int, ttl uint32) int {
	for lz := 0; lz <= 256; lz++ {
		if powFormula(lz, shortLen, ttl, 0) >= target {
			return lz
		}
	}
	return -1
}

// gethBits is go-ethereum v1.9.20's powToFirstBit, the bit count its Seal
// mines to: ceil(log2(target · size · TTL)) with size = 20 + len(Data),
// at least 1 (TTL 0 gives log2(0) = -Inf, hence 1).
func gethBits(target float64, size int, ttl uint32) int {
	b := math.Ceil(math.Log2(target * float64(size) * float64(ttl)))
	if !(b >= 1) {
		return 1
	}
	if b > 257 {
		return 257 // unreachable; keeps the conversion defined
	}
	return int(b)
}

// mineBits is the number of leading zero bits [Envelope.Mine] looks for
// at target: geth's count (gethBits), or the verification formula's
// (requiredBits) where that one is larger. geth's size, 20 + len(Data),
// is usually larger than the RLP that PoW divides by, so geth's count
// leaves a margin, and our envelopes keep it: a receiver divides by
// TTL + (sent - now + 1) for an envelope it sees as sent in the future
// (clocks a second or two apart), and a nonce mined to the exact formula
// would fall below target there where geth's does not. The RLP can also
// be a byte or three longer than 20 + len(Data) (TTLs of 2^24 s and more,
// Data of 2^16 bytes and more); there geth's count can fall short of the
// formula (geth's own envelope would then fail target) and the formula's
// is taken. -1: no count reaches target.
func (e *Envelope) mineBits(target float64) int {
	var buf [maxShortPrefix]byte
	shortLen := len(e.shortPrefix(buf[:0])) + len(e.Data)
	need := requiredBits(target, shortLen, e.TTL)
	if need < 0 {
		return -1
	}
	if g := gethBits(target, e.Size(), e.TTL); g > need {
		need = g
	}
	if need > 256 {
		return -1
	}
	return need
}

// Mine stores in e.Nonce the first nonce, counting from 0 as geth's Seal
// does, whose hash has mineBits(target) leading zero bits, so
// that PoW() >= target; for the same fields it finds geth's nonce. Nonces
// are searched on all CPUs. It returns ctx.Err() if ctx ends first,
// leaving Nonce unchanged. A target <= 0, or a current nonce that already
// has the bits, returns immediately.
func (e *Envelope) Mine(ctx context.Context, target float64) error {
	if math.IsNaN(target) || math.IsInf(target, 0) {
		return ErrBadPoWTarget
	}
	if target <= 0 {
		return nil
	}
	need := e.mineBits(target)
	if need < 0 {
		return ErrBadPoWTarget
	}
	short := e.rlpWithoutNonce()
	if newPrefixHasher(short).zeros(e.Nonce) >= need {
		return nil
	}
	nonce, err := searchNonce(ctx, short, need, workers())
	if err != nil {
		return err
	}
	e.Nonce = nonce
	return nil
}

// Seal finds a nonce the way geth's Envelope.Seal is parameterised:
// pow == 0 does nothing; pow < 0 spends workTime looking for the best nonce
// and adds workTime (whole seconds) to Expiry; pow > 0 mines until PoW() >=
// pow and returns [ErrPoWTimeout] if that takes longer than workTime.
func (e *Envelope) Seal(pow float64, workTime time.Duration) error {
	switch {
	case pow == 0:
		return nil
	case pow < 0:
		e.Expiry += uint32(workTime / time.Second)
		e.Nonce = bestNonce(e.rlpWithoutNonce(), time.Now().Add(workTime))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), workTime)
	defer cancel()
	err := e.Mine(ctx, pow)
	if err == context.DeadlineExceeded {
		return ErrPoWTimeout
	}
	return err
}
