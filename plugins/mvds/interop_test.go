package mvds

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// The fixtures of testdata/spec: payloads that protoc encoded from the
// 2/MVDS + 4/MVDS-META schema (testdata/spec/README.md), and the ids of
// their messages computed by testdata/spec/ids.py.
//
//go:generate sh testdata/spec/gen.sh

// specGroup is the group of every message in the fixtures.
var specGroup = bytes.Repeat([]byte{0x01}, 32)

// The ids of the chain fixture's "root" and "reply" (ids.txt).
const (
	specRootID  = "25fb4600ec46f397542e621d7f10ba5cb771c81bab44b7a24c805d1f9b6162f4"
	specReplyID = "d02db329d4d9502ef2d85ba01d4d090079d3901d76d8984ed42762d6428449cc"
)

// specFixture is what a fixture holds, field by field, as its .txtpb
// writes it.
type specFixture struct {
	name                  string
	acks, offers, reqs    []string // hex
	messages              []specWant
	strataEncodesMessages bool // specMessage makes each message byte for byte
}

type specWant struct {
	ts        int64
	body      string
	metadata  bool // the field is present
	parents   []string
	ephemeral bool
}

func rep(b byte) string { return strings.Repeat(hex.EncodeToString([]byte{b}), 32) }

var specFixtures = []specFixture{
	{name: "ids", acks: []string{rep(0xa1), rep(0xa2)}, offers: []string{rep(0xb1)}, reqs: []string{rep(0xc1), rep(0xc2)}},
	{name: "plain", messages: []specWant{{ts: 1, body: "hello"}}, strataEncodesMessages: true},
	{name: "chain", messages: []specWant{
		{ts: 1700000002, body: "child", metadata: true, parents: []string{specRootID, specReplyID}},
		{ts: 1700000001, body: "reply", metadata: true, parents: []string{specRootID}},
		{ts: 1700000000, body: "root"},
	}, strataEncodesMessages: true},
	{name: "ephemeral", acks: []string{rep(0xa1)}, messages: []specWant{
		{ts: 1700000000, body: "typing", metadata: true, ephemeral: true},
	}, strataEncodesMessages: true},
	{name: "everything", acks: []string{rep(0xa1)}, offers: []string{rep(0xb1), rep(0xb2)}, reqs: []string{rep(0xc1)}, messages: []specWant{
		{ts: -5, body: "before 1970"},
		{ts: 1700000000123, metadata: true},
		{ts: 1700000000124, body: "seen", metadata: true, parents: []string{specRootID}, ephemeral: true},
	}},
}

// readSpec returns a fixture's bytes.
func readSpec(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "spec", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// specIDs reads testdata/spec/ids.txt: the ids of each fixture's
// messages, in order.
func specIDs(t testing.TB) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "spec", "ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			t.Fatalf("ids.txt: line %q", sc.Text())
		}
		name := strings.TrimSuffix(fields[0], ".bin")
		if i, err := strconv.Atoi(fields[1]); err != nil || i != len(out[name]) {
			t.Fatalf("ids.txt: line %q out of order", sc.Text())
		}
		out[name] = append(out[name], fields[2])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unknownFields lists the messages, anywhere in m, that hold fields their
// schema does not know.
func unknownFields(m protoreflect.Message) []string {
	var out []string
	if len(m.GetUnknown()) > 0 {
		out = append(out, string(m.Descriptor().FullName()))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := range v.List().Len() {
				out = append(out, unknownFields(v.List().Get(i).Message())...)
			}
		default:
			out = append(out, unknownFields(v.Message())...)
		}
		return true
	})
	return out
}

func hexIDs(raw [][]byte) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = hex.EncodeToString(r)
	}
	return out
}

