package plugins

import (
	"context"
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
// a node would (Vouch): a binary no lock vouches for is not run unless the
// config allows unverified plugins, nor one the lock records as another
// kind of layer.
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
	sum, err := Vouch(cfg, key, l.Plugin, path, cfg.Plugins.AllowUnverified)
	if err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
	}
	runAs, err := RunAs(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path, Kind: kind, Checksum: sum, AllowUnverified: sum == nil,
		UnverifiedReason: UnverifiedReason(cfg, false), Logger: hclog.NewNullLogger(), RunAs: runAs})
	if err != nil {
		return nil, fmt.Errorf("describe layers.%s: %w", key, err)
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
