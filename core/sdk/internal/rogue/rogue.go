// Package rogue is a p2p-kind layer that misbehaves on purpose, as its
// config asks: it emits frames and batches beyond the limits it was given,
// writes terminal escapes and malformed lines into its log, floods the log,
// and reports what it finds on its stdin and which user it runs as. The
// host's boundary tests run it as a plugin process to show that the host
// holds against a plugin that does not play by the rules.
package rogue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the layer's name.
const Name = "rogue"

// MaxPayload is the max_payload the layer declares.
const MaxPayload = 1024

// EnvBatchFrames, set in the plugin's environment, replaces the batch size
// the host asked for (sdk.EnvBatchFrames) before the SDK reads it: the
// plugin then sends batches larger than the host allows.
const EnvBatchFrames = "ROGUE_BATCH_MAX_FRAMES"

// Layer is the rogue layer.
type Layer struct {
	p2pv1.UnimplementedControlServer
	env sdk.Env
	cfg config
}

var _ sdk.P2P = (*Layer)(nil)

// New returns a rogue layer.
func New() *Layer { return &Layer{} }

type config struct {
	// Attack is what the layer does at Start: "frames" (UP frames above
	// MaxPayload, one with an oversized header, and good ones), "many"
	// (Count frames in one Emit), "big" (one frame of Count bytes),
	// "log" (escapes, fake lines and malformed JSON in its log), "flood"
	// (Count log lines), "stdin" (read stdin; the result is the display
	// address), "whoami" (the uid as the display address), "error" and
	// "config_error" (Start fails with escapes in its error's text).
	Attack string `json:"attack"`
	Count  int64  `json:"count"`
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_P2P,
		Name:        Name,
		Version:     "0.0.1",
		Description: "a p2p layer that misbehaves on purpose; a test fixture of the host's boundary",
		Config: []*commonv1.ConfigField{
			sdk.String("attack", "what to do at Start", ""),
			sdk.Int("count", "how many frames, bytes or lines", 0, 0, 1<<40),
		},
		Provides:   []string{sdk.CapUnicast, sdk.CapBroadcast, sdk.CapNamedProtocols, sdk.CapPeerEvents},
		MaxPayload: MaxPayload,
	}
}

// Configure implements sdk.Layer.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	if err := sdk.DecodeConfig(req.GetConfigJson(), &l.cfg); err != nil {
		return nil, err
	}
	l.env = env
	return &commonv1.ConfigureResponse{}, nil
}

func up(payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Payload: payload, Peer: []byte("peer")}
}

// Start implements sdk.Layer: the attack.
func (l *Layer) Start(ctx context.Context, _ *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	resp := &commonv1.StartResponse{LocalAddress: []byte(Name)}
	out, log := l.env.Out, l.env.Logger
	switch l.cfg.Attack {
	case "frames":
		err := out.Emit(ctx,
			up([]byte("first")),
			up(make([]byte, MaxPayload+1)),
			&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Payload: []byte("x"), Conversation: make([]byte, sdk.MaxFrameHeader+1)},
			up(make([]byte, MaxPayload)),
			up([]byte("last")))
		if err != nil {
			return nil, err
		}
	case "many":
		frames := make([]*commonv1.Frame, l.cfg.Count)
		for i := range frames {
			frames[i] = up(fmt.Appendf(nil, "%d", i))
		}
		if err := out.Emit(ctx, frames...); err != nil {
			return nil, err
		}
	case "big":
		if err := out.Emit(ctx, up(make([]byte, l.cfg.Count))); err != nil {
			return nil, err
		}
	case "log":
		log.Error("\x1b[31mred\x1b[0m\n2099-01-01T00:00:00.000Z [ERROR] node: FAKE host line", "key\x1b[2J", "\u202eevil\u202c", "n", 7)
		// go-plugin points os.Stderr at its stdio stream once the plugin
		// serves; descriptor 2 is still the stderr the host reads logs from.
		fd2 := os.NewFile(2, "stderr")
		fmt.Fprintln(fd2, "\x1b]0;owned\x07raw stderr \x9b31m line")
		fmt.Fprintln(fd2, `{"@message":5,"@level":7,"@timestamp":false,"x":{"y":"\u001b[1m"}}`)
		fmt.Fprintln(fd2, strings.Repeat("A", 200<<10))
		log.Info("log attack done")
	case "flood":
		for i := range l.cfg.Count {
			log.Warn("flood", "i", i)
		}
		log.Warn("flood done")
	case "stdin":
		resp.DisplayAddress = readStdin()
	case "error":
		return nil, errors.New("\x1b[2Jboom\n2099-01-01T00:00:00.000Z [ERROR] node: FAKE")
	case "config_error":
		return nil, &sdk.ConfigError{Key: "attack\x1b[1m", Problem: "\u202eevil", Fix: "\x1b]0;owned\x07"}
	case "whoami":
		resp.DisplayAddress = fmt.Sprintf("uid=%d gid=%d", os.Getuid(), os.Getgid())
	}
	return resp, nil
}

// readStdin reports what the process can read on its stdin within 2 s.
func readStdin() string {
	got := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		_, err := io.CopyN(&buf, os.Stdin, 1<<10)
		switch {
		case errors.Is(err, io.EOF) && buf.Len() == 0:
			got <- "EOF"
		default:
			got <- fmt.Sprintf("read %q", buf.String())
		}
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(2 * time.Second):
		return "blocked"
	}
}

// HandleBatch implements sdk.Layer: input is ignored.
func (l *Layer) HandleBatch(context.Context, *commonv1.Batch) {}

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	return &commonv1.HealthResponse{Serving: true}
}

// Stop implements sdk.Layer.
func (l *Layer) Stop(context.Context) error { return nil }
