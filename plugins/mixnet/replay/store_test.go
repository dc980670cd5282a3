package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// small are options for tests: a 10,000-tag filter at 1% (12 KB).
func small(d Durability) Options {
	return Options{ExpectedTags: 10_000, FalsePositiveRate: 0.01, Durability: d}
}

func open(t *testing.T, dir string, current uint64, o Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dir, current, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seen(t *testing.T, s *Store, epoch uint64, tag [TagSize]byte) bool {
	t.Helper()
	ok, err := s.Seen(t.Context(), epoch, tag)
	if err != nil {
		t.Fatalf("Seen(%d, %x): %v", epoch, tag[:4], err)
	}
	return ok
}

func tagN(i int) [TagSize]byte {
	var t [TagSize]byte
	copy(t[:], fmt.Sprintf("tag-%d", i))
	return t
}

func TestSeenTestAndSet(t *testing.T) {
	for _, d := range []Durability{SyncFull, SyncWrite} {
		t.Run(fmt.Sprint("durability ", d), func(t *testing.T) {
			s := open(t, t.TempDir(), 10, small(d))
			defer s.Close()
			for i := range 50 {
				if seen(t, s, 10, tagN(i)) {
					t.Fatalf("new tag %d reported as seen", i)
				}
			}
			for i := range 50 {
				if !seen(t, s, 10, tagN(i)) {
					t.Fatalf("replayed tag %d reported as new", i)
				}
			}
			// Epochs have separate filters: the tag is new under the
			// next epoch's key.
			if seen(t, s, 11, tagN(0)) {
				t.Fatal("a tag of epoch 10 is seen in epoch 11")
			}
			st := s.Stats()
			if st.Inserted != 51 || st.Replays != 50 || st.Errors != 0 || len(st.Epochs) != 2 || st.Epochs[0].Tags != 50 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// Every tag is reported new exactly once however many callers race, and
// the group commit gets every acknowledged tag to disk.
func TestSeenConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 5, small(SyncFull))
	const workers, tags = 8, 40
	var news atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tags {
				// Every worker submits every tag, in a different order.
				ok, err := s.Seen(context.Background(), 5, tagN((i+w*7)%tags))
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					news.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if news.Load() != tags {
		t.Fatalf("%d tags reported new, want %d", news.Load(), tags)
	}
	// Abandon without Close: the log must hold them all.
	s2 := open(t, dir, 5, small(SyncFull))
	defer s2.Close()
	for i := range tags {
		if !seen(t, s2, 5, tagN(i)) {
			t.Fatalf("tag %d lost", i)
		}
	}
}

// Callers that arrive while a commit is in progress share the next one.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 5, small(SyncFull))
	s.mu.Lock()
	ep := s.epochs[5]
	s.mu.Unlock()
	if err := s.acquire(t.Context(), ep); err != nil { // a commit in progress
		t.Fatal(err)
	}
	const callers = 20
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			ok, err := s.Seen(context.Background(), 5, tagN(i))
			if err == nil && ok {
				err = fmt.Errorf("tag %d seen", i)
			}
			errs <- err
		}()
	}
	for {
		s.mu.Lock()
		n := ep.appended
		s.mu.Unlock()
		if n == callers {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errs:
		t.Fatalf("a caller returned before its tag was committed: %v", err)
	default:
	}
	s.release(ep) // the commit in progress ends
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Commits != 1 || st.Inserted != callers {
		t.Fatalf("%d tags took %d commits, want 1", st.Inserted, st.Commits)
	}
	s2 := open(t, dir, 5, small(SyncFull))
	defer s2.Close()
	for i := range callers {
		if !seen(t, s2, 5, tagN(i)) {
			t.Fatalf("tag %d not in the log", i)
		}
	}
}

// TestSeenBatch: one SeenBatch tests and sets its tags in order (a tag
// twice in the batch is new once), answers errors per tag, commits each
// epoch's new tags once, and what it reported as new survives a crash
// (the store abandoned, not closed).
func TestSeenBatch(t *testing.T) {
	type want struct {
		seen bool
		err  error
	}
	for _, tt := range []struct {
		name    string
		d       Durability
		before  []Check // Seen one by one before the batch
		batch   []Check
		want    []want
		commits uint64 // commits of the batch
	}{
		{
			name:  "new tags, one commit",
			d:     SyncFull,
			batch: []Check{{5, tagN(1)}, {5, tagN(2)}, {5, tagN(3)}},
			want:  []want{{false, nil}, {false, nil}, {false, nil}}, commits: 1,
		},
		{
			name:  "two copies in one batch",
			d:     SyncFull,
			batch: []Check{{5, tagN(1)}, {5, tagN(2)}, {5, tagN(1)}},
			want:  []want{{false, nil}, {false, nil}, {true, nil}}, commits: 1,
		},
		{
			name:   "a replay of an earlier batch",
			d:      SyncWrite,
			before: []Check{{5, tagN(2)}},
			batch:  []Check{{5, tagN(1)}, {5, tagN(2)}},
			want:   []want{{false, nil}, {true, nil}}, commits: 1,
		},
		{
			name:  "three epochs, one commit each",
			d:     SyncFull,
			batch: []Check{{4, tagN(1)}, {5, tagN(1)}, {6, tagN(1)}, {5, tagN(2)}},
			want:  []want{{false, nil}, {false, nil}, {false, nil}, {false, nil}}, commits: 3,
		},
		{
			name:  "epochs outside the window",
			d:     SyncFull,
			batch: []Check{{3, tagN(1)}, {5, tagN(1)}, {7, tagN(1)}},
			want:  []want{{true, ErrExpired}, {false, nil}, {true, ErrFuture}}, commits: 1,
		},
		{
			name:   "only replays: no commit",
			d:      SyncFull,
			before: []Check{{5, tagN(1)}},
			batch:  []Check{{5, tagN(1)}, {5, tagN(1)}},
			want:   []want{{true, nil}, {true, nil}}, commits: 0,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 5, small(tt.d))
			for _, c := range tt.before {
				seen(t, s, c.Epoch, c.Tag)
			}
			c0 := s.Stats().Commits
			prefix := []Verdict{{Seen: true}} // SeenBatch appends after it
			got := s.SeenBatch(t.Context(), tt.batch, prefix)
			if len(got) != 1+len(tt.batch) || !got[0].Seen {
				t.Fatalf("SeenBatch returned %d verdicts after the prefix %v, want %d", len(got)-1, got[0], len(tt.batch))
			}
			for i, w := range tt.want {
				v := got[1+i]
				if v.Seen != w.seen || !errors.Is(v.Err, w.err) || (w.err == nil) != (v.Err == nil) {
					t.Fatalf("check %d (epoch %d, %s): got seen %v, err %v; want %v, %v", i, tt.batch[i].Epoch, tt.batch[i].Tag[:5], v.Seen, v.Err, w.seen, w.err)
				}
			}
			if n := s.Stats().Commits - c0; n != tt.commits {
				t.Fatalf("the batch took %d commits, want %d", n, tt.commits)
			}
			// Abandoned, as a crash would: every tag reported as new is
			// seen after reopening.
			s2 := open(t, dir, 5, small(tt.d))
			defer s2.Close()
			for i, w := range tt.want {
				if w.seen || w.err != nil {
					continue
				}
				if !seen(t, s2, tt.batch[i].Epoch, tt.batch[i].Tag) {
					t.Fatalf("tag %d of the batch lost over a crash", i)
				}
			}
		})
	}
}

