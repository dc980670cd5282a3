package node

import (
	"fmt"
	"os"
	"path/filepath"
)

// layerDir is where a layer's plugin keeps its state:
// <data_dir>/<layer>/<plugin>/. Two plugins never share a folder, so
// switching a stack on one data directory mixes nothing (libp2p and devp2p
// each keep their own listen ports and keys).
func (s *slot) layerDir(dataDir string) string {
	return filepath.Join(dataDir, s.key, s.layer.Plugin)
}

// migrateLayerDir moves state of the layout before per-plugin folders (the
// plugin's files directly in <data_dir>/<layer>/) into the plugin's folder,
// once: when that folder does not exist yet and the layer's folder holds
// files. Those files were written by the layer's plugin of that time,
// which for a data directory that never switched stacks is this one.
func (s *slot) migrateLayerDir(dataDir string) error {
	dir := s.layerDir(dataDir)
	if _, err := os.Stat(dir); err == nil || !os.IsNotExist(err) {
		return nil
	}
	old := filepath.Join(dataDir, s.key)
	entries, err := os.ReadDir(old)
	if err != nil {
		return nil // no old folder: nothing to move
	}
	var files []os.DirEntry
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, e)
		}
	}
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("layers.%s: data dir: %w", s.key, err)
	}
	for _, e := range files {
		if err := os.Rename(filepath.Join(old, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("layers.%s: move %s into %s: %w", s.key, e.Name(), dir, err)
		}
	}
	s.log.Info("moved the layer's state into its plugin's own folder", "plugin", s.layer.Plugin, "folder", dir, "files", len(files))
	return nil
}
