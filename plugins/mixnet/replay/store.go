// Package replay is a relay's Sphinx replay detector: a per-epoch
// test-and-set store of packet tags (SHA-512/256 of the packet's group
// element) with bounded memory, kept on disk so that a restart does not
// make already-forwarded packets replayable.
//
// Each epoch has a Bloom filter sized for Options.ExpectedTags at
// Options.FalsePositiveRate (see Sizing for the formula). A tag Seen
// reports as new is in the epoch's append-only log — written, and with
// SyncFull fsynced, group-committed with the other tags of a SeenBatch and
// with concurrent callers — before Seen (or SeenBatch) returns, so nothing
// acknowledged is lost to a crash; the filter itself
// is snapshotted (atomically replaced, fsynced) whenever the log has grown
// to half the filter's size, and the log then restarts empty. A filter
// that receives more tags than it was sized for keeps working: its
// false-positive rate rises (FalsePositiveRate) and Stats counts the
// inserts over capacity — it never panics.
//
// Only the epochs current-1, current and current+1 are live: Rotate moves
// the window and deletes the files of older epochs, whose Sphinx keys the
// relay deletes with them; Seen refuses epochs outside the window. A
// Store owns its directory; the node's data-directory lock keeps a second
// process out.
package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// TagSize is the size of a replay tag (a SHA-512/256 output).
const TagSize = 32

// Defaults for Options.
const (
	// DefaultExpectedTags: 2 million tags per epoch, 1,667 packets per
	// second for a 20-minute epoch.
	DefaultExpectedTags = 2_000_000
	// DefaultFalsePositiveRate: one honest packet in a million dropped
	// as a replay, at full capacity. With the default capacity the
	// filter takes 7.2 MB per epoch, three epochs at most in memory.
	DefaultFalsePositiveRate = 1e-6
)

// maxBatchRecords bounds one group commit's write, so that a torn write
// can damage only the last maxBatchRecords records of a log.
const maxBatchRecords = 4096

// minSnapshotLogBytes is the least log size that triggers a snapshot.
const minSnapshotLogBytes = 64 << 10

// Errors, wrapped with context; test them with errors.Is.
var (
	// ErrConfig: the options are invalid.
	ErrConfig = errors.New("replay: bad configuration")
	// ErrCorrupt: an epoch's files are damaged (bad checksum, impossible
	// header, damaged log records before the last batch).
	ErrCorrupt = errors.New("replay: corrupt store file")
	// ErrEpochLost: the epoch's files were corrupt and discarded
	// (Options.DiscardCorrupt); its tags are unknown, so every packet of
	// that epoch must be dropped until the epoch rotates out.
	ErrEpochLost = errors.New("replay: epoch's replay state was lost")
	// ErrExpired: the epoch is older than current-1; its key is gone.
	ErrExpired = errors.New("replay: epoch has expired")
	// ErrFuture: the epoch is later than current+1.
	ErrFuture = errors.New("replay: epoch is not live yet")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("replay: store closed")
	// ErrFailed: a write to the epoch's files failed; the epoch refuses
	// every packet from then on (after a failed fsync the file's state is
	// unknown).
	ErrFailed = errors.New("replay: store write failed")
)

// Durability says when Seen may report a tag as new.
type Durability int

const (
	// SyncFull: after the tag's log record is fsynced (group-committed
	// with concurrent callers). Survives power loss.
	SyncFull Durability = iota
	// SyncWrite: after the record is written to the file (the kernel's
	// page cache). Survives a killed process, not a power loss or kernel
	// crash; a power loss may then also leave a log that Open reports as
	// corrupt.
	SyncWrite
)

