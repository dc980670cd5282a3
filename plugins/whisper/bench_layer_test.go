package whisper_test

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// countingEmitter counts the envelopes of the code-1 frames a layer emits;
// not a Recorder, because the benchmark must not keep b.N frames alive.
// The layer's outbox emits from a goroutine of its own.
type countingEmitter struct {
	mu        sync.Mutex
	envelopes int
}

// count is the envelopes emitted so far.
func (c *countingEmitter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.envelopes
}

// wait waits until n envelopes were emitted or a while has passed, and
// returns the count.
func (c *countingEmitter) wait(n int) int {
	for deadline := time.Now().Add(10 * time.Second); c.count() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return c.count()
}

func (c *countingEmitter) Emit(_ context.Context, fs ...*commonv1.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fs {
		pl := f.GetPayload()
		if len(pl) == 0 || pl[0] != wire.MessagesCode {
			continue
		}
		content, _, err := rlp.SplitList(pl[1:])
		if err != nil {
			return err
		}
		k, err := rlp.CountValues(content)
		if err != nil {
			return err
		}
		c.envelopes += k
	}
	return nil
}

func (c *countingEmitter) EmitEvent(context.Context, *commonv1.Event) error { return nil }

// BenchmarkLayerRelay measures the whisper layer alone on the path
// BenchmarkForward exercises end to end: HandleBatch on UP frames of
// benchPerPacket envelopes from one peer (decode, duplicate check,
// validation, pooling) and the code-1 frames it emits to the other peer.
// No overlay, no host, no network: its ns/op (per envelope) is the layer's
// own share of BenchmarkForward/ours.
func BenchmarkLayerRelay(b *testing.B) {
	out := &countingEmitter{}
	l := whisper.New()
	cfg, _ := json.Marshal(map[string]any{"min_pow": benchMinPoW, "max_message_size": benchMaxSize, "rate_limit_packets": 0, "rate_limit_bytes": 0, "peer_out_rate": 0})
	ctx := context.Background()
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(cfg), DataDir: b.TempDir()}, sdk.Env{Out: out}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Stop(ctx) })
	feeder, sink := make([]byte, 32), make([]byte, 32)
	feeder[0], sink[0] = 1, 2
	st, _ := rlp.EncodeToBytes([]any{uint64(wire.ProtocolVersion), math.Float64bits(benchMinPoW), []byte{}, false})
	up := func(peer []byte, code byte, body []byte) *commonv1.Frame {
		return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: peer, Protocol: wire.ProtocolName, Payload: append([]byte{code}, body...)}
	}
	l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{up(feeder, wire.StatusCode, st), up(sink, wire.StatusCode, st)}})

	envs := minedEnvelopes(b, b.N)
	var frames []*commonv1.Frame
	for _, pkt := range benchPackets(envs, benchPerPacket) {
		frames = append(frames, up(feeder, wire.MessagesCode, pkt))
	}
	b.SetBytes(int64(len(envs[0])))
	b.ReportAllocs()
	cpu0, haveCPU := sdktest.ProcessCPU()
	b.ResetTimer()
	t0 := time.Now()
	// One frame per batch, as devp2p hands a busy peer's packets up in
	// batches of up to 64 frames of one packet each.
	for _, f := range frames {
		l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{f}})
	}
	b.StopTimer()
	elapsed := time.Since(t0)
	cpu1, _ := sdktest.ProcessCPU()
	// The last packets leave through the outbox's goroutine; the time that
	// takes is not the layer's per-envelope cost.
	got := out.wait(b.N)
	if got != b.N {
		b.Fatalf("forwarded %d envelopes, want %d; counters %v", got, b.N, l.Health(ctx).GetCounters())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "envelopes/s")
	if haveCPU {
		// Process CPU time (GC included) per envelope: less sensitive to
		// other load on the machine than ns/op.
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/env")
	}
}