// A batch whose commit fails reports every new tag of it as seen with the
// error, and none as new: the caller forwards none of those packets.
func TestSeenBatchCommitFails(t *testing.T) {
	s := open(t, t.TempDir(), 5, small(SyncFull))
	defer s.Close()
	s.mu.Lock()
	ep := s.epochs[5]
	s.mu.Unlock()
	// The log is closed under the store: the next write fails.
	if err := ep.log.Close(); err != nil {
		t.Fatal(err)
	}
	got := s.SeenBatch(t.Context(), []Check{{5, tagN(1)}, {5, tagN(2)}, {5, tagN(1)}}, nil)
	for i, v := range got {
		if !v.Seen {
			t.Fatalf("check %d reported new although the commit failed", i)
		}
	}
	for _, i := range []int{0, 1} {
		if !errors.Is(got[i].Err, ErrFailed) {
			t.Fatalf("check %d: err %v, want ErrFailed", i, got[i].Err)
		}
	}
	if got[2].Err != nil {
		t.Fatalf("the copy in the batch: err %v, want a plain replay", got[2].Err)
	}
	if st := s.Stats(); st.Errors != 2 {
		t.Fatalf("%d errors counted, want 2", st.Errors)
	}
}

// Close while callers are in Seen: every tag acknowledged as new, before
// or during Close, is still seen after reopening, and callers that come
// after it get ErrClosed.
func TestCloseDuringSeen(t *testing.T) {
	for _, d := range []Durability{SyncFull, SyncWrite} {
		t.Run(fmt.Sprint("durability ", d), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 5, small(d))
			const workers = 6
			acked := make([][]int, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						tag := tagN(w*1_000_000 + i)
						ok, err := s.Seen(context.Background(), 5, tag)
						if err != nil {
							if !ok || !errors.Is(err, ErrClosed) {
								t.Errorf("Seen after Close: %v, %v", ok, err)
							}
							return
						}
						if ok {
							// A false positive: the 10,000-tag filter
							// fills up in this loop.
							continue
						}
						// Acknowledged, perhaps while Close runs:
						// Close's snapshot must hold it then.
						acked[w] = append(acked[w], i)
					}
				}()
			}
			time.Sleep(30 * time.Millisecond)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			s2 := open(t, dir, 5, small(d))
			defer s2.Close()
			total := 0
			for w, list := range acked {
				for _, i := range list {
					if !seen(t, s2, 5, tagN(w*1_000_000+i)) {
						t.Fatalf("worker %d tag %d acknowledged but lost over Close", w, i)
					}
				}
				total += len(list)
			}
			if total == 0 {
				t.Fatal("no tag was acknowledged before Close")
			}
			t.Logf("%d tags acknowledged before Close, all kept", total)
		})
	}
}

