package wire

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// Vector from the digest §13, computed with geth v1.9.20.
var (
	vecData     = []byte("0123456789abcdef0123456789abcdef")
	vecEnvelope = Envelope{Expiry: 1600000050, TTL: 50, Topic: TopicType{0xde, 0xad, 0xbe, 0xef}, Data: vecData, Nonce: 0x1234}
	vecRLP      = "ef845f5e10323284deadbeefa0" + hex.EncodeToString(vecData) + "821234"
	vecShort    = "ec845f5e10323284deadbeefa0" + hex.EncodeToString(vecData)
	vecHash     = "b9f974d7349f76f728d810bec9cc81a9040b5de54f8d17f2b4e7e9d7b80c5e2f"
)

func TestEnvelopeKnownVector(t *testing.T) {
	e := vecEnvelope
	enc := e.Encode()
	if got := hex.EncodeToString(enc); got != vecRLP {
		t.Fatalf("RLP = %s, want %s", got, vecRLP)
	}
	viaRLP, err := rlp.EncodeToBytes(&e)
	if err != nil || !bytes.Equal(viaRLP, enc) {
		t.Fatalf("rlp.EncodeToBytes = %x, %v", viaRLP, err)
	}
	if got := hex.EncodeToString(e.rlpWithoutNonce()); got != vecShort {
		t.Fatalf("short RLP = %s, want %s", got, vecShort)
	}
	h := e.Hash()
	if got := hex.EncodeToString(h[:]); got != vecHash {
		t.Fatalf("hash = %s, want %s", got, vecHash)
	}
	if got, want := e.PoW(), 2.0/(45*50); got != want {
		t.Fatalf("PoW = %v, want %v", got, want)
	}
	d, err := DecodeEnvelope(enc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Expiry != e.Expiry || d.TTL != e.TTL || d.Topic != e.Topic || !bytes.Equal(d.Data, e.Data) || d.Nonce != e.Nonce {
		t.Fatalf("decoded %+v, want %+v", d, e)
	}
	if e.Size() != 52 {
		t.Fatalf("Size = %d", e.Size())
	}
}

func TestNonceZeroEncoding(t *testing.T) {
	e := Envelope{Expiry: 1, TTL: 1, Data: nil}
	enc := e.Encode()
	// c9 01 01 84 00000000 80 80
	if got := hex.EncodeToString(enc); got != "c90101840000000080"+"80" {
		t.Fatalf("got %s", got)
	}
}

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	valid := mustHex(t, vecRLP)
	topic := []byte{1, 2, 3, 4}
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not a list", []byte{0x80}},
		{"truncated", valid[:len(valid)-1]},
		{"truncated header", valid[:1]},
		{"trailing byte", append(append([]byte{}, valid...), 0x00)},
		{"extra field", enc(t, []any{uint64(1), uint64(1), topic, []byte{1}, uint64(0), uint64(0)})},
		{"missing nonce", enc(t, []any{uint64(1), uint64(1), topic, []byte{1}})},
		{"topic 3 bytes", enc(t, []any{uint64(1), uint64(1), topic[:3], []byte{1}, uint64(0)})},
		{"topic 5 bytes", enc(t, []any{uint64(1), uint64(1), append(topic, 5), []byte{1}, uint64(0)})},
		{"expiry overflows uint32", enc(t, []any{uint64(1 << 32), uint64(1), topic, []byte{1}, uint64(0)})},
		{"ttl overflows uint32", enc(t, []any{uint64(1), uint64(1 << 40), topic, []byte{1}, uint64(0)})},
		{"nonce overflows uint64", enc(t, []any{uint64(1), uint64(1), topic, []byte{1}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}})},
		{"leading zero integer", enc(t, []any{[]byte{0, 1}, uint64(1), topic, []byte{1}, uint64(0)})},
		{"single byte wrapped", mustHex(t, "c981"+"01"+"01"+"8401020304"+"01"+"80")},
		{"data is a list", enc(t, []any{uint64(1), uint64(1), topic, []any{}, uint64(0)})},
		{"list size lies", append([]byte{0xf8, 0xff}, valid[1:]...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeEnvelope(c.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %+v, %v; want ErrMalformed", e, err)
			}
		})
	}
}

