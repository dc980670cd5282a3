package mixnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mixnet"
)

// TestConfigErrors: every bad value is refused at Configure with a
// ConfigError that names its key.
func TestConfigErrors(t *testing.T) {
	n := newNetwork(t)
	tests := []struct {
		name string
		cfg  map[string]any
		key  string
	}{
		{"no document", n.config(mixnet.RoleClient, "provider-0", map[string]any{"pki_document": ""}), "pki_document"},
		{"missing document", n.config(mixnet.RoleClient, "provider-0", map[string]any{"pki_document": "/nonexistent/doc"}), "pki_document"},
		{"wrong network", n.config(mixnet.RoleClient, "provider-0", map[string]any{"network_id": "other"}), "pki_document"},
		{"wrong geometry", n.config(mixnet.RoleClient, "provider-0", map[string]any{"user_payload": 1000}), "pki_document"},
		{"wrong layers", n.config(mixnet.RoleClient, "provider-0", map[string]any{"layers": 2}), "pki_document"},
		{"bad authority", n.config(mixnet.RoleClient, "provider-0", map[string]any{"authorities": []any{"zz"}}), "authorities[0]"},
		{"unknown authority", n.config(mixnet.RoleClient, "provider-0", map[string]any{"authorities": []any{"0000000000000000000000000000000000000000000000000000000000000001"}}), "pki_document"},
		{"threshold over the authorities", n.config(mixnet.RoleClient, "provider-0", map[string]any{"authority_threshold": 2}), "authority_threshold"},
		{"no provider", n.config(mixnet.RoleClient, "", nil), "provider"},
		{"unknown provider", n.config(mixnet.RoleClient, "provider-9", nil), "provider"},
		{"a mix as provider", n.config(mixnet.RoleClient, "mix-0-0", nil), "provider"},
		{"relay without name", n.config(mixnet.RoleMix, "", nil), "name"},
		{"mix named as a provider", n.config(mixnet.RoleMix, "provider-0", map[string]any{"keys_path": n.keys["provider-0"]}), "name"},
		{"relay without keys", n.config(mixnet.RoleMix, "mix-0-0", map[string]any{"keys_path": ""}), "keys_path"},
		{"another relay's keys", n.config(mixnet.RoleMix, "mix-0-0", map[string]any{"keys_path": n.keys["mix-0-1"]}), "keys_path"},
		{"λP of zero", n.config(mixnet.RoleClient, "provider-0", map[string]any{"lambda_p": 0}), "lambda_p"},
		{"bad role", n.config("gateway", "provider-0", nil), "role"},
		{"epoch period in fractions", n.config(mixnet.RoleClient, "provider-0", map[string]any{"epoch_period": "1500ms"}), "epoch_period"},
		{"unknown key", n.config(mixnet.RoleClient, "provider-0", map[string]any{"lambda_x": 1}), "lambda_x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.cfg)
			lc := sdk.NewLifecycle(mixnet.New())
			_, err := lc.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(b), DataDir: t.TempDir()}, sdk.Env{Out: &discard{}})
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key {
				t.Fatalf("got %v, want a ConfigError for %q", err, tt.key)
			}
		})
	}
}

// TestConfigDefaults: the schema's defaults decode, and a section with
// only the required keys configures every role.
func TestConfigDefaults(t *testing.T) {
	n := newNetwork(t)
	for _, c := range []map[string]any{n.config(mixnet.RoleClient, "provider-0", nil), n.config(mixnet.RoleMix, "mix-2-1", nil), n.config(mixnet.RoleProvider, "provider-1", nil)} {
		b, _ := json.Marshal(c)
		cfg, err := sdk.LoadConfig[mixnet.Config](string(b))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.UserPayload != 2000 || cfg.Layers != 3 || cfg.PullBatch != 16 || cfg.LambdaP != nil {
			t.Fatalf("defaults: %+v", cfg)
		}
		lc := sdk.NewLifecycle(mixnet.New())
		dir := t.TempDir()
		if _, err := lc.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(b), DataDir: dir}, sdk.Env{Out: &discard{}}); err != nil {
			t.Fatal(err)
		}
		if err := lc.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Emit(context.Context, ...*commonv1.Frame) error   { return nil }
func (discard) EmitEvent(context.Context, *commonv1.Event) error { return nil }

// TestKeysSurviveRestart: a client keeps its address (mailbox token and
// key) and a relay its advanced key chain across restarts on one data
// directory.
func TestKeysSurviveRestart(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	for _, c := range []map[string]any{n.config(mixnet.RoleClient, "provider-0", nil), n.config(mixnet.RoleProvider, "provider-0", nil)} {
		b, _ := json.Marshal(c)
		dir := t.TempDir()
		var addrs [][]byte
		for range 2 {
			l := mixnet.New()
			lc := sdk.NewLifecycle(l)
			if _, err := lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(b), DataDir: dir}, sdk.Env{Out: &discard{}}); err != nil {
				t.Fatal(err)
			}
			resp, err := lc.Start(ctx, &commonv1.StartRequest{})
			if err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, resp.GetContactSection())
			if err := lc.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(addrs[0], addrs[1]) {
			t.Fatalf("%s: address changed across a restart", c["role"])
		}
		if c["role"] == mixnet.RoleProvider {
			if _, err := os.Stat(filepath.Join(dir, mixnet.KeyChainFile)); err != nil {
				t.Fatalf("no key chain kept: %v", err)
			}
			// The keys file is no longer needed.
			c2 := n.config(mixnet.RoleProvider, "provider-0", map[string]any{"keys_path": "/nonexistent"})
			b2, _ := json.Marshal(c2)
			lc := sdk.NewLifecycle(mixnet.New())
			if _, err := lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(b2), DataDir: dir}, sdk.Env{Out: &discard{}}); err != nil {
				t.Fatalf("restart from the kept chain: %v", err)
			}
			lc.Stop(ctx)
		}
	}
}
