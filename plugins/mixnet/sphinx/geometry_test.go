package sphinx

import (
	"errors"
	"testing"
)

func TestGeometrySizes(t *testing.T) {
	cases := []struct {
		name                                           string
		user, hops                                     int
		withSURB                                       bool
		perHop, ri, header, surb, fwd, packet, nextHop int
	}{
		// The vector file's geometry, forward half (README: 611-byte packets).
		{"vectors", 103, 5, false, 82, 410, 476, 572, 103, 611, 65},
		// The same with SURB room (README: the full packet would be 1185 B).
		{"vectors-with-surb", 103, 5, true, 82, 410, 476, 572, 103 + 2 + 572, 1185, 65},
		// Katzenpost's deployed default (digest 3.3).
		{"deployed", 2000, 5, true, 82, 410, 476, 572, 2574, 3082, 65},
		{"10-hops", 2000, 10, false, 82, 820, 886, 982, 2000, 2918, 65},
		{"1-hop", 0, 1, false, 82, 82, 148, 244, 0, 180, 65},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGeometry(c.user, c.hops, c.withSURB)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{g.PerHopRoutingInfoLength, g.RoutingInfoLength, g.HeaderLength, g.SURBLength, g.ForwardPayloadLength, g.PacketLength, nextNodeHopLength}
			want := []int{c.perHop, c.ri, c.header, c.surb, c.fwd, c.packet, c.nextHop}
			names := []string{"per-hop", "routing info", "header", "SURB", "forward payload", "packet", "NextNodeHop"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %d, want %d", names[i], got[i], want[i])
				}
			}
			if err := g.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	if d := DefaultGeometry(); d.PacketLength != 3082 || d.HeaderLength != 476 {
		t.Fatalf("DefaultGeometry: %v", d)
	}
}

func TestGeometryInvalid(t *testing.T) {
	for _, c := range []struct{ user, hops int }{{100, 0}, {100, -1}, {100, MaxNrHops + 1}, {-1, 5}, {MaxUserForwardPayloadLength + 1, 5}} {
		if _, err := NewGeometry(c.user, c.hops, true); !errors.Is(err, ErrGeometry) {
			t.Errorf("NewGeometry(%d, %d): %v, want ErrGeometry", c.user, c.hops, err)
		}
	}
	g := DefaultGeometry()
	g.HeaderLength++
	if err := g.Validate(); !errors.Is(err, ErrGeometry) {
		t.Fatalf("Validate of an altered geometry: %v", err)
	}
	// Every method refuses an inconsistent geometry instead of slicing
	// with its sizes.
	priv, _ := GenerateKey(seeded("geometry"))
	if _, err := g.Unwrap(priv, make([]byte, g.PacketLength)); !errors.Is(err, ErrGeometry) {
		t.Fatalf("Unwrap with an altered geometry: %v", err)
	}
	var nilG *Geometry
	if _, err := nilG.NewPacket(seeded("x"), nil, nil); !errors.Is(err, ErrGeometry) {
		t.Fatalf("NewPacket on nil geometry: %v", err)
	}
}