// Options configure a Store. Zero fields take the defaults.
type Options struct {
	// ExpectedTags is how many distinct tags one epoch's filter is sized
	// for; DefaultExpectedTags if zero. A filter keeps working past it,
	// at a rising false-positive rate.
	ExpectedTags uint64
	// FalsePositiveRate is the rate of new tags reported as seen once
	// ExpectedTags are in the filter; DefaultFalsePositiveRate if zero.
	FalsePositiveRate float64
	// Durability is when Seen may report a tag as new; SyncFull if zero.
	Durability Durability
	// SnapshotLogBytes is the log size at which the filter is
	// snapshotted and the log restarted; half the filter's size (at least
	// 64 KiB) if zero.
	SnapshotLogBytes int64
	// DiscardCorrupt, if set, makes Open (and Rotate, for epochs loaded
	// later) move a corrupt epoch's files aside and mark the epoch lost
	// (ErrEpochLost for all its packets) instead of failing with
	// ErrCorrupt.
	DiscardCorrupt bool
	// Rand supplies the filters' hash keys; crypto/rand if nil.
	Rand io.Reader
}

// Store is a per-epoch replay tag store. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	m    uint64
	k    uint32

	mu      sync.Mutex
	current uint64
	epochs  map[uint64]*epochState
	closed  bool
	stats   counters
}

// counters are the store's running totals, guarded by Store.mu.
type counters struct {
	inserted, replays, overCapacity, errors, commits uint64
}

// epochState is one live epoch. Fields are guarded by Store.mu except
// where noted.
type epochState struct {
	epoch  uint64
	f      *filter
	lost   bool
	failed error
	closed bool

	pending  []byte // log records not yet handed to a writer
	spare    []byte // the writer's buffer when it is not writing
	appended uint64 // records appended to pending, ever
	taken    uint64 // records handed to a writer, ever
	durable  uint64 // records written (and synced) or snapshotted, ever

	// writing is true while one caller is the writer: it writes pending
	// records, syncs, snapshots, or closes the epoch's files. progress is
	// closed (and replaced) whenever a writer finishes, if watched says
	// that someone waits on it.
	writing  bool
	progress chan struct{}
	watched  bool
	// Used only by the writer:
	log      *os.File
	logBytes int64
}

// Open opens (creating if needed) the store in dir, with current as the
// current epoch: files of epochs before current-1 are deleted, and the
// current epoch's state is loaded (or created).
func Open(ctx context.Context, dir string, current uint64, opts Options) (*Store, error) {
	if opts.ExpectedTags == 0 {
		opts.ExpectedTags = DefaultExpectedTags
	}
	if opts.FalsePositiveRate == 0 {
		opts.FalsePositiveRate = DefaultFalsePositiveRate
	}
	if opts.Durability != SyncFull && opts.Durability != SyncWrite {
		return nil, fmt.Errorf("%w: durability %d", ErrConfig, opts.Durability)
	}
	if opts.SnapshotLogBytes < 0 {
		return nil, fmt.Errorf("%w: snapshot log bytes %d", ErrConfig, opts.SnapshotLogBytes)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	m, k, err := Sizing(opts.ExpectedTags, opts.FalsePositiveRate)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open replay store: %w", err)
	}
	s := &Store{dir: dir, opts: opts, m: m, k: k, current: current, epochs: map[uint64]*epochState{}}
	if err := s.removeExpired(); err != nil {
		return nil, fmt.Errorf("open replay store: %w", err)
	}
	s.mu.Lock()
	_, err = s.epochLocked(ctx, current)
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open replay store: %w", err)
	}
	return s, nil
}

// Seen records tag for epoch and reports whether it was recorded before
// (a replay, or with probability about the configured false-positive rate
// a new tag that collides). A tag reported as new is durable (see
// Durability) before Seen returns. On error Seen returns true as well, so
// that a caller that drops every "seen" packet fails closed; the errors
// are ErrExpired and ErrFuture for epochs outside the live window,
// ErrEpochLost, ErrFailed, ErrClosed, or the context's error (the tag may
// then be recorded or not; the packet must be dropped). Seen is SeenBatch
// of one tag.
func (s *Store) Seen(ctx context.Context, epoch uint64, tag [TagSize]byte) (bool, error) {
	var buf [1]Verdict
	v := s.SeenBatch(ctx, []Check{{Epoch: epoch, Tag: tag}}, buf[:0])[0]
	return v.Seen, v.Err
}

// Check is one tag for SeenBatch: the tag and the epoch whose key opened
// its packet.
type Check struct {
	Epoch uint64
	Tag   [TagSize]byte
}

