package mvds

import (
	"errors"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestRecordIDs checks the index of the ids that may have a record: a
// group is read from the table once, ids written after that are added,
// ids written before it are found by the reading, and a set grown to its
// limit is read again (dropping the ids whose records went).
func TestRecordIDs(t *testing.T) {
	g := []byte("group")
	a, b, c := ID{1}, ID{2}, ID{3}
	r := newRecordIDs()
	reads := 0
	table := []ID{a}
	read := func() ([]ID, error) { reads++; return slices.Clone(table), nil }

	r.add(g, b) // before the first reading: ignored, the table has it
	table = append(table, b)
	if got := r.filter(g, []ID{a, b, c}, read); !slices.Equal(got, []ID{a, b}) || reads != 1 {
		t.Fatalf("filter = %v after %d readings, want [a b] after one", got, reads)
	}
	r.add(g, c)
	if got := r.filter(g, []ID{c}, read); !slices.Equal(got, []ID{c}) || reads != 1 {
		t.Fatalf("filter = %v after %d readings, want [c] without reading again", got, reads)
	}
	// Grow the set to its limit: the next filter reads the table again,
	// where only a is left.
	table = []ID{a}
	for i := range minRecordIDs {
		r.add(g, ID{0xff, byte(i >> 8), byte(i)})
	}
	if got := r.filter(g, []ID{a, b, c}, read); !slices.Equal(got, []ID{a}) || reads != 2 {
		t.Fatalf("filter = %v after %d readings, want [a] after two", got, reads)
	}
	// A failed reading lets every id through, to be looked up.
	other := []byte("other")
	if got := r.filter(other, []ID{a, b}, func() ([]ID, error) { return nil, errors.New("disk") }); !slices.Equal(got, []ID{a, b}) {
		t.Fatalf("filter after a failed reading = %v, want every id", got)
	}
}

// TestAckAfterRecordsRead: once a node has read which messages have
// records (an ack of a message it holds no record of), a message it sends
// afterwards still has its records cleared by the members' acks.
func TestAckAfterRecordsRead(t *testing.T) {
	cfg := testSettings()
	cfg.GroupAcks = true
	nt := newTNet(t, cfg, "a", "b", "c")
	a, b := nt.node("a"), nt.node("b")
	stray := ID{9}
	a.receive(b.id, encode(t, &wirepb.Payload{Acks: [][]byte{stray[:]}}))
	id := a.send("after the reading")
	if st := a.state(); st.unacknowledged != 1 {
		t.Fatalf("unacknowledged %d before the acks, want 1", st.unacknowledged)
	}
	nt.run(50, func() bool { return a.state().unacknowledged == 0 })
	if st := a.state(); st.unacknowledged != 0 {
		t.Fatalf("unacknowledged %d: the members' acks of %x did not clear its records", st.unacknowledged, id[:4])
	}
}
