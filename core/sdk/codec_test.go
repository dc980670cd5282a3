package sdk

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

func testBatch(frames, size int) *commonv1.Batch {
	b := &commonv1.Batch{}
	for i := 0; i < frames; i++ {
		p := bytes.Repeat([]byte{byte(i)}, size)
		b.Frames = append(b.Frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, TraceId: uint64(i + 1), Payload: p})
	}
	return b
}

// TestBoundaryCodecWire checks that the boundary codec writes exactly what
// proto.Marshal writes and reads it back, for messages below and above
// gRPC's pooling threshold, from one buffer and from several.
func TestBoundaryCodecWire(t *testing.T) {
	c := boundaryCodec{pool: newDirtyPool()}
	for _, tc := range []struct {
		name         string
		frames, size int
		splitAt      int // > 0: hand Unmarshal the bytes as two buffers
	}{
		{"empty", 0, 0, 0},
		{"small", 1, 16, 0},
		{"one KiB", 1, 1024, 0},
		{"batch", 256, 1024, 0},
		{"batch in two buffers", 256, 1024, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testBatch(tc.frames, tc.size)
			want, err := proto.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			// Twice, so the second round takes a used buffer from the pool.
			for round := 0; round < 2; round++ {
				data, err := c.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				got := data.Materialize()
				if !bytes.Equal(got, want) {
					t.Fatalf("round %d: codec wrote %d bytes that differ from proto.Marshal's %d", round, len(got), len(want))
				}
				var slice mem.BufferSlice
				if tc.splitAt > 0 && tc.splitAt < len(got) {
					slice = mem.BufferSlice{mem.SliceBuffer(got[:tc.splitAt]), mem.SliceBuffer(got[tc.splitAt:])}
				} else {
					slice = mem.BufferSlice{mem.SliceBuffer(got)}
				}
				out := &commonv1.Batch{}
				if err := c.Unmarshal(slice, out); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(in, out) {
					t.Fatalf("round %d: read back a different batch", round)
				}
				data.Free()
			}
		})
	}
}

// TestBoundaryCodecRejects checks that a non-proto value and malformed
// bytes are errors, not panics.
func TestBoundaryCodecRejects(t *testing.T) {
	c := boundaryCodec{pool: newDirtyPool()}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Fatal("marshalled a string")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0xff})}, &commonv1.Batch{}); err == nil {
		t.Fatal("read a truncated batch")
	}
	if err := c.Unmarshal(nil, "not a message"); err == nil {
		t.Fatal("unmarshalled into a string")
	}
}

// TestDirtyPoolClasses checks the pool's size classes: Get returns the
// length asked for with a class capacity, Put keeps only exact classes.
func TestDirtyPoolClasses(t *testing.T) {
	p := newDirtyPool()
	for _, tc := range []struct{ n, wantCap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {1024, 1024}, {260_000, 262_144}, {1 << 26, 1 << 26}, {1<<26 + 1, 1<<26 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*b), cap(*b), tc.n, tc.wantCap)
		}
		p.Put(b)
	}
	odd := make([]byte, 10, 300)
	p.Put(&odd) // not a class capacity: dropped, never handed out short
	if b := p.Get(300); cap(*b) != 512 {
		t.Fatalf("Get(300) after a 300-byte Put: cap %d, want 512", cap(*b))
	}
}

// FuzzBoundaryCodec feeds arbitrary bytes to the codec's Unmarshal, split
// into one or two buffers: it must return an error or a batch, never
// panic.
func FuzzBoundaryCodec(f *testing.F) {
	seed, _ := proto.Marshal(testBatch(3, 40))
	f.Add(seed, 0)
	f.Add(seed, 17)
	f.Add([]byte{0x0a, 0xff, 0xff}, 1)
	c := boundaryCodec{pool: newDirtyPool()}
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		slice := mem.BufferSlice{mem.SliceBuffer(data)}
		if split > 0 && split < len(data) {
			slice = mem.BufferSlice{mem.SliceBuffer(data[:split]), mem.SliceBuffer(data[split:])}
		}
		_ = c.Unmarshal(slice, &commonv1.Batch{})
	})
}
