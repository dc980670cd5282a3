package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
)

// nodeName is what a node's name may be in `strata init`: it names the
// config file and the data directory too.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func initCmd(env Env) *cobra.Command {
	var (
		stack, out, dataDir string
		peers               []string
		force               bool
	)
	cmd := &cobra.Command{
		Use:   "init NAME --stack STACK.yaml",
		Short: "Write a ready config for a new node on a stack",
		Long: `Write NAME.yaml: the stack of STACK.yaml (one of configs/, or your own) for a
node of that name, with its own data directory (data/NAME beside the new
file), its metrics on a free port and the plugin directory of the stack, so
that several nodes run side by side on one machine with one command each:

  strata init alice --stack configs/libp2p-none-dr-mvds.yaml
  strata run -c alice.yaml

--peer adds a card to node.peers: a relay or bootstrap node to stay connected
to (a whisper stack needs its relay's). Comments of the stack file are kept.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !nodeName.MatchString(name) {
				return fmt.Errorf("node name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
			}
			if stack == "" {
				return errors.New("pass --stack FILE: the stack to copy (ready ones are in configs/)")
			}
			if out == "" {
				out = name + ".yaml"
			}
			if dataDir == "" {
				dataDir = filepath.Join("data", name)
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("%s exists; pass --force to replace it", out)
			}
			text, err := initConfig(stack, out, name, dataDir, peers)
			if err != nil {
				return err
			}
			// The result must load: a mistake shows here, not at run.
			tmp := filepath.Join(filepath.Dir(out), ".new-"+filepath.Base(out))
			if err := os.WriteFile(tmp, text, 0o644); err != nil {
				return err
			}
			if _, err := config.Load(config.Sources{File: tmp, Environ: env.Environ}); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("the new config does not load: %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: node %s on the stack of %s, state in %s\nstart it with: strata run -c %s\n",
				out, name, stack, filepath.Join(filepath.Dir(out), dataDir), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&stack, "stack", "", "the stack config to start from (e.g. configs/libp2p-none-dr-mvds.yaml)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "the config file to write (default NAME.yaml)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the node's data directory, relative to the new file (default data/NAME)")
	cmd.Flags().StringArrayVar(&peers, "peer", nil, "a relay's or bootstrap node's contact card, for node.peers (repeatable)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the config file if it exists")
	return cmd
}

// initConfig returns the stack file at stackPath rewritten for a node
// called name whose config is written at out: its name, its data
// directory (relative to out), its plugin directories and lock file
// rewritten relative to out, metrics (when on) on a free port, and peers
// added to node.peers. The YAML is edited as a tree, so comments stay.
func initConfig(stackPath, out, name, dataDir string, peers []string) ([]byte, error) {
	b, err := os.ReadFile(stackPath)
	if err != nil {
		return nil, fmt.Errorf("--stack: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("--stack %s: %w", stackPath, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("--stack %s: not a YAML mapping (a node config)", stackPath)
	}
	root := doc.Content[0]
	stackDir, outDir := filepath.Dir(stackPath), filepath.Dir(out)
	rebase := func(p string) (string, error) {
		if filepath.IsAbs(p) {
			return p, nil
		}
		abs, err := filepath.Abs(filepath.Join(stackDir, p))
		if err != nil {
			return "", err
		}
		absOut, err := filepath.Abs(outDir)
		if err != nil {
			return "", err
		}
		return filepath.Rel(absOut, abs)
	}
	node := mapping(root, "node")
	setScalar(node, "name", name)
	setScalar(node, "data_dir", dataDir)
	plugins := mapping(root, "plugins")
	if dir := lookup(plugins, "dir"); dir != nil {
		var items []*yaml.Node
		if dir.Kind == yaml.SequenceNode {
			items = dir.Content
		} else {
			items = []*yaml.Node{dir}
		}
		for _, it := range items {
			if it.Value, err = rebase(it.Value); err != nil {
				return nil, fmt.Errorf("plugins.dir: %w", err)
			}
		}
	}
	if lf := lookup(plugins, "lock_file"); lf != nil && lf.Value != "" {
		if lf.Value, err = rebase(lf.Value); err != nil {
			return nil, fmt.Errorf("plugins.lock_file: %w", err)
		}
	}
	if layers := lookup(root, "layers"); layers != nil && layers.Kind == yaml.MappingNode {
		for i := 1; i < len(layers.Content); i += 2 {
			if d := lookup(layers.Content[i], "dir"); d != nil && d.Value != "" {
				if d.Value, err = rebase(d.Value); err != nil {
					return nil, fmt.Errorf("layers.%s.dir: %w", layers.Content[i-1].Value, err)
				}
			}
		}
	}
	if m := lookup(root, "metrics"); m != nil {
		if l := lookup(m, "listen"); l != nil && l.Value != "" && l.Value != "off" {
			l.Value = "127.0.0.1:0"
		}
	}
	if len(peers) > 0 {
		list := lookup(node, "peers")
		if list == nil || list.Kind != yaml.SequenceNode {
			list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			setNode(node, "peers", list)
		}
		for i, p := range peers {
			p = strings.TrimSpace(p)
			if _, err := contacts.DecodeText(p); err != nil {
				return nil, fmt.Errorf("--peer %d: not a contact card: %w", i+1, err)
			}
			list.Content = append(list.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
		}
	}
	var sb strings.Builder
	enc := yaml.NewEncoder(&sb)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf("# Node %s, written by `strata init` from %s.\n%s", name, stackPath, sb.String())), nil
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapping returns the mapping at key in m, adding an empty one if absent.
func mapping(m *yaml.Node, key string) *yaml.Node {
	if v := lookup(m, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	setNode(m, key, v)
	return v
}

// setScalar sets key in m to a string.
func setScalar(m *yaml.Node, key, value string) {
	setNode(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

// setNode sets key in m to v, keeping the key's comments when it exists.
func setNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			old := m.Content[i+1]
			v.LineComment, v.HeadComment, v.FootComment = old.LineComment, old.HeadComment, old.FootComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}
