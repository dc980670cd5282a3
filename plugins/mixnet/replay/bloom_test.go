package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// tagSource returns distinct pseudo-random tags from seed.
func tagSource(seed uint64) func() [TagSize]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	r := rand.NewChaCha8(s)
	return func() [TagSize]byte {
		var t [TagSize]byte
		r.Read(t[:])
		return t
	}
}

func TestSizing(t *testing.T) {
	for _, tt := range []struct {
		n     uint64
		p     float64
		wantM uint64 // ⌈−n ln p / ln²2⌉ rounded up to 64
		wantK uint32
	}{
		{2_000_000, 1e-6, 57_510_400, 20},
		{100_000, 0.01, 958_528, 7},
		{1_000, 0.001, 14_400, 10},
		{1, 0.5, 64, 44}, // a tiny filter: k is m/n·ln2 rounded, capped at 64
	} {
		m, k, err := Sizing(tt.n, tt.p)
		if err != nil {
			t.Fatal(err)
		}
		exact := math.Ceil(-float64(tt.n) * math.Log(tt.p) / (math.Ln2 * math.Ln2))
		if m%64 != 0 || float64(m) < exact || float64(m) >= exact+64 {
			t.Errorf("Sizing(%d, %v): m = %d, exact %v", tt.n, tt.p, m, exact)
		}
		if tt.wantM != 0 && m != tt.wantM || k != tt.wantK {
			t.Errorf("Sizing(%d, %v) = %d, %d; want %d, %d", tt.n, tt.p, m, k, tt.wantM, tt.wantK)
		}
		// At capacity the formula gives back about the configured rate.
		if got := FalsePositiveRate(m, k, tt.n); tt.n > 1 && (got > tt.p*1.05 || got < tt.p*0.8) {
			t.Errorf("FalsePositiveRate at capacity = %v, configured %v", got, tt.p)
		}
	}
	for _, tt := range []struct {
		n uint64
		p float64
	}{{0, 0.01}, {10, 0}, {10, 1}, {10, -1}, {10, math.NaN()}, {1 << 40, 1e-9}} {
		if _, _, err := Sizing(tt.n, tt.p); !errors.Is(err, ErrConfig) {
			t.Errorf("Sizing(%d, %v): %v, want ErrConfig", tt.n, tt.p, err)
		}
	}
}

// The measured false-positive rate on a large sample matches the
// configured one at capacity, and the formula past capacity. The tags and
// keys are seeded, so the result is the same on every run.
func TestFalsePositiveRate(t *testing.T) {
	for _, tt := range []struct {
		n      uint64
		p      float64
		probes int
		// tol is the allowed relative error at capacity: about 6σ of
		// the hit count (probes·p hits, σ ≈ √(probes·p)).
		tol float64
	}{
		{100_000, 0.01, 200_000, 0.15},   // ~2,000 hits, σ ≈ 45
		{20_000, 0.001, 1_000_000, 0.20}, // ~1,000 hits, σ ≈ 32
	} {
		t.Run(fmt.Sprintf("n=%d p=%v", tt.n, tt.p), func(t *testing.T) {
			n, p := tt.n, tt.p
			m, k, err := Sizing(n, p)
			if err != nil {
				t.Fatal(err)
			}
			f := newFilter(n, m, k, [32]byte{1, 2, 3})
			next := tagSource(1)
			probe := tagSource(2)
			measure := func(trials int) float64 {
				fp := 0
				for range trials {
					tag := probe()
					if f.contains(&tag) {
						fp++
					}
				}
				return float64(fp) / float64(trials)
			}
			for range n {
				tag := next()
				f.insert(&tag) // a false positive on insert is not counted
			}
			got := measure(tt.probes)
			t.Logf("m=%d k=%d, %d tags: measured false-positive rate %.6f, configured %.6f", m, k, f.count, got, p)
			if got < p*(1-tt.tol) || got > p*(1+tt.tol) {
				t.Fatalf("measured false-positive rate %.6f, configured %.6f", got, p)
			}
			if fill := f.fillRate(); fill < p*0.9 || fill > p*1.1 {
				t.Fatalf("fill-based estimate %.6f, configured %.6f", fill, p)
			}
			// Twice over capacity: no failure; the rate follows the
			// formula for 2n inserts and the fill-based estimate Stats
			// reports.
			for range n {
				tag := next()
				f.insert(&tag)
			}
			want := FalsePositiveRate(m, k, 2*n)
			got = measure(100_000)
			t.Logf("%d distinct tags of %d inserted (twice capacity): measured %.5f, formula %.5f, fill-based %.5f", f.count, 2*n, got, want, f.fillRate())
			if got < want*0.9 || got > want*1.1 || f.fillRate() < want*0.9 || f.fillRate() > want*1.1 {
				t.Fatalf("over capacity: measured %.5f, formula %.5f, fill-based %.5f", got, want, f.fillRate())
			}
		})
	}
}

func TestFilterKeyChangesBits(t *testing.T) {
	m, k, _ := Sizing(1000, 0.01)
	a := newFilter(1000, m, k, [32]byte{1})
	b := newFilter(1000, m, k, [32]byte{2})
	tag := [TagSize]byte{42}
	a.insert(&tag)
	b.insert(&tag)
	same := true
	for i := range a.words {
		if a.words[i] != b.words[i] {
			same = false
		}
	}
	if same {
		t.Fatal("two keys set the same bits for one tag")
	}
	if !a.insert(&tag) || a.count != 1 {
		t.Fatalf("re-insert: count %d", a.count)
	}
}