// Verdict is SeenBatch's answer for one Check, what Seen returns for it.
type Verdict struct {
	// Seen is true for a tag recorded before (a replay, or a false
	// positive), and on error.
	Seen bool
	// Err, if not nil, is why the tag could not be checked or made
	// durable; the packet must be dropped.
	Err error
}

// SeenBatch is Seen for many tags with one commit (group commit): it
// records every new tag in its epoch's filter and log, then makes all of
// them durable at once — one write and, with SyncFull, one fsync per epoch
// involved — before it returns. A relay passes it the tags of the packets
// that arrived together, so that a burst of packets costs one fsync
// instead of one each. The tags are tested and set in order: a tag that
// appears twice in checks is new at most at its first place, and seen at
// the second. It appends one Verdict per check to dst and returns it. A
// tag whose commit failed is reported as seen with the error, as Seen
// does; it stays in the filter, so that a later copy is dropped too.
func (s *Store) SeenBatch(ctx context.Context, checks []Check, dst []Verdict) []Verdict {
	base := len(dst)
	// The highest record of each epoch this batch appended (the live
	// window holds three epochs; append grows past it should that change).
	type wait struct {
		ep  *epochState
		seq uint64
	}
	var buf [3]wait
	waits := buf[:0]
	s.mu.Lock()
	for i := range checks {
		c := &checks[i]
		ep, err := s.epochLocked(ctx, c.Epoch)
		if err == nil && ep.lost {
			err = fmt.Errorf("epoch %d: %w", c.Epoch, ErrEpochLost)
		}
		if err == nil && ep.failed != nil {
			err = ep.failed
		}
		if err != nil {
			s.stats.errors++
			dst = append(dst, Verdict{Seen: true, Err: err})
			continue
		}
		if ep.f.insert(&c.Tag) {
			s.stats.replays++
			dst = append(dst, Verdict{Seen: true})
			continue
		}
		s.stats.inserted++
		if ep.f.count > ep.f.capacity {
			s.stats.overCapacity++
		}
		ep.pending = appendRecord(ep.pending, c.Epoch, &c.Tag)
		ep.appended++
		dst = append(dst, Verdict{})
		j := slices.IndexFunc(waits, func(w wait) bool { return w.ep == ep })
		if j < 0 {
			waits = append(waits, wait{ep: ep})
			j = len(waits) - 1
		}
		waits[j].seq = ep.appended
	}
	s.mu.Unlock()
	for _, w := range waits {
		err := s.commit(ctx, w.ep, w.seq)
		if err == nil {
			continue
		}
		n := uint64(0)
		for i := range checks {
			if v := &dst[base+i]; !v.Seen && v.Err == nil && checks[i].Epoch == w.ep.epoch {
				*v = Verdict{Seen: true, Err: err}
				n++
			}
		}
		s.mu.Lock()
		s.stats.errors += n
		s.mu.Unlock()
	}
	return dst
}

// commit returns once record seq of ep is durable. If no one is writing,
// the caller becomes the writer and takes every pending record (up to
// maxBatchRecords); otherwise it waits for the writer to finish. Waiting
// callers do not queue for the writer role: when a write ends they all
// wake, those whose records it carried return (and can submit their next
// tag at once), and one of the rest writes everything that arrived
// meanwhile — so a batch holds what arrived during one fsync.
func (s *Store) commit(ctx context.Context, ep *epochState, seq uint64) error {
	for {
		s.mu.Lock()
		switch {
		case ep.durable >= seq:
			s.mu.Unlock()
			return nil
		case ep.failed != nil:
			err := ep.failed
			s.mu.Unlock()
			return err
		case ep.closed:
			s.mu.Unlock()
			return fmt.Errorf("epoch %d: %w", ep.epoch, ErrExpired)
		case ep.writing:
			ch := ep.progress
			ep.watched = true
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return fmt.Errorf("replay commit: %w", ctx.Err())
			}
		}
		ep.writing = true
		s.mu.Unlock()
		err := s.writePending(ep)
		s.release(ep)
		if err != nil {
			return err
		}
	}
}