// Rotating an epoch out while callers are in Seen for it: they finish or
// get ErrExpired, and the epoch's files are gone.
func TestRotateDuringSeen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4, small(SyncFull))
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ok, err := s.Seen(context.Background(), 4, tagN(w*1_000_000+i))
				if err != nil {
					if !ok || !errors.Is(err, ErrExpired) {
						t.Errorf("Seen during rotation: %v, %v", ok, err)
					}
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Rotate(t.Context(), 6); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, name := range []string{snapshotName(4), logName(4)} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after rotation: %v", name, err)
		}
	}
}

func TestRestart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close bool // Close before reopening; otherwise abandon, as a crash would
		d     Durability
		snap  int64 // SnapshotLogBytes, small to snapshot mid-run
	}{
		{"close", true, SyncFull, 0},
		{"abandon", false, SyncFull, 0},
		{"abandon, write only", false, SyncWrite, 0},
		{"abandon after snapshots", false, SyncWrite, 10 * recordSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := small(tt.d)
			o.SnapshotLogBytes = tt.snap
			s := open(t, dir, 7, o)
			for i := range 105 {
				seen(t, s, 6+uint64(i%3), tagN(i))
			}
			if tt.close {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Seen(t.Context(), 7, tagN(0)); !errors.Is(err, ErrClosed) {
					t.Fatalf("Seen after Close: %v", err)
				}
				// Close snapshots: the logs are empty.
				for e := uint64(6); e <= 8; e++ {
					if fi, err := os.Stat(filepath.Join(dir, logName(e))); err != nil || fi.Size() != 0 {
						t.Fatalf("epoch %d log after Close: %v %v", e, fi.Size(), err)
					}
				}
			}
			if tt.snap > 0 {
				fi, err := os.Stat(filepath.Join(dir, logName(7)))
				if err != nil || fi.Size() >= tt.snap+recordSize {
					t.Fatalf("log of %d bytes not snapshotted at %d (%v)", fi.Size(), tt.snap, err)
				}
			}
			s2 := open(t, dir, 7, o)
			defer s2.Close()
			for i := range 105 {
				if !seen(t, s2, 6+uint64(i%3), tagN(i)) {
					t.Fatalf("tag %d of epoch %d lost over the restart", i, 6+i%3)
				}
			}
			st := s2.Stats()
			for _, e := range st.Epochs {
				if e.Tags != 35 {
					t.Fatalf("epoch %d holds %d tags after restart, want 35", e.Epoch, e.Tags)
				}
			}
		})
	}
}

// The helper process of TestKilledProcess: it acknowledges tags on
// stdout until it is killed.
func TestKilledProcessHelper(t *testing.T) {
	dir := os.Getenv("REPLAY_KILL_DIR")
	if dir == "" {
		t.Skip("helper process for TestKilledProcess")
	}
	s, err := Open(context.Background(), dir, 3, small(SyncWrite))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if ok, err := s.Seen(context.Background(), 3, tagN(i)); err != nil || ok {
			fmt.Fprintln(w, "error", ok, err)
			w.Flush()
			os.Exit(1)
		}
		fmt.Fprintln(w, "ack", i)
		w.Flush()
	}
}

