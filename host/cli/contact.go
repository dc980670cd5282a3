package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/identity"
)

func contactCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "contact", Short: "Export this node's contact card, import others'"}

	var exportFlags configFlags
	var wait time.Duration
	var showQR bool
	var pngPath string
	export := &cobra.Command{
		Use:   "export -c FILE",
		Short: "Print this node's contact card (written by the node each time it starts)",
		Long: `Print this node's contact card, as the node wrote it at its last start
(<data_dir>/host/card.txt). A node that has never started has no card: export
waits up to --wait for it to write one, so that it can follow a "strata run
... &" in a script.

On a terminal wide enough for it, export also prints the card as a QR code
(--qr=false leaves it out; --qr prints it anyway, into a pipe too), and
--png FILE writes the QR code as a PNG image. The QR code holds the card
in its QR form (STRATA:CARD: and base32, see docs/chat.md), which contact
import takes like the text form. A card with a post-quantum prekey bundle
makes a large code (about 180 modules a side): the terminal must be that
wide, or use the PNG.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := exportFlags.load(env)
			if err != nil {
				return err
			}
			path := filepath.Join(cfg.Node.DataDir, "host", "card.txt")
			b, err := os.ReadFile(path)
			for deadline := time.Now().Add(wait); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(100 * time.Millisecond):
				}
				b, err = os.ReadFile(path)
			}
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("node %s has no card yet: start it once with `strata run -c %s`", cfg.Node.Name, exportFlags.file)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, string(b))
			if cmd.Flags().Changed("qr") {
				return exportQR(out, string(b), showQR, pngPath)
			}
			// Unasked (on a terminal), a code that does not fit is a
			// note, not an error.
			if !isTerminal(out) {
				return exportQR(out, string(b), false, pngPath)
			}
			if err := exportQRAuto(out, cmd.ErrOrStderr(), string(b)); err != nil {
				return err
			}
			return exportQR(out, string(b), false, pngPath)
		},
	}
	exportFlags.register(export)
	export.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for a node that has never started to write its card")
	export.Flags().BoolVar(&showQR, "qr", false, "print the card as a QR code too (the default on a terminal)")
	export.Flags().StringVar(&pngPath, "png", "", "write the card's QR code to this PNG file")

	var importFlags configFlags
	var alias string
	imp := &cobra.Command{
		Use:   "import -c FILE CARD",
		Short: "Verify a contact card and add it to this node's contacts",
		Long: `Verify a contact card and add it to this node's contacts. CARD is the
card's text (strata:card:...) or its QR form (STRATA:CARD:..., what a
scanner reads from the QR code of contact export), or - to read it from
standard input:

  strata contact export -c alice.yaml | strata contact import -c bob.yaml -

When the node is running, the card goes through its messaging API and the
node uses it at once; otherwise it is stored in the node's contacts for its
next start. The output says which.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := importFlags.load(env)
			if err != nil {
				return err
			}
			text := args[0]
			if text == "-" {
				b, err := readAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				text = string(b)
			}
			if text, err = cardFromText(text); err != nil {
				return err
			}
			card, err := contacts.DecodeText(strings.TrimSpace(text))
			if err != nil {
				return err
			}
			fp := identity.Fingerprint(card.IdentityKey)
			name := escapeText(card.Name)
			live, err := importLive(cmd.Context(), cfg, strings.TrimSpace(text))
			if err != nil {
				return importRefused(name, fp, err)
			}
			// A node that is starting holds its data directory but serves
			// its API only once every layer is up: wait for it, so that
			// the card goes into the running node, not only its store.
			if network, _ := cfg.APIEndpoint(); !live && network != "" && nodePID(cfg) > 0 {
				for deadline := time.Now().Add(apiWait); !live && time.Now().Before(deadline) && nodePID(cfg) > 0; {
					select {
					case <-cmd.Context().Done():
						return cmd.Context().Err()
					case <-time.After(100 * time.Millisecond):
					}
					if live, err = importLive(cmd.Context(), cfg, strings.TrimSpace(text)); err != nil {
						return importRefused(name, fp, err)
					}
				}
			}
			var namesakes []string
			err = withStore(cmd.Context(), cfg, func(id *identity.Identity, store *contacts.Store) error {
				if bytes.Equal(card.IdentityKey, id.Public()) {
					return errors.New("that is this node's own card")
				}
				if !live {
					if err := store.Put(cmd.Context(), card); err != nil {
						return importRefused(name, fp, err)
					}
				}
				if alias != "" {
					if err := store.SetAlias(cmd.Context(), card.IdentityKey, alias); err != nil {
						return err
					}
				}
				cards, err := store.List(cmd.Context())
				if err != nil {
					return err
				}
				shown := showContact(&contacts.Card{Name: card.Name, Alias: alias})
				if foldName(shown) == foldName(cfg.Node.Name) {
					namesakes = append(namesakes, escapeText(cfg.Node.Name)+" (this node)")
				}
				for _, c := range cards {
					if !bytes.Equal(c.IdentityKey, card.IdentityKey) && foldName(showContact(c)) == foldName(shown) {
						namesakes = append(namesakes, escapeText(showContact(c))+" ("+identity.Fingerprint(c.IdentityKey)+")")
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if live {
				fmt.Fprintf(out, "imported %s (%s) into the running node %s: it uses the card now\n", name, fp, cfg.Node.Name)
			} else {
				fmt.Fprintf(out, "imported %s (%s) into the contacts of node %s\n", name, fp, cfg.Node.Name)
				if pid := nodePID(cfg); pid > 0 {
					fmt.Fprintf(out, "node %s is running (pid %d) but its API is off or unreachable: it uses the card from its next start\n", cfg.Node.Name, pid)
				} else {
					fmt.Fprintf(out, "node %s is not running: it uses the card from its next start\n", cfg.Node.Name)
				}
			}
			for _, other := range namesakes {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s (%s) has the same name as %s; the CLI shows each of them with its fingerprint (--alias gives a contact a name of your own)\n",
					escapeText(showContact(&contacts.Card{Name: card.Name, Alias: alias})), fp, other)
			}
			return nil
		},
	}
	importFlags.register(imp)
	imp.Flags().StringVar(&alias, "alias", "", "a local nickname for the contact")

	var listFlags configFlags
	list := &cobra.Command{
		Use:   "list -c FILE",
		Short: "List this node's contacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := listFlags.load(env)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), cfg, func(_ *identity.Identity, store *contacts.Store) error {
				cards, err := store.List(cmd.Context())
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tALIAS\tFINGERPRINT\tVERIFIED\tLAYERS")
				for _, c := range cards {
					var layers []string
					for kind, sec := range c.Sections {
						layers = append(layers, sdk.KindName(kind)+"="+sec.Plugin)
					}
					slices.Sort(layers)
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", escapeText(c.Name), escapeText(c.Alias), identity.Fingerprint(c.IdentityKey), verifiedMark(c), strings.Join(layers, " "))
				}
				return w.Flush()
			})
		},
	}
	listFlags.register(list)

	cmd.AddCommand(export, imp, list, verifyCmd(env))
	return cmd
}

