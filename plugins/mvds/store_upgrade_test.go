package mvds

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestStoreV2Upgrade opens, in each wire mode, a copy of a store that the
// plugin of schema version 2 wrote (testdata/store-v2, every message a
// Body): it migrates to the current schema and everything in it keeps
// working. The unacknowledged deliveries come again with their authors
// (one relayed) and payloads; the message waiting for a parent is still
// waiting and goes up when the parent comes (a bound message); the own
// message is retransmitted as it was made, a bound message with the same
// id, and the ack of that id ends its record; a spec message whose parent
// is an old message is delivered; and new messages are of the configured
// mode.
func TestStoreV2Upgrade(t *testing.T) {
	for _, wire := range []string{WireSpec, WireBound} {
		t.Run(wire, func(t *testing.T) {
			cfg := testSettings()
			cfg.Wire = wire
			a := newTNode(t, "a", cfg, newClock())
			a.manualAck = true
			if err := a.n.close(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(filepath.Join(a.dir, DBName+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			fixture, err := os.ReadFile(filepath.Join("testdata", "store-v2", DBName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(a.dir, DBName), fixture, 0o600); err != nil {
				t.Fatal(err)
			}
			b, c := identity("b"), identity("c")
			_, idR1 := boundFrom(t, testGroupID, b, 1001, "r1", false)
			_, idR2 := boundFrom(t, testGroupID, b, 1002, "r2", false, idR1)
			x, idX := boundFrom(t, testGroupID, b, 1000, "x", false)
			_, idR3 := boundFrom(t, testGroupID, b, 1003, "r3", false, idX)
			_, idR4 := boundFrom(t, testGroupID, c, 1004, "r4", false)
			ownBody, err := encodeBody(a.id, nil, []byte("own 1"), false)
			if err != nil {
				t.Fatal(err)
			}
			idOwn := MessageID(testGroupID, 1_700_000_000_000, ownBody)

			a.reopen()
			var version int
			if err := a.n.st.db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) {
				t.Fatalf("schema version %d (%v), want %d", version, err, len(migrations))
			}
			if !slices.Equal(a.redelivered, []ID{idR2, idR4}) {
				t.Fatalf("redelivered %v, want r2 and r4", a.redelivered)
			}
			for i, want := range []struct {
				author  []byte
				payload string
			}{{b, "r2"}, {c, "r4"}} {
				if d := a.order[i]; !bytes.Equal(d.author, want.author) || string(d.payload) != want.payload {
					t.Fatalf("redelivery %d: author %x payload %q, want %q", i, d.author, d.payload, want.payload)
				}
			}
			if st := a.state(); st.messages != 5 || st.pending != 1 || st.delivered != 3 {
				t.Fatalf("state %+v", st)
			}

			// The records come due as they were: the own message to b and c
			// (a bound message, the bytes it was made with), x requested
			// from b, r1 and r2 offered to c.
			a.tick()
			got := map[string]*wirepb.Payload{}
			for _, o := range a.tick() {
				p, err := decodePayload(o.payload, 16)
				if err != nil {
					t.Fatal(err)
				}
				got[string(o.peer)] = p
			}
			for _, peer := range [][]byte{b, c} {
				p := got[string(peer)]
				if p == nil || len(p.Messages) != 0 || len(p.BoundMessages) != 1 || !bytes.Equal(p.BoundMessages[0].Body, ownBody) ||
					MessageID(testGroupID, p.BoundMessages[0].Timestamp, p.BoundMessages[0].Body) != idOwn {
					t.Fatalf("to %x: %v, want the own message as made", peer[:4], p)
				}
			}
			if !slices.Equal(wireIDs(got[string(b)].Requests), []ID{idX}) || !slices.Equal(wireIDs(got[string(c)].Offers), []ID{idR1, idR2}) {
				t.Fatalf("requests to b %v, offers to c %v", wireIDs(got[string(b)].Requests), wireIDs(got[string(c)].Offers))
			}

			// b acks the own message and sends x: r3 goes up after it.
			a.receive(b, encode(t, &wirepb.Payload{Acks: [][]byte{idOwn[:]}, BoundMessages: []*wirepb.Message{x}}))
			if ids := a.deliveredPersistent()[2:]; !slices.Equal(ids, []ID{idX, idR3}) {
				t.Fatalf("delivered %v, want x then r3", ids)
			}
			if d := a.order[3]; !bytes.Equal(d.author, b) || string(d.payload) != "r3" {
				t.Fatalf("r3 delivered as %+v", d)
			}
			// A message naming an old one as its parent, in the node's mode
			// (a spec message to a bound node is refused, so b in the bound
			// mode sends a bound one).
			var child *wirepb.Message
			var idChild ID
			p := &wirepb.Payload{}
			if wire == WireSpec {
				child, idChild = messageFrom(t, testGroupID, b, 2000, "child", false, idR2)
				child.Author = nil
				p.Messages = []*wirepb.Message{child}
			} else {
				child, idChild = boundFrom(t, testGroupID, b, 2000, "child", false, idR2)
				p.BoundMessages = []*wirepb.Message{child}
			}
			a.receive(b, encode(t, p))
			if !a.delivered(idChild) {
				t.Fatal("the child of an old message was not delivered")
			}
			own := a.send("after the upgrade", idChild, idR1)
			sent := 0
			for range 16 {
				for _, o := range a.tick() {
					p, err := decodePayload(o.payload, 16)
					if err != nil {
						t.Fatal(err)
					}
					if bytes.Equal(o.peer, b) && slices.ContainsFunc(p.BoundMessages, func(m *wirepb.Message) bool { return bytes.Equal(m.Body, ownBody) }) {
						t.Fatal("the own message went to b again after b acked it")
					}
					for _, m := range p.Messages {
						if wire == WireBound || MessageID(testGroupID, m.Timestamp, m.Body) != own || string(m.Body) != "after the upgrade" {
							t.Fatalf("a spec message %v from a node in the %s mode", m, wire)
						}
						sent++
					}
					for _, m := range p.BoundMessages {
						if MessageID(testGroupID, m.Timestamp, m.Body) == own {
							if wire == WireSpec {
								t.Fatal("a new message went out bound from a node in the spec mode")
							}
							sent++
						}
					}
				}
			}
			if sent < 2 {
				t.Fatalf("the new message went out %d times, want to b and c", sent)
			}
			a.restart()
			if want := []ID{idR2, idR4, idX, idR3, idChild}; !slices.Equal(a.redelivered, want) {
				t.Fatalf("redelivered after a restart %v, want %v", a.redelivered, want)
			}
		})
	}
}

// TestStoreSettings checks the connection settings the store's DSN asks
// for, on a connection of its pool.
func TestStoreSettings(t *testing.T) {
	s, err := openStore(context.Background(), t.TempDir(), DurabilityFull)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"temp_store", "2"},  // MEMORY: no statement journal in a file
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := s.db.QueryRowContext(context.Background(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
}