// A relay killed with SIGKILL while acknowledging tags loses none of the
// acknowledged ones.
func TestKilledProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REPLAY_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := -1
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "ack %d", &n); err != nil {
			cmd.Process.Kill()
			t.Fatalf("helper said %q", sc.Text())
		}
		acked = n
		if acked == 300 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	cmd.Wait()
	if acked != 300 {
		t.Fatalf("helper acknowledged up to %d", acked)
	}
	s := open(t, dir, 3, small(SyncWrite))
	defer s.Close()
	for i := 0; i <= acked; i++ {
		if !seen(t, s, 3, tagN(i)) {
			t.Fatalf("acknowledged tag %d lost when the process was killed", i)
		}
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 10, small(SyncWrite))
	defer s.Close()
	for e := uint64(9); e <= 11; e++ {
		seen(t, s, e, tagN(int(e)))
	}
	for _, tt := range []struct {
		epoch uint64
		want  error
	}{{8, ErrExpired}, {0, ErrExpired}, {12, ErrFuture}, {1 << 40, ErrFuture}} {
		ok, err := s.Seen(t.Context(), tt.epoch, tagN(1))
		if !errors.Is(err, tt.want) || !ok {
			t.Fatalf("Seen(epoch %d) = %v, %v; want true, %v", tt.epoch, ok, err, tt.want)
		}
	}
	exists := func(e uint64) bool {
		_, err := os.Stat(filepath.Join(dir, snapshotName(e)))
		return err == nil
	}
	if err := s.Rotate(t.Context(), 12); err != nil {
		t.Fatal(err)
	}
	if exists(9) || exists(10) || !exists(11) || !exists(12) {
		t.Fatalf("after rotating to 12: files of 9 %v, 10 %v, 11 %v, 12 %v", exists(9), exists(10), exists(11), exists(12))
	}
	if _, err := os.Stat(filepath.Join(dir, logName(10))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("log of epoch 10 survived rotation: %v", err)
	}
	if !seen(t, s, 11, tagN(11)) {
		t.Fatal("epoch 11's tag lost in rotation")
	}
	if _, err := s.Seen(t.Context(), 10, tagN(10)); !errors.Is(err, ErrExpired) {
		t.Fatalf("Seen(10) after rotating to 12: %v", err)
	}
	if err := s.Rotate(t.Context(), 11); !errors.Is(err, ErrConfig) {
		t.Fatalf("rotating backwards: %v", err)
	}
	if st := s.Stats(); st.Current != 12 || len(st.Epochs) != 2 {
		t.Fatalf("stats after rotation: %+v", st)
	}
	// Reopening far later deletes everything old.
	s.Close()
	s2 := open(t, dir, 100, small(SyncWrite))
	defer s2.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if ep, ok := parseName(e.Name()); ok && ep < 99 {
			t.Fatalf("file %s of an expired epoch survived", e.Name())
		}
	}
}

// A filter given more tags than it was sized for keeps answering, with a
// rising false-positive rate that Stats reports.
func TestOverCapacity(t *testing.T) {
	s := open(t, t.TempDir(), 1, Options{ExpectedTags: 100, FalsePositiveRate: 0.01, Durability: SyncWrite})
	defer s.Close()
	news := 0
	for i := range 1000 {
		if !seen(t, s, 1, tagN(i)) {
			news++
		}
	}
	st := s.Stats()
	e := st.Epochs[0]
	if !e.OverCapacity || e.Tags != uint64(news) || st.OverCapacityInserts != uint64(news-100) {
		t.Fatalf("over capacity: %d new, stats %+v", news, st)
	}
	if e.FalsePositiveRate < 0.5 {
		t.Fatalf("ten times capacity: estimated false-positive rate %v", e.FalsePositiveRate)
	}
	t.Logf("1000 tags into a 100-tag filter: %d reported new, estimated false-positive rate %.3f", news, e.FalsePositiveRate)
}

