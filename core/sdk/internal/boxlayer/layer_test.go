package boxlayer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// node is a started layer driven directly, without the SDK's runtime.
type node struct {
	l       *Layer
	out     *sdktest.Recorder
	id      []byte
	section []byte
}

func identity(b byte) []byte { return bytes.Repeat([]byte{b}, identitySize) }

func startNode(t *testing.T, dir string, id []byte) *node {
	t.Helper()
	n := &node{l: New(), out: &sdktest.Recorder{}, id: id}
	ctx := context.Background()
	if _, err := n.l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: "{}", DataDir: dir, NodeIdentity: id}, sdk.Env{Logger: hclog.NewNullLogger(), Out: n.out}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	resp, err := n.l.Start(ctx, &commonv1.StartRequest{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	n.section = resp.GetContactSection()
	t.Cleanup(func() { _ = n.l.Stop(context.Background()) })
	return n
}

func (n *node) add(t *testing.T, c *node) {
	t.Helper()
	if _, err := n.l.AddContact(context.Background(), &securev1.AddContactRequest{Identity: c.id, ContactSection: c.section}); err != nil {
		t.Fatalf("AddContact: %v", err)
	}
}

func (n *node) handle(frames ...*commonv1.Frame) []*commonv1.Frame {
	n.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: frames})
	return n.out.Take()
}

func (n *node) counter(name string) uint64 {
	return n.l.Health(context.Background()).GetCounters()[name]
}

func down(peer, conv, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Conversation: conv, Payload: payload, TraceId: 7}
}

// arrive turns a sealed DOWN frame from sender into the UP frame its
// recipient gets.
func arrive(from *node, f *commonv1.Frame) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: from.id, Conversation: f.GetConversation(), Payload: f.GetPayload()}
}

func TestKeyPersistsAndIsPrivate(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, dir, identity(1))
	if len(a.section) != keySize {
		t.Fatalf("contact section is %d bytes, want %d", len(a.section), keySize)
	}
	st, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := a.l.Bundle(context.Background(), &securev1.BundleRequest{})
	if err != nil || !bytes.Equal(b.GetContactSection(), a.section) {
		t.Fatalf("Bundle: %x, %v; want the contact section %x", b.GetContactSection(), err, a.section)
	}
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again := startNode(t, dir, identity(1)); !bytes.Equal(again.section, a.section) {
		t.Fatal("the key pair changed across a restart")
	}
}

func TestStopZeroesKeys(t *testing.T) {
	a, b := startNode(t, t.TempDir(), identity(1)), startNode(t, t.TempDir(), identity(2))
	a.add(t, b)
	priv, key := a.l.priv, a.l.contacts[string(b.id)].key
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv, make([]byte, keySize)) || !bytes.Equal(key, make([]byte, keySize)) {
		t.Fatal("key material survives Stop")
	}
	if out := a.handle(down(b.id, []byte("c"), []byte("after stop"))); len(out) != 0 {
		t.Fatalf("a stopped layer emitted %d frames", len(out))
	}
}

func TestAddContactPersistsAndIsIdempotent(t *testing.T) {
	dirA := t.TempDir()
	a, b := startNode(t, dirA, identity(1)), startNode(t, t.TempDir(), identity(2))
	a.add(t, b)
	path := filepath.Join(dirA, contactsFile)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	a.add(t, b)
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("adding a contact again rewrote the contacts file")
	}
	if got := a.counter("contacts"); got != 1 {
		t.Fatalf("contacts = %d, want 1", got)
	}
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	a = startNode(t, dirA, identity(1))
	b.add(t, a)
	sealed := a.handle(down(b.id, []byte("c"), []byte("after a restart")))
	if len(sealed) != 1 {
		t.Fatalf("the restarted node sealed %d frames for a stored contact, want 1", len(sealed))
	}
	if got := b.handle(arrive(a, sealed[0])); len(got) != 1 || string(got[0].GetPayload()) != "after a restart" {
		t.Fatalf("the recipient got %v", got)
	}
}

