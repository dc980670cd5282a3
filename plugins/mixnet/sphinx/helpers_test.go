package sphinx

import (
	"crypto/sha512"
	"math/rand/v2"
	"testing"
)

func sha512_256(b []byte) ReplayTag { return sha512.Sum512_256(b) }

// seeded returns a deterministic random source for tests.
func seeded(label string) *rand.ChaCha8 {
	var seed [32]byte
	copy(seed[:], label)
	return rand.NewChaCha8(seed)
}

// testNode is a node of a test network.
type testNode struct {
	id   NodeID
	priv *PrivateKey
}

func newNodes(t testing.TB, n int, label string) []testNode {
	t.Helper()
	r := seeded(label)
	nodes := make([]testNode, n)
	for i := range nodes {
		priv, err := GenerateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].priv = priv
		r.Read(nodes[i].id[:])
	}
	return nodes
}

// forwardPath returns a path through nodes: NodeDelay at every hop but the
// last, Recipient at the last (and SURBReply too if surbID is not nil).
func forwardPath(nodes []testNode, rcpt RecipientID, surbID *SURBID) []PathHop {
	path := make([]PathHop, len(nodes))
	for i, nd := range nodes {
		path[i] = PathHop{ID: nd.id, PublicKey: nd.priv.PublicKey()}
		if i < len(nodes)-1 {
			path[i].Commands = Commands{NodeDelay{Delay: uint32(100 + i)}}
			continue
		}
		path[i].Commands = Commands{Recipient{ID: rcpt}}
		if surbID != nil {
			path[i].Commands = append(path[i].Commands, SURBReply{ID: *surbID})
		}
	}
	return path
}