func TestCorruptFiles(t *testing.T) {
	type files struct{ dir string }
	snap := func(f files) string { return filepath.Join(f.dir, snapshotName(4)) }
	logf := func(f files) string { return filepath.Join(f.dir, logName(4)) }
	edit := func(t *testing.T, path string, fn func([]byte) []byte) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fn(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name    string
		damage  func(t *testing.T, f files)
		corrupt bool // Open must fail with ErrCorrupt; otherwise it recovers
	}{
		{"bit flipped in the filter", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { b[snapHeaderSize+5] ^= 1; return b })
		}, true},
		{"snapshot truncated", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { return b[:len(b)-9] })
		}, true},
		{"snapshot header only", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { return b[:40] })
		}, true},
		{"bad magic", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { b[0] = 'X'; return b })
		}, true},
		{"header claims a huge filter", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { b[24], b[25] = 0, 0x40; return b })
		}, true},
		{"snapshot of another epoch", func(t *testing.T, f files) {
			edit(t, snap(f), func(b []byte) []byte { b[15] ^= 1; return b })
		}, true},
		{"log without snapshot", func(t *testing.T, f files) {
			if err := os.Remove(snap(f)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"damaged record long before the end", func(t *testing.T, f files) {
			edit(t, logf(f), func(b []byte) []byte {
				for i := range maxBatchRecords + 10 {
					tag := tagN(1000 + i)
					b = appendRecord(b, 4, &tag)
				}
				b[3] ^= 1
				return b
			})
		}, true},
		{"torn tail: partial record", func(t *testing.T, f files) {
			edit(t, logf(f), func(b []byte) []byte { return append(b, 1, 2, 3) })
		}, false},
		{"torn tail: zeroed last records", func(t *testing.T, f files) {
			edit(t, logf(f), func(b []byte) []byte { return append(b, make([]byte, 3*recordSize)...) })
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := small(SyncWrite)
			s := open(t, dir, 4, o)
			for i := range 20 {
				seen(t, s, 4, tagN(i))
			}
			// Abandoned, not closed: the tags are in the log.
			tt.damage(t, files{dir})
			_, err := Open(t.Context(), dir, 4, o)
			if !tt.corrupt {
				if err != nil {
					t.Fatalf("Open: %v, want recovery", err)
				}
				s2 := open(t, dir, 4, o)
				defer s2.Close()
				for i := range 20 {
					if !seen(t, s2, 4, tagN(i)) {
						t.Fatalf("tag %d lost in recovery", i)
					}
				}
				if fi, _ := os.Stat(logf(files{dir})); fi.Size()%recordSize != 0 {
					t.Fatalf("torn tail left in the log (%d bytes)", fi.Size())
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			// With DiscardCorrupt the epoch is lost, durably, and every
			// packet of it is refused until it rotates out.
			o.DiscardCorrupt = true
			s2 := open(t, dir, 4, o)
			for _, e := range []uint64{4} {
				ok, err := s2.Seen(t.Context(), e, tagN(999))
				if !ok || !errors.Is(err, ErrEpochLost) {
					t.Fatalf("Seen in a lost epoch: %v, %v", ok, err)
				}
			}
			if st := s2.Stats(); !st.Epochs[0].Lost || st.Errors != 1 {
				t.Fatalf("stats of a lost epoch: %+v", st)
			}
			if seen(t, s2, 5, tagN(1)) {
				t.Fatal("the next epoch is affected")
			}
			s2.Close()
			s3 := open(t, dir, 4, small(SyncWrite))
			if _, err := s3.Seen(t.Context(), 4, tagN(999)); !errors.Is(err, ErrEpochLost) {
				t.Fatalf("lost epoch after reopen: %v", err)
			}
			if err := s3.Rotate(t.Context(), 6); err != nil {
				t.Fatal(err)
			}
			s3.Close()
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if ep, ok := parseName(e.Name()); ok && ep == 4 {
					t.Fatalf("file %s of the lost epoch survived rotation", e.Name())
				}
			}
		})
	}
}

func TestSeenContextAndOptions(t *testing.T) {
	s := open(t, t.TempDir(), 2, small(SyncFull))
	defer s.Close()
	s.mu.Lock()
	ep := s.epochs[2]
	s.mu.Unlock()
	// Hold the writer token: a caller whose context ends while it waits
	// gets the context's error, and true.
	if err := s.acquire(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	ok, err := s.Seen(ctx, 2, tagN(1))
	s.release(ep)
	if !ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Seen with an expiring context: %v, %v", ok, err)
	}
	for _, o := range []Options{
		{ExpectedTags: 10, FalsePositiveRate: 2},
		{Durability: 7},
		{SnapshotLogBytes: -1},
		{ExpectedTags: 1 << 40, FalsePositiveRate: 1e-9},
	} {
		if _, err := Open(t.Context(), t.TempDir(), 0, o); !errors.Is(err, ErrConfig) {
			t.Fatalf("Open(%+v): %v, want ErrConfig", o, err)
		}
	}
	// Epoch 0 has no previous epoch to expire below.
	s0 := open(t, t.TempDir(), 0, small(SyncWrite))
	defer s0.Close()
	if seen(t, s0, 0, tagN(1)) || seen(t, s0, 1, tagN(1)) {
		t.Fatal("new tags seen in epochs 0 and 1")
	}
}
