package treemath

import (
	"slices"
	"testing"
)

func TestSmallTree(t *testing.T) {
	// The 4-leaf tree of RFC 9420 §4.1:
	//           3
	//     1           5
	//  0     2     4     6
	const n = 4
	if Width(n) != 7 || Root(n) != 3 {
		t.Fatalf("Width %d Root %d", Width(n), Root(n))
	}
	tests := []struct {
		x                Node
		level            int
		directPath, copa []Node
	}{
		{0, 0, []Node{1, 3}, []Node{2, 5}},
		{2, 0, []Node{1, 3}, []Node{0, 5}},
		{4, 0, []Node{5, 3}, []Node{6, 1}},
		{5, 1, []Node{3}, []Node{1}},
		{3, 2, nil, nil},
	}
	for _, tt := range tests {
		if Level(tt.x) != tt.level {
			t.Errorf("Level(%d) = %d", tt.x, Level(tt.x))
		}
		if got := DirectPath(tt.x, n); !slices.Equal(got, tt.directPath) {
			t.Errorf("DirectPath(%d) = %v, want %v", tt.x, got, tt.directPath)
		}
		if got := Copath(tt.x, n); !slices.Equal(got, tt.copa) {
			t.Errorf("Copath(%d) = %v, want %v", tt.x, got, tt.copa)
		}
	}
	if _, ok := Parent(3, n); ok {
		t.Error("root has a parent")
	}
	if _, ok := Parent(7, n); ok {
		t.Error("node outside the tree has a parent")
	}
	if _, ok := Left(4); ok {
		t.Error("leaf has a child")
	}
	if l, ok := Node(6).Leaf(); !ok || l != 3 || Leaf(3).Node() != 6 {
		t.Error("leaf/node index conversion")
	}
	if _, ok := Node(5).Leaf(); ok {
		t.Error("parent converted to a leaf")
	}
	if Width(0) != 0 || Root(1) != 0 {
		t.Error("degenerate trees")
	}
}

// TestAgainstWalks checks the closed forms against walks of the tree.
func TestAgainstWalks(t *testing.T) {
	for n := uint32(1); n <= 64; n *= 2 {
		w := Node(Width(n))
		for x := range w {
			if x != Root(n) {
				p, ok := Parent(x, n)
				l, _ := Left(p)
				r, _ := Right(p)
				if !ok || (l != x && r != x) {
					t.Fatalf("n=%d: %d is not a child of its parent %d", n, x, p)
				}
				s, _ := Sibling(x, n)
				if s == x || (s != l && s != r) {
					t.Fatalf("n=%d: sibling of %d is %d", n, x, s)
				}
			}
			for y := range w {
				// Naive: the lowest node of x's path that is also on y's.
				px := append([]Node{x}, DirectPath(x, n)...)
				py := append([]Node{y}, DirectPath(y, n)...)
				var want Node
				for _, a := range px {
					if slices.Contains(py, a) {
						want = a
						break
					}
				}
				if got := CommonAncestor(x, y); got != want {
					t.Fatalf("n=%d: CommonAncestor(%d, %d) = %d, want %d", n, x, y, got, want)
				}
				if got, want := InSubtree(y, x), slices.Contains(py, x); got != want {
					t.Fatalf("n=%d: InSubtree(%d, %d) = %v, want %v", n, y, x, got, want)
				}
			}
		}
	}
}

func TestLargestTree(t *testing.T) {
	const n = 1 << 31
	if Width(n) != 1<<32-1 || Root(n) != 1<<31-1 {
		t.Fatalf("Width %d Root %d", Width(n), Root(n))
	}
	last := Node(1<<32 - 2)
	if got := len(DirectPath(last, n)); got != 31 {
		t.Fatalf("direct path of the last leaf has %d nodes", got)
	}
}
