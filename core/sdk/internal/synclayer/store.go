package synclayer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// logName is the store's file inside the layer's data directory.
const logName = "syncfix.log"

// The store is one append-only file of records, never rewritten. Each
// record is
//
//	u32be  body length, 1..maxRecordBody
//	u32be  CRC-32C (Castagnoli) of the body
//	body:  u8 record type, then its fields
//
// where a bytes field ("str") is u32be length || bytes and an id is 32
// bytes. The record types:
//
//	1 message    u8 flags (bit 0: authored by this node), str group,
//	             str author, u8 parent count n, n ids, str payload
//	2 ack        str group, id, str member (the member has the message)
//	3 delivered  str group, id (the message went up)
//	4 group      str group, u16be member count n, n str members
//	5 taken      str group, id (the host acknowledged the delivery: Ack)
//
// The type byte is the format's version: a record type is never changed,
// only added, and a store opens only if it knows every type it meets, so an
// older syncfix (which knows types 1 to 4) refuses a store holding taken
// records rather than misread it. Syncfix 1.1.0 adds type 5; a store that
// 1.0.0 wrote opens as it is, every delivered message in it unacknowledged
// (so it goes up again at the first Start). A taken record follows the
// delivered record of its message; replay ignores one that does not.
//
// Records are appended in memory (add) and written and fsynced together
// (commit), so one fsync covers a whole input batch. A record cut short at
// the end of the file, or a last record whose checksum fails, is a write
// that a crash interrupted: it is cut off when the store opens. Damage
// anywhere else is an error. There is no compaction: the file grows with
// every record, which a test fixture can afford.
const (
	recMessage   = 1
	recAck       = 2
	recDelivered = 3
	recGroup     = 4
	recTaken     = 5

	recordHeader = 8
	// maxRecordBody bounds a record's body: a message record of
	// MaxPayload bytes with MaxParents parents and its group and author at
	// their limits, with room to spare.
	maxRecordBody = MaxPayload + MaxParents*len(ID{}) + 4*MaxGroupID + 1024

	flagOwn = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is what every error about the file's content wraps.
var errCorrupt = errors.New("syncfix: corrupt store")

// record is one entry of the store. Which fields are set depends on typ.
type record struct {
	typ     byte
	group   []byte
	own     bool
	author  []byte
	parents []ID
	payload []byte
	id      ID
	member  []byte
	members [][]byte
}

// store is the layer's durable state.
type store struct {
	f       *os.File
	pending []byte // records added since the last commit
}

// openStore opens (creating it if need be) the store in dir, calls replay
// for every record in order, and cuts off a torn last record.
func openStore(dir string, replay func(record) error) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("syncfix: create data dir: %w", err)
	}
	path := filepath.Join(dir, logName)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("syncfix: open store: %w", err)
	}
	if created {
		// Make the new file's directory entry durable too.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("syncfix: read store: %w", err)
	}
	good, err := replayAll(data, replay)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("syncfix: cut off a torn record: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("syncfix: sync store: %w", err)
		}
	}
	return &store{f: f}, nil
}

// replayAll calls replay for each whole record of data and returns the
// length of the good prefix.
func replayAll(data []byte, replay func(record) error) (int, error) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < recordHeader {
			return off, nil // torn header
		}
		n := binary.BigEndian.Uint32(rest)
		if n == 0 || uint64(n) > uint64(maxRecordBody) {
			if off+recordHeader == len(data) || allZero(rest) {
				return off, nil // a torn header, or a tail the crash left zeroed
			}
			return off, fmt.Errorf("%w: record at offset %d has length %d", errCorrupt, off, n)
		}
		if uint64(len(rest)-recordHeader) < uint64(n) {
			return off, nil // torn body
		}
		body := rest[recordHeader : recordHeader+int(n)]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(rest[4:]) {
			if off+recordHeader+int(n) == len(data) {
				return off, nil // the last write was interrupted
			}
			return off, fmt.Errorf("%w: record at offset %d fails its checksum", errCorrupt, off)
		}
		r, err := decodeRecord(body)
		if err != nil {
			return off, fmt.Errorf("record at offset %d: %w", off, err)
		}
		if err := replay(r); err != nil {
			return off, fmt.Errorf("record at offset %d: %w", off, err)
		}
		off += recordHeader + int(n)
	}
	return off, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// add queues r for the next commit.
func (s *store) add(r record) {
	body := encodeRecord(r)
	s.pending = binary.BigEndian.AppendUint32(s.pending, uint32(len(body)))
	s.pending = binary.BigEndian.AppendUint32(s.pending, crc32.Checksum(body, castagnoli))
	s.pending = append(s.pending, body...)
}

