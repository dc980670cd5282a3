package sdk

import (
	"errors"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// FuzzFromStatus feeds arbitrary status messages and detail bytes from a
// plugin to the host-side decoder of plugin errors: it must never panic,
// and a config error it rebuilds must survive another round trip
// unchanged.
func FuzzFromStatus(f *testing.F) {
	good, _ := proto.Marshal(&commonv1.ConfigErrorDetail{Key: "listen", Problem: "127.0.0.1:4567 is in use", Fix: "choose another port, or 0"})
	f.Add("config key \"listen\": in use", good)
	f.Add("plain message", []byte{})
	f.Add("", []byte{0x0a, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, msg string, detail []byte) {
		st := status.FromProto(&spb.Status{
			Code:    int32(codes.InvalidArgument),
			Message: msg,
			Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/strata.common.v1.ConfigErrorDetail", Value: detail}},
		})
		err := fromStatus(st.Err())
		var ce *ConfigError
		if !errors.As(err, &ce) {
			var re *RemoteError
			if !errors.As(err, &re) || re.Message != msg {
				t.Fatalf("a status that is not a config error came back as %v", err)
			}
			return
		}
		again := fromStatus(toStatus(ce))
		var ce2 *ConfigError
		if !errors.As(again, &ce2) || *ce2 != *ce {
			t.Fatalf("round trip changed %+v into %+v", ce, ce2)
		}
	})
}

// TestPluginErrorsCrossStructured: a config error crosses the boundary as
// a structured detail and comes back whole; any other error comes back as
// the plugin's text, without gRPC's wrapping.
func TestPluginErrorsCrossStructured(t *testing.T) {
	ce := &ConfigError{Key: "listen", Problem: "127.0.0.1:4567 is in use", Fix: "choose another port, or 0"}
	var got *ConfigError
	if err := fromStatus(toStatus(ce)); !errors.As(err, &got) || *got != *ce {
		t.Fatalf("config error came back as %v", err)
	}
	err := fromStatus(toStatus(errors.New("libp2p: start: no route")))
	if err.Error() != "libp2p: start: no route" || status.Code(err) != codes.Unknown {
		t.Fatalf("plain error came back as %q (code %v)", err, status.Code(err))
	}
}
