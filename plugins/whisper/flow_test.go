package whisper

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// gate is an Emitter that takes nothing until it is opened, like a host
// whose overlay waits on a peer that does not read, and then keeps what it
// takes in its Recorder; not a plain Recorder, because a Recorder never
// makes the layer wait.
type gate struct {
	sdktest.Recorder
	open chan struct{}
}

func (g *gate) Emit(ctx context.Context, fs ...*commonv1.Frame) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Recorder.Emit(ctx, fs...)
}

// TestReadDoesNotWaitOnWrite: while the host takes none of the layer's
// output, HandleBatch still takes every UP batch (Statuses, then packets
// of new envelopes to forward) and returns; once the host takes output
// again, every envelope is forwarded, Statuses first.
func TestReadDoesNotWaitOnWrite(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	l := New()
	js, _ := json.Marshal(map[string]any{"rate_limit_packets": 0, "rate_limit_bytes": 0})
	if _, err := l.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(js), DataDir: t.TempDir()}, sdk.Env{Out: g}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(context.Background(), &commonv1.StartRequest{BelowAddress: []byte("me")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })

	const packets = 50
	var envs []*wire.Envelope
	for i := range packets {
		envs = append(envs, symEnvelope(t, wire.TopicType{1, 2, 3, byte(i)}, 0.2, []byte{byte(i)}))
	}
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		handshake(l, 0.2, nil, "feeder", "sink")
		for _, e := range envs {
			feed(l, upFrame("feeder", wire.MessagesCode, messages(e)))
		}
	}()
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("HandleBatch waited on the host taking the layer's output")
	}
	if n := counter(l, "envelopes_received"); n != packets {
		t.Fatalf("envelopes_received = %d, want %d", n, packets)
	}
	close(g.open)
	out := emitted(t, l, &g.Recorder)
	st := framesTo(out, "sink", wire.StatusCode)
	fw := framesTo(out, "sink", wire.MessagesCode)
	if len(st) != 1 || len(fw) != packets {
		t.Fatalf("sink got %d Statuses and %d packets, want 1 and %d", len(st), len(fw), packets)
	}
	for _, f := range out {
		if string(f.GetPeer()) == "sink" {
			if f.GetPayload()[0] != wire.StatusCode {
				t.Fatal("a packet went to the sink before its Status")
			}
			break
		}
	}
}