// commit writes the queued records and fsyncs the file. When it returns
// nil, every record added before it is durable.
func (s *store) commit() error {
	if len(s.pending) == 0 {
		return nil
	}
	if _, err := s.f.Write(s.pending); err != nil {
		return fmt.Errorf("syncfix: write store: %w", err)
	}
	s.pending = s.pending[:0]
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("syncfix: sync store: %w", err)
	}
	return nil
}

// close commits and closes the file.
func (s *store) close() error {
	err := s.commit()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("syncfix: close store: %w", cerr)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncfix: open data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncfix: sync data dir: %w", err)
	}
	return nil
}

func appendStr(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func encodeRecord(r record) []byte {
	b := []byte{r.typ}
	switch r.typ {
	case recMessage:
		var flags byte
		if r.own {
			flags |= flagOwn
		}
		b = append(b, flags)
		b = appendStr(b, r.group)
		b = appendStr(b, r.author)
		b = append(b, byte(len(r.parents)))
		for _, p := range r.parents {
			b = append(b, p[:]...)
		}
		b = appendStr(b, r.payload)
	case recAck:
		b = appendStr(b, r.group)
		b = append(b, r.id[:]...)
		b = appendStr(b, r.member)
	case recDelivered, recTaken:
		b = appendStr(b, r.group)
		b = append(b, r.id[:]...)
	case recGroup:
		b = appendStr(b, r.group)
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.members)))
		for _, m := range r.members {
			b = appendStr(b, m)
		}
	}
	return b
}

// recordReader reads the fields of one record body; the first error sticks.
type recordReader struct {
	b   []byte
	err error
}

func (rd *recordReader) fail(what string) {
	if rd.err == nil {
		rd.err = fmt.Errorf("%w: record truncated in its %s", errCorrupt, what)
	}
}

func (rd *recordReader) byte(what string) byte {
	if rd.err != nil || len(rd.b) < 1 {
		rd.fail(what)
		return 0
	}
	v := rd.b[0]
	rd.b = rd.b[1:]
	return v
}

func (rd *recordReader) u16(what string) int {
	if rd.err != nil || len(rd.b) < 2 {
		rd.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint16(rd.b)
	rd.b = rd.b[2:]
	return int(v)
}

func (rd *recordReader) str(what string) []byte {
	if rd.err != nil || len(rd.b) < 4 {
		rd.fail(what)
		return nil
	}
	n := binary.BigEndian.Uint32(rd.b)
	if uint64(len(rd.b)-4) < uint64(n) {
		rd.fail(what)
		return nil
	}
	v := rd.b[4 : 4+int(n)]
	rd.b = rd.b[4+int(n):]
	return v
}

func (rd *recordReader) id(what string) ID {
	var id ID
	if rd.err != nil || len(rd.b) < len(id) {
		rd.fail(what)
		return id
	}
	copy(id[:], rd.b)
	rd.b = rd.b[len(id):]
	return id
}

// decodeRecord parses a record body; it never panics.
func decodeRecord(body []byte) (record, error) {
	rd := &recordReader{b: body}
	r := record{typ: rd.byte("type")}
	switch r.typ {
	case recMessage:
		flags := rd.byte("flags")
		r.own = flags&flagOwn != 0
		r.group = rd.str("group")
		r.author = rd.str("author")
		n := int(rd.byte("parent count"))
		if rd.err == nil && n > MaxParents {
			return record{}, fmt.Errorf("%w: message record with %d parents", errCorrupt, n)
		}
		for range n {
			r.parents = append(r.parents, rd.id("parents"))
		}
		r.payload = rd.str("payload")
		if rd.err == nil && flags&^flagOwn != 0 {
			return record{}, fmt.Errorf("%w: message record with unknown flags %#x", errCorrupt, flags)
		}
	case recAck:
		r.group = rd.str("group")
		r.id = rd.id("id")
		r.member = rd.str("member")
	case recDelivered, recTaken:
		r.group = rd.str("group")
		r.id = rd.id("id")
	case recGroup:
		r.group = rd.str("group")
		n := rd.u16("member count")
		for range n {
			if rd.err != nil {
				break
			}
			r.members = append(r.members, rd.str("members"))
		}
	default:
		if rd.err == nil {
			return record{}, fmt.Errorf("%w: unknown record type %d", errCorrupt, r.typ)
		}
	}
	if rd.err != nil {
		return record{}, rd.err
	}
	if len(rd.b) != 0 {
		return record{}, fmt.Errorf("%w: %d bytes after a type %d record", errCorrupt, len(rd.b), r.typ)
	}
	return r, nil
}