// TestSpecFixtures decodes every fixture that protoc encoded from the
// spec's schema: every field comes out as the fixture's text wrote it,
// none is left unknown, the node's decoders take every record and
// message, re-encoding (with the decoded records put through Strata's
// payload builder, and messages rebuilt by Strata's own encoder) gives the
// same bytes, and MessageID gives the ids that ids.py computed
// independently.
func TestSpecFixtures(t *testing.T) {
	ids := specIDs(t)
	for _, fx := range specFixtures {
		t.Run(fx.name, func(t *testing.T) {
			raw := readSpec(t, fx.name)
			var p wirepb.Payload // unknown fields kept, to be found
			if err := proto.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if u := unknownFields(p.ProtoReflect()); len(u) > 0 {
				t.Fatalf("fields left unknown in %v", u)
			}
			if !slices.Equal(hexIDs(p.Acks), fx.acks) || !slices.Equal(hexIDs(p.Offers), fx.offers) || !slices.Equal(hexIDs(p.Requests), fx.reqs) {
				t.Fatalf("acks %v offers %v requests %v", hexIDs(p.Acks), hexIDs(p.Offers), hexIDs(p.Requests))
			}
			if len(p.BoundMessages) != 0 || len(p.Messages) != len(fx.messages) || len(ids[fx.name]) != len(fx.messages) {
				t.Fatalf("%d messages, %d bound, %d ids; want %d", len(p.Messages), len(p.BoundMessages), len(ids[fx.name]), len(fx.messages))
			}
			dp, err := decodePayload(raw, 16)
			if err != nil {
				t.Fatalf("decodePayload: %v", err)
			}
			pb := newPayloadBuilder(MinFrame, 16)
			for _, a := range dp.Acks {
				pb.addAck(ID(a))
			}
			for _, o := range dp.Offers {
				pb.addOffer(ID(o))
			}
			for _, r := range dp.Requests {
				pb.addRequest(ID(r))
			}
			for i, m := range p.Messages {
				w := fx.messages[i]
				if !bytes.Equal(m.GroupId, specGroup) || m.Timestamp != w.ts || string(m.Body) != w.body || (m.Metadata != nil) != w.metadata || len(m.Author) != 0 {
					t.Fatalf("message %d: %v", i, m)
				}
				if got := hexIDs(m.GetMetadata().GetParents()); !slices.Equal(got, w.parents) || m.GetMetadata().GetEphemeral() != w.ephemeral {
					t.Fatalf("message %d: parents %v ephemeral %v", i, got, m.GetMetadata().GetEphemeral())
				}
				if got := MessageID(m.GroupId, m.Timestamp, m.Body).String(); got != ids[fx.name][i] {
					t.Fatalf("message %d: MessageID %s, ids.py %s", i, got, ids[fx.name][i])
				}
				c, err := decodeSpec(dp.Messages[i], MaxParentsLimit)
				if err != nil {
					t.Fatalf("message %d: decodeSpec: %v", i, err)
				}
				if c.format != formatSpec || c.author != nil || string(c.payload) != w.body || c.ephemeral != w.ephemeral || len(c.parents) != len(w.parents) {
					t.Fatalf("message %d: decoded %+v", i, c)
				}
				for k, par := range c.parents {
					if par.String() != w.parents[k] {
						t.Fatalf("message %d: parent %d is %s", i, k, par)
					}
				}
				own := specMessage(m.GroupId, m.Timestamp, c.payload, c.parents, c.ephemeral)
				same := bytes.Equal(encodeMessage(t, own), encodeMessage(t, m))
				if fx.strataEncodesMessages && !same {
					t.Fatalf("message %d: Strata encodes it as %x, protoc as %x", i, encodeMessage(t, own), encodeMessage(t, m))
				}
				if !fx.strataEncodesMessages && same != (w.metadata == (len(w.parents) > 0 || w.ephemeral)) {
					t.Fatalf("message %d: Strata's encoding equal %v; it differs exactly when the metadata is present and empty", i, same)
				}
				pb.addMessage(outMessage{m: dp.Messages[i], format: formatSpec}, c.ephemeral)
			}
			if again := encode(t, &p); !bytes.Equal(again, raw) {
				t.Fatalf("re-encoded as %x, protoc made %x", again, raw)
			}
			built, err := pb.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(built, raw) || pb.size != len(raw) {
				t.Fatalf("the payload builder makes %x (counting %d bytes), protoc made %x", built, pb.size, raw)
			}
		})
	}
}

// TestUnknownFieldsFound holds unknownFields to finding what it must, so
// that TestSpecFixtures's check can fail: status-im/mvds's group_offers
// (5005) and a field inside a message's metadata are unknown here.
func TestUnknownFieldsFound(t *testing.T) {
	raw := protowire.AppendTag(readSpec(t, "ids"), 5005, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte{0x0a, 0x01, 0x01})
	var p wirepb.Payload
	if err := proto.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if u := unknownFields(p.ProtoReflect()); !slices.Equal(u, []string{"strata.mvds.v1.Payload"}) {
		t.Fatalf("unknown fields in %v, want the Payload's", u)
	}
	md := protowire.AppendTag(nil, 3, protowire.VarintType)
	md = protowire.AppendVarint(md, 1)
	m := protowire.AppendTag(nil, 6004, protowire.BytesType)
	m = protowire.AppendBytes(m, md)
	pl := protowire.AppendTag(nil, 5004, protowire.BytesType)
	pl = protowire.AppendBytes(pl, m)
	p.Reset()
	if err := proto.Unmarshal(pl, &p); err != nil {
		t.Fatal(err)
	}
	if u := unknownFields(p.ProtoReflect()); !slices.Equal(u, []string{"strata.mvds.v1.Metadata"}) {
		t.Fatalf("unknown fields in %v, want the Metadata's", u)
	}
}

