package contacts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashChildEnv, when set, makes the test binary run crashChild on the
// database file it names instead of the tests.
const crashChildEnv = "STRATA_CONTACTS_CRASH_CHILD_DB"

// Parameters of the crash child's workload, shared with the parent.
const (
	crashIdentities = 25            // the child cycles through this many contacts
	crashBaseIssued = 1_700_000_000 // issue time of the child's first Put
	crashMaxPuts    = 100_000       // the child gives up if never killed
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// crashCard is the card the crash child puts for contact k at issue time
// issued. Its privacy section changes with every issue.
func crashCard(k int, issued int64) (testSigner, *Card) {
	s := newSigner(1000 + k)
	c := testCard(s, fmt.Sprintf("contact-%02d", k), issued)
	c.Sections[layerPrivacy] = Section{Plugin: "whisper", Data: crashAddress(k, issued)}
	return s, c
}

func crashAddress(k int, issued int64) []byte {
	return fmt.Appendf(nil, "address-%d-%d", k, issued)
}

// crashChild puts ever newer cards into the store at path until it is
// killed, and after each Put that returns nil writes "ack <k> <issued>" to
// standard output. Issue times continue from what the store already holds,
// so that several children can run one after another on one database.
func crashChild(path string) int {
	ctx := context.Background()
	st, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	next := int64(crashBaseIssued)
	cards, err := st.List(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, c := range cards {
		next = max(next, c.Issued.Unix()+1)
	}
	fmt.Println("ready")
	for i := range crashMaxPuts {
		issued := next + int64(i)
		k := int(issued % crashIdentities)
		s, c := crashCard(k, issued)
		b, err := c.Sign(s)
		if err == nil {
			c, err = Decode(b)
		}
		if err == nil {
			err = st.Put(ctx, c)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "put %d: %v\n", i, err)
			return 1
		}
		// Unbuffered: the parent sees the acknowledgement before the
		// next Put begins.
		fmt.Printf("ack %d %d\n", k, issued)
	}
	return 2
}

// TestStoreSurvivesKill runs the store in a child process, kills it with
// SIGKILL while it is putting cards, and checks that every Put the child
// saw succeed is in the database when it is opened again, and that the
// database is intact. It does so several times on the same database, each
// round killing the child after a different number of Puts.
func TestStoreSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), FileName)
	acked := map[int]int64{} // contact -> latest acknowledged issue time
	for round, killAfter := range []int{1, 37, 150, 5, 80} {
		n := runCrashChild(t, path, killAfter, acked)
		t.Logf("round %d: child acknowledged %d Puts before it died", round, n)
		checkAcked(t, path, acked)
	}
}

// runCrashChild runs crashChild on path, kills it once it has acknowledged
// killAfter Puts, and records in acked every acknowledgement it wrote before
// it died. It returns the number of acknowledgements.
func runCrashChild(t *testing.T, path string, killAfter int, acked map[int]int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	n := 0
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ack" {
			t.Fatalf("child wrote %q", line)
		}
		k, err1 := strconv.Atoi(f[1])
		issued, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("child wrote %q: %v", line, err)
		}
		acked[k] = max(acked[k], issued)
		n++
		if n == killAfter && !killed {
			// The child goes on putting while the signal is on its way,
			// so the kill lands at an arbitrary point of a Put. Reading
			// on collects what it acknowledged meanwhile.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read child output: %v", err)
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed, after %d Puts: %v\n%s", n, err, stderr.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Exited() {
		t.Fatalf("child was not killed by a signal: %v\n%s", err, stderr.String())
	}
	return n
}

// checkAcked opens the store at path and checks that it holds, for every
// contact in acked, a card at least as new as the acknowledged one, with its
// section indexed, and that the database passes SQLite's integrity check.
func checkAcked(t *testing.T, path string, acked map[int]int64) {
	t.Helper()
	ctx := t.Context()
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer st.Close()
	var integrity string
	if err := st.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Fatalf("integrity check after kill: %s", integrity)
	}
	for k, issued := range acked {
		s, _ := crashCard(k, issued)
		c, err := st.Get(ctx, s.Public())
		if err != nil {
			t.Fatalf("contact %d, acknowledged at issue time %d: Get = %v", k, issued, err)
		}
		// The card can be newer: the child may have committed a Put and
		// died before acknowledging it.
		if got := c.Issued.Unix(); got < issued {
			t.Fatalf("contact %d: stored card issued %d, but %d was acknowledged", k, got, issued)
		}
		byAddr, err := st.LookupSection(ctx, layerPrivacy, crashAddress(k, c.Issued.Unix()))
		if err != nil {
			t.Fatalf("contact %d: stored card's section not indexed: %v", k, err)
		}
		if !byAddr.IdentityKey.Equal(s.Public()) {
			t.Fatalf("contact %d: section index points to another contact", k)
		}
	}
}
