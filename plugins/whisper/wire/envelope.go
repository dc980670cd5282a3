package wire

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"golang.org/x/crypto/sha3"
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
// and trailing bytes. It never panics.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	var e rlpEnvelope
	if err := rlp.DecodeBytes(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	env := Envelope(e)
	return &env, nil
}

// Size is geth's size(): EnvelopeHeaderLength + len(Data), the figure
// compared against the size limit.
func (e *Envelope) Size() int {
	return EnvelopeHeaderLength + len(e.Data)
}

// Hash returns Keccak256 of the envelope's RLP encoding (the dedup key).
func (e *Envelope) Hash() [32]byte {
	var h [32]byte
	k := sha3.NewLegacyKeccak256()
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
	w := rlp.NewEncoderBuffer(nil)
	l := w.List()
	w.WriteUint64(uint64(e.Expiry))
	w.WriteUint64(uint64(e.TTL))
	w.WriteBytes(e.Topic[:])
	w.WriteBytes(e.Data)
	w.ListEnd(l)
	return w.ToBytes()
}

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
	short := e.rlpWithoutNonce()
	var nb [8]byte
	binary.BigEndian.PutUint64(nb[:], e.Nonce)
	k := sha3.NewLegacyKeccak256()
	k.Write(short)
	k.Write(nb[:])
	var h [32]byte
	k.Sum(h[:0])
	return powFormula(leadingZeros(h[:]), len(short), e.TTL, diff)
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
//   - TTL 0 and not future-dated: [ErrZeroTTL] (geth would accept it with
//     infinite PoW; drop without penalty);
//   - PoW (with geth's future-dating penalty) below minPoW: [ErrLowPoW].
//
// Bloom and duplicate checks are the node's business.
func (e *Envelope) Validate(now time.Time, maxSize uint32, minPoW float64) error {
	n := uint64(unixSeconds(now))
	sent := uint64(e.Sent())
	if sent > n+DefaultSyncAllowance {
		return ErrFuture
	}
	if uint64(e.Expiry) < n {
		if uint64(e.Expiry)+2*DefaultSyncAllowance < n {
			return ErrVeryOld
		}
		return ErrExpired
	}
	if uint64(e.Size()) > uint64(maxSize) {
		return ErrTooLarge
	}
	diff := e.futureDiff(uint32(n))
	if e.TTL == 0 && diff == 0 {
		return ErrZeroTTL
	}
	if pow := e.powWithDiff(diff); pow < minPoW || math.IsNaN(pow) {
		return ErrLowPoW
	}
	return nil
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

// Mine searches for a nonce such that PoW() >= target and stores it in
// e.Nonce. It uses the verification formula (not geth's approximate
// size-based bit target), so the result always passes a receiver's check at
// target. Nonces are searched on all CPUs. It returns ctx.Err() if ctx ends
// first, leaving Nonce unchanged. A target <= 0 (or an envelope whose
// current nonce already suffices) returns immediately.
func (e *Envelope) Mine(ctx context.Context, target float64) error {
	if math.IsNaN(target) || math.IsInf(target, 0) {
		return ErrBadPoWTarget
	}
	if target <= 0 || e.PoW() >= target {
		return nil
	}
	short := e.rlpWithoutNonce()
	need := requiredBits(target, len(short), e.TTL)
	if need < 0 {
		return ErrBadPoWTarget
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
