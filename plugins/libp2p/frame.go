package libp2pplugin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A frame on a stream is its payload's length as a minimal uvarint followed
// by the payload. The reader never trusts the length: it refuses one above
// its maximum before reading or allocating anything for the payload.

// Errors a frameReader returns for bytes that are not a valid frame. Any
// other error comes from the stream itself.
var (
	errFrameTooLarge = errors.New("frame length above the maximum")
	errBadLength     = errors.New("frame length is not a minimal uvarint")
)

// readChunk is the most a frameReader allocates ahead of the bytes that
// have arrived, so that a length prefix alone cannot make it allocate a
// large buffer.
const readChunk = 64 << 10

// readBuffer is the size of a frameReader's read buffer. Payloads larger
// than it are read into place without passing through it.
const readBuffer = 16 << 10

// frameReader reads length-prefixed frames from a stream.
type frameReader struct {
	r   *bufio.Reader
	max uint64
}

// newFrameReader returns a reader of frames of at most max bytes from r.
func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBuffer), max: uint64(max)}
}

// ReadFrame returns the next frame's payload. At a clean end of stream
// between frames it returns io.EOF; a stream that ends inside a frame gives
// io.ErrUnexpectedEOF. A length above the maximum is errFrameTooLarge and a
// malformed one errBadLength; the stream is unusable after any error.
func (fr *frameReader) ReadFrame() ([]byte, error) {
	n, err := fr.readLength()
	if err != nil {
		return nil, err
	}
	if n > fr.max {
		return nil, fmt.Errorf("%w: %d > %d", errFrameTooLarge, n, fr.max)
	}
	buf := make([]byte, min(n, readChunk))
	if err := fr.fill(buf); err != nil {
		return nil, err
	}
	for uint64(len(buf)) < n {
		have := len(buf)
		grow := int(min(n-uint64(have), uint64(have)))
		buf = slices.Grow(buf, grow)[:have+grow]
		if err := fr.fill(buf[have:]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// fill reads exactly len(b) bytes of a frame's payload.
func (fr *frameReader) fill(b []byte) error {
	if _, err := io.ReadFull(fr.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// readLength reads a minimal uvarint of at most binary.MaxVarintLen64
// bytes that fits in 64 bits.
func (fr *frameReader) readLength() (uint64, error) {
	var x uint64
	for i := range binary.MaxVarintLen64 {
		b, err := fr.r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("%w: padded with zero bytes", errBadLength)
			}
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, fmt.Errorf("%w: overflows 64 bits", errBadLength)
			}
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: longer than %d bytes", errBadLength, binary.MaxVarintLen64)
}

// writeFrame writes payload, framed, to w.
func writeFrame(w *bufio.Writer, payload []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	if _, err := w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(payload)))]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}