func TestAddContactRefuses(t *testing.T) {
	a, b := startNode(t, t.TempDir(), identity(1)), startNode(t, t.TempDir(), identity(2))
	tests := []struct {
		name     string
		identity []byte
		section  []byte
	}{
		{"short identity", b.id[:31], b.section},
		{"short section", b.id, b.section[:31]},
		{"own identity", a.id, b.section},
		{"low-order key", b.id, make([]byte, keySize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.l.AddContact(context.Background(), &securev1.AddContactRequest{Identity: tt.identity, ContactSection: tt.section})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

func TestGroupFanOut(t *testing.T) {
	a := startNode(t, t.TempDir(), identity(1))
	b, c := startNode(t, t.TempDir(), identity(2)), startNode(t, t.TempDir(), identity(3))
	stranger := identity(4)
	a.add(t, b)
	a.add(t, c)
	b.add(t, a)
	c.add(t, a)
	conv := []byte("group")
	if _, err := a.l.SetConversation(context.Background(), &securev1.ConversationRequest{Id: conv, Members: [][]byte{a.id, b.id, c.id, stranger, b.id}}); err != nil {
		t.Fatal(err)
	}
	out := a.handle(down(nil, conv, []byte("to everyone")))
	if len(out) != 2 {
		t.Fatalf("group send made %d frames, want one for each member that is a contact (2)", len(out))
	}
	if got := a.counter("dropped_unknown_contact"); got != 1 {
		t.Fatalf("dropped_unknown_contact = %d, want 1 (the member that is no contact)", got)
	}
	for _, f := range out {
		to := map[string]*node{string(b.id): b, string(c.id): c}[string(f.GetPeer())]
		if to == nil {
			t.Fatalf("group frame for unexpected peer %x", f.GetPeer())
		}
		if f.GetTraceId() != 7 {
			t.Fatalf("trace id %d not copied", f.GetTraceId())
		}
		if got := to.handle(arrive(a, f)); len(got) != 1 || string(got[0].GetPayload()) != "to everyone" || !bytes.Equal(got[0].GetPeer(), a.id) {
			t.Fatalf("member got %v", got)
		}
	}
	if out := a.handle(down(nil, []byte("never set"), []byte("x"))); len(out) != 0 || a.counter("dropped_unknown_conversation") != 1 {
		t.Fatalf("a group send to an unknown conversation made %d frames", len(out))
	}
}

func TestSetConversationRefuses(t *testing.T) {
	a := startNode(t, t.TempDir(), identity(1))
	for name, req := range map[string]*securev1.ConversationRequest{
		"empty id":         {Members: [][]byte{a.id}},
		"short member":     {Id: []byte("c"), Members: [][]byte{a.id, identity(2)[:5]}},
		"without the node": {Id: []byte("c"), Members: [][]byte{identity(2)}},
	} {
		if _, err := a.l.SetConversation(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
}

func TestReplayRefusedWithinBatchAndAfterRestart(t *testing.T) {
	dirB := t.TempDir()
	a, b := startNode(t, t.TempDir(), identity(1)), startNode(t, dirB, identity(2))
	a.add(t, b)
	b.add(t, a)
	sealed := a.handle(down(b.id, []byte("c"), []byte("once only")))
	up := arrive(a, sealed[0])
	if got := b.handle(up, up); len(got) != 1 {
		t.Fatalf("a frame twice in one batch was delivered %d times", len(got))
	}
	if got := b.counter("dropped_replay"); got != 1 {
		t.Fatalf("dropped_replay = %d, want 1", got)
	}
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = startNode(t, dirB, identity(2))
	if got := b.handle(up); len(got) != 0 {
		t.Fatal("a message delivered before a restart was delivered again after it")
	}
	if got := b.counter("dropped_replay"); got != 1 {
		t.Fatalf("dropped_replay after restart = %d, want 1", got)
	}
}

func TestSeenLogRepairsTornTail(t *testing.T) {
	dir := t.TempDir()
	rec := append(identity(9), bytes.Repeat([]byte{5}, nonceSize)...)
	torn := append(bytes.Clone(rec), rec[:10]...)
	if err := os.WriteFile(filepath.Join(dir, seenFile), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	f, seen, err := openSeenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var nonce [nonceSize]byte
	copy(nonce[:], rec[identitySize:])
	if !seen.has(identity(9), nonce) || seen.count(identity(9)) != 1 {
		t.Fatal("the whole record was not loaded")
	}
	if err := appendSeen(f, rec); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, seenFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2*seenRecordSize {
		t.Fatalf("replay log is %d bytes after repair and one append, want %d", len(b), 2*seenRecordSize)
	}
}

func TestDropsAreCounted(t *testing.T) {
	a, b := startNode(t, t.TempDir(), identity(1)), startNode(t, t.TempDir(), identity(2))
	a.add(t, b)
	b.add(t, a)
	sealed := a.handle(down(b.id, []byte("c"), []byte("hello")))[0]
	bad := bytes.Clone(sealed.GetPayload())
	bad[len(bad)-1] ^= 1
	cases := []struct {
		counter string
		frame   *commonv1.Frame
	}{
		{"dropped_bad_ciphertext", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: a.id, Conversation: []byte("c"), Payload: bad}},
		{"dropped_malformed", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: a.id, Payload: []byte{1, 2, 3}}},
		{"dropped_unknown_contact", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: identity(7), Payload: sealed.GetPayload()}},
		{"dropped_unknown_contact", down(identity(7), nil, []byte("x"))},
		{"dropped_oversize", down(a.id, nil, make([]byte, MaxPayload+1))},
		{"dropped_wrong_direction", &commonv1.Frame{Payload: []byte("x")}},
	}
	for _, c := range cases {
		before := b.counter(c.counter)
		if out := b.handle(c.frame); len(out) != 0 {
			t.Errorf("%s: emitted %v", c.counter, out)
		}
		if b.counter(c.counter) != before+1 {
			t.Errorf("%s did not grow", c.counter)
		}
	}
	if got := b.handle(arrive(a, sealed)); len(got) != 1 {
		t.Fatal("the genuine frame no longer opens after the failed attempts")
	}
}

func TestWithoutIdentity(t *testing.T) {
	a := startNode(t, t.TempDir(), nil)
	if out := a.handle(down(identity(2), nil, []byte("x")), &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: identity(2), Payload: []byte("y")}); len(out) != 0 {
		t.Fatalf("a layer without identity emitted %v", out)
	}
	if got := a.counter("dropped_no_identity"); got != 2 {
		t.Fatalf("dropped_no_identity = %d, want 2", got)
	}
	l := New()
	_, err := l.Configure(context.Background(), &commonv1.ConfigureRequest{DataDir: t.TempDir(), NodeIdentity: identity(1)[:31]}, sdk.Env{Out: &sdktest.Recorder{}})
	if err == nil {
		t.Fatal("a 31-byte node identity was accepted")
	}
}