func encodeMessage(t testing.TB, m *wirepb.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// specNode is node a in the fixtures' group with b and c, in the spec
// wire mode (the default). The tnode's helpers that name testGroupID
// (ack, state) do not apply: the test acknowledges nothing to a.
func specNode(t *testing.T) *tnode {
	t.Helper()
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	if err := a.n.setGroup(context.Background(), specGroup, [][]byte{a.id, identity("b"), identity("c")}); err != nil {
		t.Fatal(err)
	}
	return a
}

// receiveSpec hands a payload from b in the fixtures' group to a.
func receiveSpec(t *testing.T, a *tnode, payload []byte) {
	t.Helper()
	ds, err := a.n.receive(context.Background(), []inbound{{group: specGroup, from: identity("b"), payload: payload}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.take(ds)
}

// TestSpecChainDelivery: the chain fixture from b, children first in one
// payload, is delivered parents first, with the ids ids.py computed, b as
// the author and the bodies as payloads; a acks all three to b, and
// relays them to c as offers; c's request gets each message back byte for
// byte as protoc encoded it, naming b as the author (Message.author).
func TestSpecChainDelivery(t *testing.T) {
	a := specNode(t)
	raw := readSpec(t, "chain")
	receiveSpec(t, a, raw)
	want := specIDs(t)["chain"] // child, reply, root
	var got []string
	for _, d := range a.order {
		got = append(got, d.id.String())
		if !bytes.Equal(d.author, identity("b")) || !bytes.Equal(d.group, specGroup) || d.ephemeral {
			t.Fatalf("delivery %+v", d)
		}
	}
	if !slices.Equal(got, []string{want[2], want[1], want[0]}) {
		t.Fatalf("delivered %v, want root, reply, child: %v", got, want)
	}
	if p := []string{string(a.order[0].payload), string(a.order[1].payload), string(a.order[2].payload)}; !slices.Equal(p, []string{"root", "reply", "child"}) {
		t.Fatalf("payloads %q", p)
	}
	out := a.tick()
	var fixture wirepb.Payload
	if err := proto.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		p, err := decodePayload(o.payload, 16)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case bytes.Equal(o.peer, identity("b")):
			if acks := hexIDs(p.Acks); !slices.Equal(acks, []string{want[0], want[1], want[2]}) {
				t.Fatalf("acks to b %v, want %v", acks, want)
			}
		case bytes.Equal(o.peer, identity("c")):
			if offers := hexIDs(p.Offers); len(offers) != 3 {
				t.Fatalf("offers to c %v", offers)
			}
		}
	}
	var reqs [][]byte
	for _, id := range want {
		r, _ := hex.DecodeString(id)
		reqs = append(reqs, r)
	}
	if ds, err := a.n.receive(context.Background(), []inbound{{group: specGroup, from: identity("c"), payload: encode(t, &wirepb.Payload{Requests: reqs})}}, nil); err != nil || len(ds) != 0 {
		t.Fatalf("c's requests: %v, %v", ds, err)
	}
	n := 0
	for _, o := range a.tick() {
		if !bytes.Equal(o.peer, identity("c")) {
			continue
		}
		p, err := decodePayload(o.payload, 16)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if !bytes.Equal(m.Author, identity("b")) {
				t.Fatalf("relayed copy names author %x, want b", m.Author)
			}
			m.Author = nil
			k := slices.IndexFunc(fixture.Messages, func(f *wirepb.Message) bool { return f.Timestamp == m.Timestamp })
			if k < 0 || !bytes.Equal(encodeMessage(t, m), encodeMessage(t, fixture.Messages[k])) {
				t.Fatalf("relayed %x, protoc's message %d is %x", encodeMessage(t, m), k, encodeMessage(t, fixture.Messages[max(k, 0)]))
			}
			n++
		}
	}
	if n != 3 {
		t.Fatalf("a answered c's requests with %d messages, want 3", n)
	}
}

