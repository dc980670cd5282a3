package sphinx

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorSHA256 pins the copies in testdata (see testdata/README.md).
var vectorSHA256 = map[string]string{
	"sphinx_vectors.json":          "60aeaf17114e4ca37e75142fac5989f254ba2484ef337f0b65ba4439e6baf973",
	"sphinx_commands_vectors.json": "d715f4a335412c824e002b41377a29f0c6c8c6d057398ad5df5d2ada9fc70234",
}

// readVectorFile returns a vector file's bytes, failing (not skipping) the
// test if it is missing or not the pinned copy.
func readVectorFile(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != vectorSHA256[name] {
		t.Fatalf("vector file %s: sha256 %s, want %s", name, got, vectorSHA256[name])
	}
	return raw
}

func TestVectorFilesPinned(t *testing.T) {
	for name := range vectorSHA256 {
		readVectorFile(t, name)
	}
}

// hexBytes is a hex string in the vector files.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

type sphinxVector struct {
	Nodes []struct {
		ID         hexBytes
		PrivateKey hexBytes
	}
	Path []struct {
		ID        hexBytes
		PublicKey hexBytes
		Commands  []hexBytes
	}
	Packets  []hexBytes
	Payload  hexBytes
	Surb     hexBytes
	SurbKeys hexBytes
}

func loadSphinxVectors(t testing.TB) []sphinxVector {
	t.Helper()
	var vs []sphinxVector
	if err := json.Unmarshal(readVectorFile(t, "sphinx_vectors.json"), &vs); err != nil {
		t.Fatalf("sphinx_vectors.json: %v", err)
	}
	if len(vs) != 10 {
		t.Fatalf("sphinx_vectors.json: %d objects, want 10", len(vs))
	}
	return vs
}