// acquire makes the caller the epoch's writer, waiting for the current
// one to finish.
func (s *Store) acquire(ctx context.Context, ep *epochState) error {
	s.mu.Lock()
	for ep.writing {
		ch := ep.progress
		ep.watched = true
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	ep.writing = true
	s.mu.Unlock()
	return nil
}

// release ends the caller's turn as writer and wakes every waiter.
func (s *Store) release(ep *epochState) {
	s.mu.Lock()
	ep.writing = false
	if ep.watched { // a channel per wake-up only when someone waits
		close(ep.progress)
		ep.progress = make(chan struct{})
		ep.watched = false
	}
	s.mu.Unlock()
}

// writePending writes (and syncs) one batch of pending records and
// snapshots if the log has grown enough. The caller is the writer.
func (s *Store) writePending(ep *epochState) error {
	s.mu.Lock()
	if ep.closed || ep.failed != nil {
		s.mu.Unlock()
		return nil // the caller's loop reports it
	}
	n := min(uint64(len(ep.pending)/recordSize), maxBatchRecords)
	if n == 0 {
		s.mu.Unlock()
		return nil
	}
	// Two buffers take turns: the writer writes one while callers append
	// to the other, so the steady state allocates nothing.
	var buf []byte
	if k := int(n) * recordSize; k == len(ep.pending) {
		buf, ep.pending = ep.pending, ep.spare[:0]
	} else {
		buf = append(ep.spare[:0], ep.pending[:k]...)
		ep.pending = append(ep.pending[:0], ep.pending[k:]...)
	}
	ep.spare = nil
	ep.taken += n
	upto := ep.taken
	s.mu.Unlock()

	_, err := ep.log.Write(buf)
	if err == nil && s.opts.Durability == SyncFull {
		err = ep.log.Sync()
	}
	if err != nil {
		return s.fail(ep, fmt.Errorf("%w: epoch %d log: %v", ErrFailed, ep.epoch, err))
	}
	ep.logBytes += int64(len(buf))
	s.mu.Lock()
	ep.spare = buf
	s.mu.Unlock()
	s.mu.Lock()
	ep.durable = upto
	s.stats.commits++
	s.mu.Unlock()
	if ep.logBytes >= s.snapshotThreshold(ep) {
		if err := s.snapshot(ep); err != nil {
			return s.fail(ep, fmt.Errorf("%w: epoch %d snapshot: %v", ErrFailed, ep.epoch, err))
		}
	}
	return nil
}

func (s *Store) snapshotThreshold(ep *epochState) int64 {
	if s.opts.SnapshotLogBytes > 0 {
		return s.opts.SnapshotLogBytes
	}
	return max(minSnapshotLogBytes, int64(ep.f.m/16))
}

// fail marks the epoch failed with err and returns err.
func (s *Store) fail(ep *epochState, err error) error {
	s.mu.Lock()
	if ep.failed == nil {
		ep.failed = err
	}
	s.mu.Unlock()
	return err
}

// snapshot writes the filter, including every pending record, to the
// epoch's snapshot file and restarts the log. The caller is the writer.
func (s *Store) snapshot(ep *epochState) error {
	s.mu.Lock()
	b := encodeSnapshot(ep.epoch, ep.f)
	ep.pending = ep.pending[:0]
	ep.taken = ep.appended
	upto := ep.taken
	s.mu.Unlock()
	if err := writeFileSync(s.dir, snapshotName(ep.epoch), b); err != nil {
		return err
	}
	// The snapshot holds every logged tag now. If the truncation does not
	// reach the disk before a crash, the old records are replayed into
	// the filter again, which changes nothing.
	if err := ep.log.Truncate(0); err != nil {
		return err
	}
	ep.logBytes = 0
	s.mu.Lock()
	ep.durable = upto
	s.mu.Unlock()
	return nil
}

// epochLocked returns the live epoch's state, loading or creating it.
// The caller holds s.mu; loading does file I/O under it, which happens
// once per epoch.
func (s *Store) epochLocked(ctx context.Context, epoch uint64) (*epochState, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if s.current > 0 && epoch < s.current-1 {
		return nil, fmt.Errorf("epoch %d with current %d: %w", epoch, s.current, ErrExpired)
	}
	if epoch > s.current+1 {
		return nil, fmt.Errorf("epoch %d with current %d: %w", epoch, s.current, ErrFuture)
	}
	if ep, ok := s.epochs[epoch]; ok {
		return ep, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ep, err := s.load(epoch)
	if errors.Is(err, ErrCorrupt) && s.opts.DiscardCorrupt {
		ep, err = s.discard(epoch, err)
	}
	if err != nil {
		return nil, fmt.Errorf("epoch %d: %w", epoch, err)
	}
	s.epochs[epoch] = ep
	return ep, nil
}

// load reads an epoch's files, or creates them.
func (s *Store) load(epoch uint64) (*epochState, error) {
	ep := &epochState{epoch: epoch, progress: make(chan struct{})}
	if _, err := os.Stat(filepath.Join(s.dir, lostName(epoch))); err == nil {
		ep.lost = true
		return ep, nil
	}
	snapPath := filepath.Join(s.dir, snapshotName(epoch))
	logPath := filepath.Join(s.dir, logName(epoch))
	f, err := readSnapshot(snapPath, epoch)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(logPath); err == nil {
			return nil, fmt.Errorf("%w: log without snapshot", ErrCorrupt)
		}
		var key [32]byte
		if _, err := io.ReadFull(s.opts.Rand, key[:]); err != nil {
			return nil, fmt.Errorf("filter key: %w", err)
		}
		f = newFilter(s.opts.ExpectedTags, s.m, s.k, key)
		if err := writeFileSync(s.dir, snapshotName(epoch), encodeSnapshot(epoch, f)); err != nil {
			return nil, fmt.Errorf("create snapshot: %w", err)
		}
	case err != nil:
		return nil, err
	}
	ep.f = f
	log, err := os.OpenFile(logPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	b, err := io.ReadAll(log)
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("read log: %w", err)
	}
	tags, valid, err := parseLog(b, epoch)
	if err != nil {
		log.Close()
		return nil, err
	}
	if valid != len(b) {
		// A torn tail: cut it off so that new records follow valid ones.
		if err := log.Truncate(int64(valid)); err != nil {
			log.Close()
			return nil, fmt.Errorf("truncate torn log: %w", err)
		}
	}
	for i := range tags {
		f.insert(&tags[i])
	}
	ep.log = log
	ep.logBytes = int64(valid)
	return ep, nil
}

// discard moves a corrupt epoch's files aside, leaves a durable marker
// and returns the epoch as lost.
func (s *Store) discard(epoch uint64, cause error) (*epochState, error) {
	for _, name := range []string{snapshotName(epoch), logName(epoch)} {
		p := filepath.Join(s.dir, name)
		if err := os.Rename(p, p+".corrupt"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("discard %v: %w", cause, err)
		}
	}
	if err := writeFileSync(s.dir, lostName(epoch), []byte(cause.Error()+"\n")); err != nil {
		return nil, fmt.Errorf("discard %v: %w", cause, err)
	}
	return &epochState{epoch: epoch, lost: true, progress: make(chan struct{})}, nil
}

// Rotate makes current the current epoch: epochs before current-1 are
// closed and their files deleted (the relay deletes their Sphinx keys at
// the same time), and the new current epoch is loaded or created.
// Moving backwards is refused.
func (s *Store) Rotate(ctx context.Context, current uint64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if current < s.current {
		s.mu.Unlock()
		return fmt.Errorf("%w: rotate back from epoch %d to %d", ErrConfig, s.current, current)
	}
	s.current = current
	var old []*epochState
	for e, ep := range s.epochs {
		if current > 0 && e < current-1 {
			ep.closed = true
			old = append(old, ep)
			delete(s.epochs, e)
		}
	}
	s.mu.Unlock()
	for _, ep := range old {
		if err := s.closeEpoch(ctx, ep, false); err != nil {
			return fmt.Errorf("rotate to epoch %d: %w", current, err)
		}
	}
	if err := s.removeExpired(); err != nil {
		return fmt.Errorf("rotate to epoch %d: %w", current, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.epochLocked(ctx, current); err != nil {
		return fmt.Errorf("rotate to epoch %d: %w", current, err)
	}
	return nil
}

// closeEpoch waits for the epoch's writer, then snapshots (if keep) and
// closes its log.
func (s *Store) closeEpoch(ctx context.Context, ep *epochState, keep bool) error {
	if err := s.acquire(ctx, ep); err != nil {
		return fmt.Errorf("close epoch %d: %w", ep.epoch, err)
	}
	defer s.release(ep)
	if ep.log == nil {
		return nil
	}
	var err error
	s.mu.Lock()
	failed := ep.failed
	s.mu.Unlock()
	if keep && failed == nil {
		if err = s.snapshot(ep); err != nil {
			err = fmt.Errorf("epoch %d snapshot: %w", ep.epoch, err)
		}
	}
	if cerr := ep.log.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("epoch %d log: %w", ep.epoch, cerr)
	}
	ep.log = nil
	return err
}

// removeExpired deletes the files of epochs before current-1, and
// temporary files a crash left behind.
func (s *Store) removeExpired() error {
	s.mu.Lock()
	current := s.current
	s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		epoch, ok := parseName(name)
		if !ok {
			continue
		}
		if strings.HasSuffix(name, ".tmp") || (current > 0 && epoch < current-1) {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(s.dir)
	}
	return nil
}

// parseName returns the epoch of a store file's name.
func parseName(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, "epoch-")
	if !ok || len(rest) < 20 {
		return 0, false
	}
	e, err := strconv.ParseUint(rest[:20], 10, 64)
	return e, err == nil
}

// Close snapshots every live epoch (so the next Open need not replay
// logs) and closes the files. Seen calls after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	eps := make([]*epochState, 0, len(s.epochs))
	for _, ep := range s.epochs {
		eps = append(eps, ep)
	}
	s.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		// Wait for in-flight commits: they finish their batch first.
		if err := s.closeEpoch(context.Background(), ep, true); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	for _, ep := range eps {
		ep.closed = true
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// EpochStats describe one live epoch's filter.
type EpochStats struct {
	// Epoch is the epoch.
	Epoch uint64
	// Tags is the number of distinct tags inserted.
	Tags uint64
	// Capacity is the tag count the filter was sized for.
	Capacity uint64
	// Bits and Hashes are the filter's m and k.
	Bits   uint64
	Hashes uint32
	// FalsePositiveRate is the current estimated rate at which new tags
	// are reported as seen: (bits set / Bits)^Hashes.
	FalsePositiveRate float64
	// OverCapacity is true once Tags exceeds Capacity.
	OverCapacity bool
	// Lost is true for an epoch whose corrupt files were discarded.
	Lost bool
}

// Stats are the store's gauges and counters since Open.
type Stats struct {
	// Current is the current epoch.
	Current uint64
	// Epochs describe the live epochs, in increasing order.
	Epochs []EpochStats
	// Inserted counts tags reported as new.
	Inserted uint64
	// Replays counts tags reported as seen (replays and false positives).
	Replays uint64
	// OverCapacityInserts counts new tags inserted into filters already
	// holding their capacity.
	OverCapacityInserts uint64
	// Errors counts Seen calls that failed.
	Errors uint64
	// Commits counts log writes (each fsynced with SyncFull); with
	// concurrent callers one commit carries many tags.
	Commits uint64
}

// Stats returns the current gauges and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Current: s.current, Inserted: s.stats.inserted, Replays: s.stats.replays,
		OverCapacityInserts: s.stats.overCapacity, Errors: s.stats.errors, Commits: s.stats.commits}
	for e, ep := range s.epochs {
		es := EpochStats{Epoch: e, Lost: ep.lost}
		if ep.f != nil {
			es.Tags, es.Capacity, es.Bits, es.Hashes = ep.f.count, ep.f.capacity, ep.f.m, ep.f.k
			es.FalsePositiveRate = ep.f.fillRate()
			es.OverCapacity = ep.f.count > ep.f.capacity
		}
		st.Epochs = append(st.Epochs, es)
	}
	slices.SortFunc(st.Epochs, func(a, b EpochStats) int {
		switch {
		case a.Epoch < b.Epoch:
			return -1
		case a.Epoch > b.Epoch:
			return 1
		}
		return 0
	})
	return st
}
