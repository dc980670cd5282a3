package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPluginDirs covers the forms of plugins.dir and layers.<layer>.dir:
// where each layer's binary is searched for and which lock vouches for it.
func TestPluginDirs(t *testing.T) {
	tests := []struct {
		name      string
		plugins   string // the plugins section
		privacy   string // extra keys of layers.privacy
		wantP2P   []string
		wantPriv  []string
		wantLock  string // LockPathFor(<first privacy dir>/strata-plugin-x)
		wantError string // a key the error names; "" for none
	}{
		{"one directory", "plugins:\n  dir: plugins\n", "", []string{"plugins"}, []string{"plugins"}, "plugins/strata.lock", ""},
		{"a list, in order", "plugins:\n  dir: [mine, stock]\n", "", []string{"mine", "stock"}, []string{"mine", "stock"}, "mine/strata.lock", ""},
		{"a layer's own dir", "plugins:\n  dir: stock\n", "    dir: mine\n", []string{"stock"}, []string{"mine"}, "mine/strata.lock", ""},
		{"one lock file for all", "plugins:\n  dir: [mine, stock]\n  lock_file: all.lock\n", "", []string{"mine", "stock"}, []string{"mine", "stock"}, "all.lock", ""},
		{"only layer dirs", "", "    dir: mine\n", nil, nil, "", "plugins.dir"},
		{"an empty entry", "plugins:\n  dir: [mine, \"\"]\n", "", nil, nil, "", "plugins.dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "node:\n  name: n\n  data_dir: state\n  role: relay\n" + tt.plugins +
				"layers:\n  p2p:\n    plugin: libp2p\n  privacy:\n    plugin: none\n" + tt.privacy
			path := write(t, "n.yaml", text)
			base := filepath.Dir(path)
			abs := func(dirs []string) []string {
				var out []string
				for _, d := range dirs {
					out = append(out, filepath.Join(base, d))
				}
				return out
			}
			cfg, err := Load(Sources{File: path})
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("Load: %v, want an error naming %s", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.PluginDirs("p2p"); !slices.Equal(got, abs(tt.wantP2P)) {
				t.Errorf("p2p dirs %v, want %v", got, abs(tt.wantP2P))
			}
			priv := cfg.PluginDirs("privacy")
			if !slices.Equal(priv, abs(tt.wantPriv)) {
				t.Errorf("privacy dirs %v, want %v", priv, abs(tt.wantPriv))
			}
			if got, want := cfg.LockPathFor(filepath.Join(priv[0], "strata-plugin-x")), filepath.Join(base, tt.wantLock); got != want {
				t.Errorf("lock %q, want %q", got, want)
			}
		})
	}
}
