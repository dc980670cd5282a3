package replay

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// On disk, each epoch has up to three files in the store's directory:
//
//	epoch-<20-digit epoch>.bloom  the filter as of its last snapshot
//	epoch-<20-digit epoch>.log    tags inserted since that snapshot
//	epoch-<20-digit epoch>.lost   marker: the epoch's files were corrupt
//	                              and discarded; every tag counts as seen
//
// Snapshot (.bloom), all integers big-endian:
//
//	magic    8  "STRRPLY1"
//	epoch    8
//	capacity 8  the expected tag count it was sized for
//	m        8  bits, a multiple of 64, 64 ≤ m ≤ MaxFilterBits
//	k        4  hashes, 1 ≤ k ≤ 64
//	reserved 4  zero
//	count    8  distinct tags inserted
//	key     32  the filter's hash key
//	bits   m/8  64-bit words, little-endian
//	crc      4  CRC-32C of everything before it
//
// Log (.log): 36-byte records, the tag then CRC-32C of (epoch ‖ tag). A
// record is appended (and, with SyncFull, fsynced) before Seen reports its
// tag as new.

const (
	snapMagic      = "STRRPLY1"
	snapHeaderSize = 80
	recordSize     = TagSize + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func snapshotName(epoch uint64) string { return fmt.Sprintf("epoch-%020d.bloom", epoch) }
func logName(epoch uint64) string      { return fmt.Sprintf("epoch-%020d.log", epoch) }
func lostName(epoch uint64) string     { return fmt.Sprintf("epoch-%020d.lost", epoch) }

// encodeSnapshot returns the snapshot file's bytes for f.
func encodeSnapshot(epoch uint64, f *filter) []byte {
	b := make([]byte, snapHeaderSize, snapHeaderSize+len(f.words)*8+4)
	copy(b, snapMagic)
	binary.BigEndian.PutUint64(b[8:], epoch)
	binary.BigEndian.PutUint64(b[16:], f.capacity)
	binary.BigEndian.PutUint64(b[24:], f.m)
	binary.BigEndian.PutUint32(b[32:], f.k)
	binary.BigEndian.PutUint64(b[40:], f.count)
	copy(b[48:80], f.key[:])
	for _, w := range f.words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// snapshotSize checks a snapshot header and returns the file size it
// implies, so that a reader allocates only what the header justifies.
func snapshotSize(h []byte, epoch uint64) (int64, error) {
	if len(h) < snapHeaderSize {
		return 0, fmt.Errorf("%w: snapshot header is %d bytes", ErrCorrupt, len(h))
	}
	if string(h[:8]) != snapMagic {
		return 0, fmt.Errorf("%w: snapshot magic %q", ErrCorrupt, h[:8])
	}
	if e := binary.BigEndian.Uint64(h[8:]); e != epoch {
		return 0, fmt.Errorf("%w: snapshot of epoch %d in the file of epoch %d", ErrCorrupt, e, epoch)
	}
	m := binary.BigEndian.Uint64(h[24:])
	k := binary.BigEndian.Uint32(h[32:])
	if m < 64 || m%64 != 0 || m > MaxFilterBits || k < 1 || k > maxHashes || binary.BigEndian.Uint32(h[36:]) != 0 {
		return 0, fmt.Errorf("%w: snapshot geometry m=%d k=%d", ErrCorrupt, m, k)
	}
	return snapHeaderSize + int64(m/8) + 4, nil
}

// decodeSnapshot parses a whole snapshot file of epoch.
func decodeSnapshot(b []byte, epoch uint64) (*filter, error) {
	size, err := snapshotSize(b, epoch)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("%w: snapshot is %d bytes, its header says %d", ErrCorrupt, len(b), size)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	var key [32]byte
	copy(key[:], b[48:80])
	f := newFilter(binary.BigEndian.Uint64(b[16:]), binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint32(b[32:]), key)
	f.count = binary.BigEndian.Uint64(b[40:])
	words := body[snapHeaderSize:]
	for i := range f.words {
		f.words[i] = binary.LittleEndian.Uint64(words[i*8:])
	}
	f.countOnes()
	return f, nil
}

// readSnapshot reads and decodes the snapshot file at path.
func readSnapshot(path string, epoch uint64) (*filter, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	h := make([]byte, snapHeaderSize)
	if _, err := io.ReadFull(fh, h); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrCorrupt, err)
	}
	size, err := snapshotSize(h, epoch)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if st.Size() != size {
		return nil, fmt.Errorf("%w: snapshot is %d bytes, its header says %d", ErrCorrupt, st.Size(), size)
	}
	b := make([]byte, size)
	copy(b, h)
	if _, err := io.ReadFull(fh, b[snapHeaderSize:]); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return decodeSnapshot(b, epoch)
}

// appendRecord appends tag's log record. The CRC input (epoch ‖ tag) is
// built in b itself: crc32 dispatches through a function value, so a
// slice of a stack array passed to it would escape to the heap on every
// call.
func appendRecord(b []byte, epoch uint64, tag *[TagSize]byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, tag[:]...)
	crc := crc32.Checksum(b[start:], castagnoli)
	copy(b[start:], b[start+8:])
	b = b[:start+TagSize]
	return binary.BigEndian.AppendUint32(b, crc)
}

// parseLog returns the tags of a log's valid records and the length of
// the valid prefix. A damaged or partial record among the last
// maxBatchRecords is a torn tail — a write that never completed, so
// never acknowledged — and ends the valid prefix; damage before that is
// corruption (ErrCorrupt), since those records were acknowledged.
func parseLog(b []byte, epoch uint64) (tags [][TagSize]byte, valid int, err error) {
	n := len(b) / recordSize
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	seed := crc32.Checksum(e[:], castagnoli)
	for i := range n {
		r := b[i*recordSize : (i+1)*recordSize]
		if crc32.Update(seed, castagnoli, r[:TagSize]) != binary.BigEndian.Uint32(r[TagSize:]) {
			if n-i > maxBatchRecords {
				return nil, 0, fmt.Errorf("%w: log record %d of %d is damaged", ErrCorrupt, i, n)
			}
			return tags, i * recordSize, nil
		}
		var t [TagSize]byte
		copy(t[:], r[:TagSize])
		tags = append(tags, t)
	}
	return tags, n * recordSize, nil
}

// writeFileSync writes b to path atomically: a temporary file, fsync,
// rename, fsync of the directory.
func writeFileSync(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that renames and removals in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
