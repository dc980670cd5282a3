package sdk

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FuzzFromStatus feeds arbitrary status messages from a plugin to the
// host-side decoder of config errors: it must never panic, and whatever it
// rebuilds must survive another round trip unchanged.
func FuzzFromStatus(f *testing.F) {
	f.Add(configErrorPrefix + "listen\x1fis bad\x1fuse a multiaddr")
	f.Add(configErrorPrefix)
	f.Add(configErrorPrefix + "\x1f\x1f\x1f\x1f")
	f.Add("plain message")
	f.Fuzz(func(t *testing.T, msg string) {
		err := fromStatus(status.Error(codes.InvalidArgument, msg))
		var ce *ConfigError
		if !errors.As(err, &ce) {
			return
		}
		again := fromStatus(toStatus(ce))
		var ce2 *ConfigError
		if !errors.As(again, &ce2) || ce2.Key != ce.Key || ce2.Problem != ce.Problem {
			t.Fatalf("round trip changed %+v into %+v", ce, ce2)
		}
	})
}
