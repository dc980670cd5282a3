package conformance

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// Layer runs the checks every layer kind must pass: a self-description
// with a kind, a name without spaces or slashes, a version and a described
// config schema that its own defaults pass; Configure refusing an unknown
// key with a *sdk.ConfigError that names it; Start, Health and Stop; and
// 500 frames of garbage in every direction, after which the layer is
// healthy and every frame it emitted has a direction (UP or DOWN).
func Layer[T TB[T]](t T, open sdktest.Opener, o Options) {
	t.Run("Describe", func(t T) {
		info, err := open(t).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdk.ParseKind(sdk.KindName(info.GetKind())); err != nil {
			t.Errorf("kind: %v", err)
		}
		if info.GetName() == "" || strings.ContainsAny(info.GetName(), " /\\") {
			t.Errorf("name %q: want a short name without spaces or slashes", info.GetName())
		}
		if info.GetVersion() == "" {
			t.Error("version is empty")
		}
		seen := map[string]bool{}
		for _, f := range info.GetConfig() {
			if f.GetName() == "" || f.GetType() == commonv1.FieldType_FIELD_TYPE_UNSPECIFIED {
				t.Errorf("config field %+v has no name or type", f)
			}
			if seen[f.GetName()] {
				t.Errorf("config field %q declared twice", f.GetName())
			}
			seen[f.GetName()] = true
			if f.GetDescription() == "" {
				t.Errorf("config field %q has no description", f.GetName())
			}
		}
		if _, err := sdk.ApplySchema(info.GetConfig(), o.config(0)); err != nil {
			t.Errorf("defaults do not pass the plugin's own schema: %v", err)
		}
	})

	t.Run("RejectsUnknownKey", func(t T) {
		conn := open(t)
		_, err := conn.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"no_such_key_zz": 1}`, DataDir: t.TempDir()})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("Configure with an unknown key: got %v, want a *sdk.ConfigError", err)
		}
		if !strings.Contains(ce.Key, "no_such_key_zz") {
			t.Fatalf("ConfigError names key %q, want no_such_key_zz", ce.Key)
		}
	})

	t.Run("Lifecycle", func(t T) {
		in := setup(t, open, o.config(0), &commonv1.StartRequest{BelowAddress: []byte("conformance-below")})
		in.healthy()
		if err := in.conn.Stop(context.Background()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	})

	t.Run("SurvivesGarbage", func(t T) {
		in := setup(t, open, o.config(0), &commonv1.StartRequest{BelowAddress: []byte("conformance-below")})
		rng := rand.New(rand.NewPCG(1, 2))
		var frames []*commonv1.Frame
		for i := range 500 {
			payload := make([]byte, rng.IntN(2048))
			for j := range payload {
				payload[j] = byte(rng.UintN(256))
			}
			peer := make([]byte, rng.IntN(40))
			for j := range peer {
				peer[j] = byte(rng.UintN(256))
			}
			frames = append(frames, &commonv1.Frame{
				Direction:    commonv1.Direction(i % 4), // includes unspecified and out of range
				Peer:         peer,
				Protocol:     []string{"", "direct", "conformance", "\u00ff\u0000/../"}[rng.IntN(4)],
				Conversation: payload[:min(len(payload), rng.IntN(300))],
				Payload:      payload,
			})
		}
		in.send(frames...)
		if err := in.link.EmitEvent(context.Background(), &commonv1.Event{}); err != nil {
			t.Fatal(err)
		}
		in.healthy()
		// What the layer made of the garbage: every frame has a direction.
		quiet := time.NewTimer(garbageQuiet)
		defer quiet.Stop()
		for {
			select {
			case f := <-in.frames:
				if problem := validDirection(f); problem != "" {
					t.Fatalf("after garbage input, %s\n\tframe: %s", problem, sdktest.FormatFrame(f))
				}
			case <-quiet.C:
				return
			}
		}
	})
}

// garbageQuiet is how long SurvivesGarbage watches the layer's output after
// it reported healthy.
const garbageQuiet = 200 * time.Millisecond
