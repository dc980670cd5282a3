package plugins

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
)

// DescribeLayer returns the PluginInfo of the plugin a config names for the
// layer key, of the given kind: from catalog when the layer runs in
// process, else by launching its binary (found with Locate in the layer's
// directories) after checking it against the lock that vouches for it, as
// a node would: a binary no lock vouches for is not run unless the config
// allows unverified plugins.
func DescribeLayer(ctx context.Context, cfg *config.Config, catalog Catalog, key string, kind commonv1.LayerKind) (*commonv1.PluginInfo, error) {
	l, ok := cfg.Layers[key]
	if !ok {
		return nil, fmt.Errorf("describe layers.%s: the config has no such layer", key)
	}
	if l.Mode == config.ModeInProc {
		f, err := catalog.Lookup(kind, l.Plugin)
		if err != nil {
			return nil, fmt.Errorf("describe layers.%s: %w", key, err)
		}
		return f().Describe(), nil
	}
	path, err := Locate(cfg.PluginDirs(key), l.Plugin)
	if errors.Is(err, ErrNotFound) {
		return nil, NotFoundError(cfg, key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
	}
	var sum []byte
	lock, err := ReadLock(cfg.LockPathFor(path))
	if err != nil {
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
	}
	want, err := Expected(l.Plugin, cfg.Plugins.Checksums, lock)
	switch {
	case err == nil:
		if err := Verify(path, want); err != nil {
			return nil, fmt.Errorf("describe layers.%s: %w", key, err)
		}
		if sum, err = hex.DecodeString(want); err != nil {
			return nil, fmt.Errorf("describe layers.%s: checksum %q: %w", key, want, err)
		}
	case errors.Is(err, ErrNoChecksum) && cfg.Plugins.AllowUnverified:
	default:
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
	}
	conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path, Kind: kind, Checksum: sum, AllowUnverified: sum == nil, Logger: hclog.NewNullLogger()})
	if err != nil {
		return nil, fmt.Errorf("describe layers.%s: launch %s: %w", key, path, err)
	}
	defer conn.Close()
	info, err := conn.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
	}
	return info, nil
}

// Provides reports whether info lists capability among what its layer
// provides.
func Provides(info *commonv1.PluginInfo, capability string) bool {
	for _, p := range info.GetProvides() {
		if p == capability {
			return true
		}
	}
	return false
}