func TestPoWReproducibleAndNonceSensitive(t *testing.T) {
	e := vecEnvelope
	p1, p2 := e.PoW(), e.PoW()
	if p1 != p2 {
		t.Fatal("PoW not reproducible")
	}
	// Re-derive independently: 2^lz / (len(short) * TTL).
	seen := map[float64]bool{}
	for n := uint64(0); n < 64; n++ {
		e.Nonce = n
		short := mustHex(t, vecShort)
		buf := append(append([]byte{}, short...), byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		h := keccak(buf)
		lz := 0
		for _, b := range h {
			if b == 0 {
				lz += 8
				continue
			}
			for b&0x80 == 0 {
				lz++
				b <<= 1
			}
			break
		}
		want := math.Pow(2, float64(lz)) / float64(len(short)) / float64(e.TTL)
		if got := e.PoW(); got != want {
			t.Fatalf("nonce %d: PoW %v, want %v", n, got, want)
		}
		seen[e.PoW()] = true
	}
	if len(seen) < 2 {
		t.Fatal("changing the nonce never changed the PoW")
	}
}

func TestPoWZeroTTLIsInf(t *testing.T) {
	e := Envelope{Expiry: 100, TTL: 0, Data: []byte{1}}
	if !math.IsInf(e.PoW(), 1) {
		t.Fatalf("PoW = %v", e.PoW())
	}
}

func TestMineReachesTarget(t *testing.T) {
	targets := []float64{DefaultMinimumPoW, 1, 2.5}
	if testing.Short() {
		targets = targets[:2]
	}
	for _, target := range targets {
		e := Envelope{Expiry: 1700000050, TTL: 50, Topic: TopicType{1, 2, 3, 4}, Data: bytes.Repeat([]byte{0xab}, 284)}
		if err := e.Mine(context.Background(), target); err != nil {
			t.Fatal(err)
		}
		if got := e.PoW(); got < target {
			t.Fatalf("target %v: PoW %v after Mine (nonce %d)", target, got, e.Nonce)
		}
	}
}

func TestMineCancel(t *testing.T) {
	e := Envelope{Expiry: 1700000050, TTL: 50, Data: make([]byte, 100), Nonce: 7}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Mine(ctx, 1e30); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if e.Nonce != 7 {
		t.Fatal("nonce changed on failure")
	}
	if err := e.Mine(context.Background(), math.NaN()); !errors.Is(err, ErrBadPoWTarget) {
		t.Fatalf("NaN target: %v", err)
	}
}

func TestSeal(t *testing.T) {
	e := Envelope{Expiry: 1700000050, TTL: 50, Data: make([]byte, 100)}
	if err := e.Seal(0, time.Second); err != nil || e.Nonce != 0 {
		t.Fatal("Seal(0) did work")
	}
	if err := e.Seal(DefaultMinimumPoW, 5*time.Second); err != nil || e.PoW() < DefaultMinimumPoW {
		t.Fatalf("Seal: %v, PoW %v", err, e.PoW())
	}
	if err := e.Seal(1e30, 10*time.Millisecond); !errors.Is(err, ErrPoWTimeout) {
		t.Fatalf("Seal impossible: %v", err)
	}
	e2 := Envelope{Expiry: 1700000050, TTL: 50, Data: make([]byte, 100)}
	if err := e2.Seal(-1, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e2.Expiry != 1700000050 { // 20 ms rounds down to 0 whole seconds
		t.Fatalf("Expiry %d", e2.Expiry)
	}
	if e2.PoW() <= (&Envelope{Expiry: 1700000050, TTL: 50, Data: make([]byte, 100)}).PoW()/2 {
		t.Log("best-effort seal found a weak nonce (possible but unlikely)")
	}
}

// withZeros sets e.Nonce to the first nonce whose PoW hash has between lo
// and hi leading zero bits.
func withZeros(e *Envelope, lo, hi int) *Envelope {
	p := newPrefixHasher(e.rlpWithoutNonce())
	for e.Nonce = 0; ; e.Nonce++ {
		if z := p.zeros(e.Nonce); z >= lo && z <= hi {
			return e
		}
	}
}

func TestValidate(t *testing.T) {
	now := time.Unix(1700000000, 0)
	n := uint32(now.Unix())
	mined := func(expiry, ttl uint32, size int, target float64) *Envelope {
		e := &Envelope{Expiry: expiry, TTL: ttl, Topic: TopicType{9, 9, 9, 9}, Data: make([]byte, size)}
		if err := e.Mine(context.Background(), target); err != nil {
			t.Fatal(err)
		}
		return e
	}
	good := mined(n+50, 50, 100, DefaultMinimumPoW)
	cases := []struct {
		name   string
		e      *Envelope
		max    uint32
		minPoW float64
		want   error
	}{
		{"ok", good, DefaultMaxMessageSize, DefaultMinimumPoW, nil},
		{"expires now", mined(n, 50, 10, DefaultMinimumPoW), DefaultMaxMessageSize, DefaultMinimumPoW, nil},
		{"expired just", &Envelope{Expiry: n - 1, TTL: 50}, DefaultMaxMessageSize, 0, ErrExpired},
		{"expired 20s", &Envelope{Expiry: n - 20, TTL: 50}, DefaultMaxMessageSize, 0, ErrExpired},
		{"very old", &Envelope{Expiry: n - 21, TTL: 50}, DefaultMaxMessageSize, 0, ErrVeryOld},
		{"future within drift", mined(n+60, 50, 10, 1), DefaultMaxMessageSize, 0, nil},
		{"far future", &Envelope{Expiry: n + 61, TTL: 50}, DefaultMaxMessageSize, 0, ErrFuture},
		{"ttl > expiry wraps", &Envelope{Expiry: 10, TTL: 50}, DefaultMaxMessageSize, 0, ErrFuture},
		{"oversize", &Envelope{Expiry: n + 50, TTL: 50, Data: make([]byte, 1000)}, 1019, 0, ErrTooLarge},
		{"size at limit", mined(n+50, 50, 999, 0.01), 1019, 0.01, nil},
		// TTL 0 as geth: PoW +Inf when it expires this second, divided by
		// the future-dating penalty alone when sent later, expired after.
		{"zero ttl", &Envelope{Expiry: n, TTL: 0}, DefaultMaxMessageSize, 1e300, nil},
		// Sent 5 s ahead: PoW = 2^lz / 23 / 6, 0.2 needs 5 bits.
		{"zero ttl future", withZeros(&Envelope{Expiry: n + 5, Data: make([]byte, 10)}, 5, 256), DefaultMaxMessageSize, 0.2, nil},
		{"zero ttl future low pow", withZeros(&Envelope{Expiry: n + 5, Data: make([]byte, 10)}, 0, 4), DefaultMaxMessageSize, 0.2, ErrLowPoW},
		{"zero ttl expired", &Envelope{Expiry: n - 1, TTL: 0}, DefaultMaxMessageSize, 0, ErrExpired},
		{"low pow", &Envelope{Expiry: n + 50, TTL: 50, Data: make([]byte, 100)}, DefaultMaxMessageSize, 1e9, ErrLowPoW},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.e.Validate(now, c.max, c.minPoW)
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if !errors.Is(ErrVeryOld, ErrExpired) {
		t.Fatal("ErrVeryOld should wrap ErrExpired")
	}
}

func TestFuturePenalty(t *testing.T) {
	now := time.Unix(1700000000, 0)
	e := &Envelope{Expiry: 1700000000 + 55, TTL: 50, Data: make([]byte, 10), Nonce: 3}
	// sent = now+5, d = 6.
	if got, want := e.PoWAt(now), e.PoW()*50/56; math.Abs(got-want) > 1e-15*want {
		t.Fatalf("PoWAt = %v, want %v", got, want)
	}
	e.Expiry = 1700000000 + 50
	if e.PoWAt(now) != e.PoW() {
		t.Fatal("penalty applied to a present envelope")
	}
}

func TestIsExpired(t *testing.T) {
	e := &Envelope{Expiry: 100}
	if e.IsExpired(time.Unix(100, 0)) || !e.IsExpired(time.Unix(101, 0)) {
		t.Fatal("IsExpired boundary wrong")
	}
}
