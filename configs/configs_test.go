// Package configs holds the ready stacks; this test keeps them loadable.
package configs

import (
	"path/filepath"
	"testing"

	"github.com/strata-msg/strata/host/config"
)

// TestReadyStacksLoad checks that every shipped config parses and passes the
// host's checks (plugin sections are checked by `strata config check`,
// which needs the plugin binaries).
func TestReadyStacksLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := config.Load(config.Sources{File: f, Environ: []string{}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