// vectorGeometry is the geometry the vector packets fit: 5 hops and a
// 103-byte forward payload for both halves (see testdata/README.md).
func vectorGeometry(t testing.TB) *Geometry {
	t.Helper()
	g, err := NewGeometry(103, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestKatzenpostVectors unwraps every packet of every object hop by hop and
// compares byte for byte, as the vector README's "How to use" says.
func TestKatzenpostVectors(t *testing.T) {
	g := vectorGeometry(t)
	vs := loadSphinxVectors(t)
	for vi, v := range vs {
		surb := vi >= 5
		n := vi%5 + 1
		name := map[bool]string{false: "forward", true: "surb"}[surb] + "/" + string(rune('0'+n)) + "hops"
		t.Run(name, func(t *testing.T) {
			if len(v.Nodes) != n || len(v.Path) != n || len(v.Packets) != n+1 {
				t.Fatalf("object %d: %d nodes, %d path hops, %d packets; want %d, %d, %d", vi, len(v.Nodes), len(v.Path), len(v.Packets), n, n, n+1)
			}
			if len(v.Packets[n]) != 0 {
				t.Fatalf("last packet entry is not empty")
			}
			if surb != (len(v.Surb) > 0) || surb != (len(v.SurbKeys) > 0) {
				t.Fatalf("Surb/SurbKeys presence does not match the object kind")
			}
			pkt := bytes.Clone(v.Packets[0])
			for i := range n {
				priv, err := NewPrivateKey(v.Nodes[i].PrivateKey)
				if err != nil {
					t.Fatal(err)
				}
				if pub := priv.PublicKey(); !bytes.Equal(pub[:], v.Path[i].PublicKey) {
					t.Fatalf("hop %d: public key %x, want %x", i, pub, v.Path[i].PublicKey)
				}
				if !bytes.Equal(v.Nodes[i].ID, v.Path[i].ID) {
					t.Fatalf("hop %d: node id and path id differ", i)
				}
				if !bytes.Equal(pkt, v.Packets[i]) {
					t.Fatalf("hop %d: input packet differs from Packets[%d]", i, i)
				}
				res, err := g.Unwrap(priv, pkt)
				if err != nil {
					t.Fatalf("hop %d: Unwrap: %v", i, err)
				}
				if tag := sha512_256(v.Packets[i][alphaOffset:betaOffset]); res.ReplayTag != tag {
					t.Fatalf("hop %d: replay tag %x, want %x", i, res.ReplayTag, tag)
				}
				want := v.Path[i].Commands
				if i < n-1 {
					if len(res.Commands) != 2 {
						t.Fatalf("hop %d: %d commands, want NodeDelay, NextNodeHop", i, len(res.Commands))
					}
					d, ok := res.Commands[0].(NodeDelay)
					if !ok || len(want) != 1 || !bytes.Equal(d.AppendTo(nil), want[0]) {
						t.Fatalf("hop %d: first command %#v, want NodeDelay %x", i, res.Commands[0], want)
					}
					next, ok := res.Commands[1].(NextNodeHop)
					if !ok || !bytes.Equal(next.ID[:], v.Path[i+1].ID) {
						t.Fatalf("hop %d: second command %#v, want NextNodeHop to %x", i, res.Commands[1], v.Path[i+1].ID)
					}
					if res.IsTerminal() || res.Payload != nil {
						t.Fatalf("hop %d: non-terminal hop reported terminal or returned a payload", i)
					}
					if !bytes.Equal(pkt, v.Packets[i+1]) {
						t.Fatalf("hop %d: unwrapped packet differs from Packets[%d]\n got %x\nwant %x", i, i+1, pkt, v.Packets[i+1])
					}
					continue
				}
				// Terminal hop.
				if !bytes.Equal(pkt, v.Packets[i]) {
					t.Fatalf("terminal hop modified the packet")
				}
				wantCmds := 1
				if surb {
					wantCmds = 2
				}
				if len(res.Commands) != wantCmds || len(want) != wantCmds {
					t.Fatalf("terminal hop: commands %#v, want %x", res.Commands, want)
				}
				for j, c := range res.Commands {
					if !bytes.Equal(c.AppendTo(nil), want[j]) {
						t.Fatalf("terminal hop: command %d encodes as %x, want %x", j, c.AppendTo(nil), want[j])
					}
				}
				if _, ok := res.Commands[0].(Recipient); !ok {
					t.Fatalf("terminal hop: first command %#v, want Recipient", res.Commands[0])
				}
				if !surb {
					if !bytes.Equal(res.Payload, v.Payload) {
						t.Fatalf("payload %q, want %q", res.Payload, v.Payload)
					}
					continue
				}
				if _, ok := res.Commands[1].(SURBReply); !ok {
					t.Fatalf("terminal hop: second command %#v, want SURBReply", res.Commands[1])
				}
				keys := bytes.Clone(v.SurbKeys)
				got, err := g.DecryptSURBPayload(res.Payload, keys)
				if err != nil {
					t.Fatalf("DecryptSURBPayload: %v", err)
				}
				if !bytes.Equal(got, v.Payload) {
					t.Fatalf("SURB reply %q, want %q", got, v.Payload)
				}
				if !isZero(keys) {
					t.Fatalf("SURB keys not erased after use")
				}
			}
			if surb {
				checkVectorSURB(t, g, v)
			}
		})
	}
}

// checkVectorSURB checks the parts of a SURB object that do not depend on
// randomness: the reply packet is the SURB's header followed by the SURB
// key's encryption of 0^32 ‖ Payload, and the first hop id is Path[0].ID.
// NewPacketFromSURB is deterministic, so it must reproduce Packets[0].
func checkVectorSURB(t *testing.T, g *Geometry, v sphinxVector) {
	t.Helper()
	if len(v.Surb) != g.SURBLength {
		t.Fatalf("Surb is %d bytes, want %d", len(v.Surb), g.SURBLength)
	}
	pkt, first, err := g.NewPacketFromSURB(v.Surb, v.Payload)
	if err != nil {
		t.Fatalf("NewPacketFromSURB: %v", err)
	}
	if !bytes.Equal(first[:], v.Path[0].ID) {
		t.Fatalf("first hop %x, want %x", first, v.Path[0].ID)
	}
	if !bytes.Equal(pkt, v.Packets[0]) {
		t.Fatalf("NewPacketFromSURB does not reproduce Packets[0]")
	}
	// The SURB's own key is the last entry of SurbKeys.
	own := v.SurbKeys[len(v.SurbKeys)-SPRPKeyMaterialLength:]
	if !bytes.Equal(own, v.Surb[g.HeaderLength+NodeIDLength:]) {
		t.Fatalf("the last SurbKeys entry is not the SURB's own key")
	}
}

type commandVector struct {
	NextHopID        hexBytes
	NextHopMAC       hexBytes
	NextHopCmdWant   hexBytes
	RecipientID      hexBytes
	RecipientCmdWant hexBytes
	SURBReplyID      hexBytes
	SURBReplyCmdWant hexBytes
	NodeDelay        uint32
	NodeDelayCmdWant hexBytes
}

func TestKatzenpostCommandVectors(t *testing.T) {
	var v commandVector
	dec := json.NewDecoder(bytes.NewReader(readVectorFile(t, "sphinx_commands_vectors.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("sphinx_commands_vectors.json: %v", err)
	}
	var next NextNodeHop
	copy(next.ID[:], v.NextHopID)
	copy(next.MAC[:], v.NextHopMAC)
	var rcpt Recipient
	copy(rcpt.ID[:], v.RecipientID)
	var reply SURBReply
	copy(reply.ID[:], v.SURBReplyID)
	cases := []struct {
		name string
		cmd  Command
		want []byte
	}{
		{"NextNodeHop", next, v.NextHopCmdWant},
		{"Recipient", rcpt, v.RecipientCmdWant},
		{"SURBReply", reply, v.SURBReplyCmdWant},
		{"NodeDelay", NodeDelay{Delay: v.NodeDelay}, v.NodeDelayCmdWant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.want) == 0 {
				t.Fatal("empty expected encoding")
			}
			got := c.cmd.AppendTo(nil)
			if !bytes.Equal(got, c.want) {
				t.Fatalf("encoding %x, want %x", got, c.want)
			}
			if c.cmd.EncodedLen() != len(c.want) {
				t.Fatalf("EncodedLen %d, want %d", c.cmd.EncodedLen(), len(c.want))
			}
			parsed, err := ParseCommands(c.want)
			if err != nil {
				t.Fatalf("ParseCommands: %v", err)
			}
			if len(parsed) != 1 || parsed[0] != c.cmd {
				t.Fatalf("ParseCommands = %#v, want [%#v]", parsed, c.cmd)
			}
		})
	}
	// All four in one block, as a terminal SURB hop with a delay would
	// carry them, padded with zeros.
	block := make([]byte, 0, 200)
	for _, c := range cases {
		block = append(block, c.want...)
	}
	block = append(block, make([]byte, 20)...)
	parsed, err := ParseCommands(block)
	if err != nil {
		t.Fatalf("ParseCommands(all): %v", err)
	}
	if len(parsed) != len(cases) {
		t.Fatalf("ParseCommands(all): %d commands, want %d", len(parsed), len(cases))
	}
	for i, c := range cases {
		if parsed[i] != c.cmd {
			t.Fatalf("command %d = %#v, want %#v", i, parsed[i], c.cmd)
		}
	}
}
