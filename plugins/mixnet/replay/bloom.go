package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"golang.org/x/crypto/blake2b"
)

// MaxFilterBits bounds one epoch's filter (2^35 bits = 4 GiB); a
// configuration or a file asking for more is refused.
const MaxFilterBits = 1 << 35

// Sizing returns the Bloom filter that holds n tags at false-positive
// rate p: m = ⌈−n·ln p / (ln 2)²⌉ bits (rounded up to a multiple of 64)
// and k = round(m/n · ln 2) hash functions, the optimum for that m and n,
// which makes the false-positive rate after n distinct inserts
// (1 − e^(−k·n/m))^k ≈ p. For example n = 2,000,000 and p = 10⁻⁶ give
// m ≈ 57.5 Mbit (7.2 MB) and k = 20.
func Sizing(n uint64, p float64) (m uint64, k uint32, err error) {
	if n == 0 {
		return 0, 0, fmt.Errorf("%w: expected tags must be positive", ErrConfig)
	}
	if !(p > 0 && p < 1) {
		return 0, 0, fmt.Errorf("%w: false-positive rate %v not in (0, 1)", ErrConfig, p)
	}
	mf := math.Ceil(-float64(n) * math.Log(p) / (math.Ln2 * math.Ln2))
	if mf > MaxFilterBits {
		return 0, 0, fmt.Errorf("%w: %d tags at rate %v need %.0f bits, over %d", ErrConfig, n, p, mf, uint64(MaxFilterBits))
	}
	m = (uint64(mf) + 63) &^ 63
	if m == 0 {
		m = 64
	}
	kf := math.Round(float64(m) / float64(n) * math.Ln2)
	k = uint32(max(1, min(kf, maxHashes)))
	return m, k, nil
}

// maxHashes bounds k (p = 10⁻¹⁸ needs 60).
const maxHashes = 64

// FalsePositiveRate returns the probability that a tag never inserted is
// reported as seen, for a filter of m bits and k hashes holding n distinct
// tags: (1 − e^(−k·n/m))^k. It keeps rising past the configured capacity.
func FalsePositiveRate(m uint64, k uint32, n uint64) float64 {
	if m == 0 {
		return 1
	}
	return math.Pow(1-math.Exp(-float64(k)*float64(n)/float64(m)), float64(k))
}

// filter is a Bloom filter over 32-byte tags. Its bit positions come from
// a keyed hash (BLAKE2b-256 of key ‖ tag, split into two 64-bit values
// for Kirsch–Mitzenmacher double hashing), so that whoever chooses packets
// cannot choose which bits their tags set. Not safe for concurrent use.
type filter struct {
	words    []uint64
	m        uint64
	k        uint32
	key      [32]byte
	count    uint64 // distinct tags inserted (inserts that set a new bit)
	ones     uint64 // bits set
	capacity uint64 // the n the filter was sized for
}

func newFilter(capacity, m uint64, k uint32, key [32]byte) *filter {
	return &filter{words: make([]uint64, m/64), m: m, k: k, key: key, capacity: capacity}
}

// testAndSet sets the tag's bits and reports whether they were all set
// already (the tag was seen, or is a false positive). It does not count.
func (f *filter) testAndSet(tag *[TagSize]byte) bool { return f.probe(tag, true) }

// contains reports whether all the tag's bits are set, changing nothing.
func (f *filter) contains(tag *[TagSize]byte) bool { return f.probe(tag, false) }

func (f *filter) probe(tag *[TagSize]byte, set bool) bool {
	var in [64]byte
	copy(in[:32], f.key[:])
	copy(in[32:], tag[:])
	d := blake2b.Sum256(in[:])
	h1 := binary.LittleEndian.Uint64(d[0:8])
	h2 := binary.LittleEndian.Uint64(d[8:16]) | 1
	seen := true
	for i := uint32(0); i < f.k; i++ {
		// Lemire's multiply-shift maps the 64-bit hash onto [0, m).
		idx, _ := bits.Mul64(h1, f.m)
		w, b := idx/64, idx%64
		if f.words[w]&(1<<b) == 0 {
			seen = false
			if !set {
				return false
			}
			f.words[w] |= 1 << b
			f.ones++
		}
		h1 += h2
	}
	return seen
}

// fillRate returns the current false-positive rate from the fraction of
// bits set, (ones/m)^k; unlike FalsePositiveRate of the count it needs no
// assumption about how many inserts were themselves false positives.
func (f *filter) fillRate() float64 {
	return math.Pow(float64(f.ones)/float64(f.m), float64(f.k))
}

// countOnes recomputes ones from the words (after loading a snapshot).
func (f *filter) countOnes() {
	f.ones = 0
	for _, w := range f.words {
		f.ones += uint64(bits.OnesCount64(w))
	}
}

// insert is testAndSet that counts a new tag.
func (f *filter) insert(tag *[TagSize]byte) bool {
	seen := f.testAndSet(tag)
	if !seen {
		f.count++
	}
	return seen
}
