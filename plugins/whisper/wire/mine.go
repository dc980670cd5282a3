package wire

import (
	"context"
	"encoding"
	"encoding/binary"
	"hash"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	ethkeccak "github.com/ethereum/go-ethereum/crypto/keccak"
)

// prefixHasher hashes short||nonce for many nonces, absorbing short once and
// restoring the saved state for each nonce.
type prefixHasher struct {
	saved []byte
	h     hash.Hash
	nb    [8]byte
	out   [32]byte
}

func newPrefixHasher(short []byte) *prefixHasher {
	h := ethkeccak.NewLegacyKeccak256()
	h.Write(short)
	saved, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("whisper: keccak state not marshalable: " + err.Error())
	}
	return &prefixHasher{saved: saved, h: h}
}

func (p *prefixHasher) zeros(nonce uint64) int {
	if err := p.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(p.saved); err != nil {
		panic("whisper: keccak state restore failed: " + err.Error())
	}
	binary.BigEndian.PutUint64(p.nb[:], nonce)
	p.h.Write(p.nb[:])
	p.h.Sum(p.out[:0])
	return leadingZeros(p.out[:])
}

func workers() int {
	return runtime.GOMAXPROCS(0)
}

// searchNonce returns the lowest nonce whose hash has at least need
// leading zeros: the one go-ethereum's Seal, which counts up from 0, stops
// at. The n workers take every n-th nonce; a worker stops at its first hit
// or once it has passed the lowest hit so far (its later nonces cannot be
// lower), so the lowest hit of all is the first.
func searchNonce(ctx context.Context, short []byte, need, n int) (uint64, error) {
	if n < 1 {
		n = 1
	}
	var (
		lowest atomic.Uint64 // lowest hit so far; MaxUint64 = none yet
		wg     sync.WaitGroup
	)
	lowest.Store(math.MaxUint64)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			p := newPrefixHasher(short)
			for i, nonce := 0, start; ; i, nonce = i+1, nonce+uint64(n) {
				if i%1024 == 0 && (nonce > lowest.Load() || ctx.Err() != nil) {
					return
				}
				if p.zeros(nonce) >= need {
					for old := lowest.Load(); nonce < old && !lowest.CompareAndSwap(old, nonce); old = lowest.Load() {
					}
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	if r := lowest.Load(); r != math.MaxUint64 {
		return r, nil
	}
	return 0, ctx.Err()
}

// bestNonce returns the nonce with the most leading zeros found before
// deadline (geth's time-bounded sealing).
func bestNonce(short []byte, deadline time.Time) uint64 {
	p := newPrefixHasher(short)
	var best uint64
	bestZeros := -1
	for nonce := uint64(0); ; nonce++ {
		if nonce%1024 == 0 && !time.Now().Before(deadline) && bestZeros >= 0 {
			return best
		}
		if z := p.zeros(nonce); z > bestZeros {
			best, bestZeros = nonce, z
			if z == 256 {
				return best
			}
		}
	}
}