// TestSpecEphemeralAndEverything: the ephemeral fixture's message (its
// timestamp in seconds, as the Go node writes it) is delivered once as
// ephemeral and never acked; the everything fixture's messages: the one
// with a negative timestamp and the one with an empty body and empty
// metadata go up, the ephemeral one with a missing parent waits for it,
// and a requests it from b.
func TestSpecEphemeralAndEverything(t *testing.T) {
	a := specNode(t)
	receiveSpec(t, a, readSpec(t, "ephemeral"))
	ids := specIDs(t)
	if len(a.order) != 1 || a.order[0].id.String() != ids["ephemeral"][0] || !a.order[0].ephemeral || string(a.order[0].payload) != "typing" {
		t.Fatalf("delivered %+v, want the ephemeral message", a.order)
	}
	receiveSpec(t, a, readSpec(t, "ephemeral"))
	if len(a.order) != 1 || a.counter("duplicates") != 1 {
		t.Fatalf("a replay: delivered %d, duplicates %d", len(a.order), a.counter("duplicates"))
	}
	if out := a.tick(); len(out) != 0 {
		t.Fatalf("a sent %d payloads after an ephemeral message and an unknown ack", len(out))
	}

	a.order = nil
	receiveSpec(t, a, readSpec(t, "everything"))
	if len(a.order) != 2 || a.order[0].id.String() != ids["everything"][0] || string(a.order[0].payload) != "before 1970" ||
		a.order[1].id.String() != ids["everything"][1] || len(a.order[1].payload) != 0 {
		t.Fatalf("delivered %+v", a.order)
	}
	if st, err := a.n.state(context.Background(), specGroup); err != nil || st.pending != 1 || st.messages != 2 {
		t.Fatalf("state %+v (%v), want 2 stored and the ephemeral one pending", st, err)
	}
	for _, o := range a.tick() {
		if !bytes.Equal(o.peer, identity("b")) {
			continue
		}
		p, err := decodePayload(o.payload, 16)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(hexIDs(p.Requests), specRootID) || len(p.Acks) != 2 {
			t.Fatalf("to b: requests %v, acks %d; want the missing parent requested and both stored messages acked", hexIDs(p.Requests), len(p.Acks))
		}
		return
	}
	t.Fatal("a sent nothing to b")
}

// TestSpecLayerDelivery drives the layer with the chain fixture's
// messages, one frame from b each, children first: nothing goes up until
// the root comes, then the three go up as UP frames, parents first, with
// the ids ids.py computed and b as the author.
func TestSpecLayerDelivery(t *testing.T) {
	ctx := context.Background()
	out := &sdktest.Recorder{}
	l := manage(New())
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: `{"epoch": "1m"}`, DataDir: t.TempDir(), NodeIdentity: identity("a")}, sdk.Env{Logger: hclog.NewNullLogger(), Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: specGroup, Members: [][]byte{identity("a"), identity("b")}}); err != nil {
		t.Fatal(err)
	}
	var chain wirepb.Payload
	if err := proto.Unmarshal(readSpec(t, "chain"), &chain); err != nil {
		t.Fatal(err)
	}
	want := specIDs(t)["chain"]
	for i, m := range chain.Messages { // child, reply, root
		l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{
			Direction: commonv1.Direction_DIRECTION_UP, Conversation: specGroup, Peer: identity("b"), TraceId: uint64(i + 1),
			Payload: encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}}),
		}}})
		up := out.TakeDirection(commonv1.Direction_DIRECTION_UP)
		if i < 2 {
			if len(up) != 0 {
				t.Fatalf("after message %d (parents missing) %d UP frames", i, len(up))
			}
			continue
		}
		var got []string
		for _, f := range up {
			got = append(got, hex.EncodeToString(f.GetMessageId()))
			if !bytes.Equal(f.GetPeer(), identity("b")) || !bytes.Equal(f.GetConversation(), specGroup) {
				t.Fatalf("UP frame %v", f)
			}
		}
		if !slices.Equal(got, []string{want[2], want[1], want[0]}) {
			t.Fatalf("UP frames %v, want root, reply, child %v", got, want)
		}
		if string(up[0].GetPayload()) != "root" || string(up[2].GetPayload()) != "child" || up[0].GetTraceId() != 3 || up[2].GetTraceId() != 1 {
			t.Fatalf("UP frames %v", up)
		}
	}
	if st, err := l.State(ctx, &syncv1.StateRequest{Group: specGroup}); err != nil || st.GetDelivered() != 3 || st.GetPending() != 0 {
		t.Fatalf("State %v, %v", st, err)
	}
}