// apiWait bounds how long `contact import` waits for a node that is
// starting to serve its API.
const apiWait = 60 * time.Second

// withStore opens the node's identity and contact store (SQLite in WAL mode
// allows this beside a running node).
func withStore(ctx context.Context, cfg *config.Config, f func(*identity.Identity, *contacts.Store) error) error {
	dir := filepath.Join(cfg.Node.DataDir, "host")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	master, err := identity.MasterKey(dir, cfg.Node.PassphraseFile, cfg.Node.KeyFile)
	if err != nil {
		return err
	}
	hostKey, err := identity.HostKey(master)
	master.Wipe()
	if err != nil {
		return err
	}
	id, err := identity.LoadSealed(dir, hostKey)
	hostKey.Wipe()
	if err != nil {
		return err
	}
	defer id.Close()
	store, err := contacts.Open(ctx, filepath.Join(dir, "contacts.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	return f(id, store)
}

// readAll reads a card from r, refusing more than a card can hold.
func readAll(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, 2*contacts.MaxCardSize))
}

// importLive hands a card to the running node through its API, if the
// node is running, and reports whether it did.
func importLive(ctx context.Context, cfg *config.Config, text string) (bool, error) {
	network, addr := cfg.APIEndpoint()
	if network == "" || (network == "unix" && !exists(addr)) {
		return false, nil
	}
	target := addr
	if network == "unix" {
		target = "unix:" + addr
	}
	conn, err := api.Dial(target, api.TokenPath(cfg.Node.DataDir))
	if errors.Is(err, api.ErrNoToken) {
		return false, nil // a node on TCP writes its token when it starts
	}
	if err != nil {
		return false, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = appv1.NewMessagingClient(conn).AddContact(cctx, &appv1.AddContactRequest{Card: text})
	if status.Code(err) == codes.Unavailable {
		return false, nil // a stale socket: the node is not running
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// importRefused is the error of an import that the node or its store
// refused: a card older than the stored one, one issued in the future, a
// name that could mislead. name is already escaped.
func importRefused(name, fp string, err error) error {
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	if errors.Is(err, contacts.ErrStale) || status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("not imported: the node keeps the newer card it holds for %s (%s): %s", name, fp, msg)
	}
	return fmt.Errorf("not imported: %s (%s): %s", name, fp, msg)
}

// showContact is the name the CLI shows a contact by: its alias, else its
// card name.
func showContact(c *contacts.Card) string {
	if c.Alias != "" {
		return c.Alias
	}
	return c.Name
}

// nodePID returns the process id of the node running on cfg's data
// directory, or 0 when none is. A running node holds the OS lock of
// <data_dir>/host/lock and has written its pid there; the lock is not
// taken here (that could make a node that starts at this moment fail),
// only the pid is checked for a live process.
func nodePID(cfg *config.Config) int {
	b, err := os.ReadFile(filepath.Join(cfg.Node.DataDir, "host", "lock"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0
	}
	return pid
}
