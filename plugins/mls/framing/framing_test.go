package framing

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// group is a three-member test group at one epoch.
type group struct {
	s             *suite.Suite
	ctx           *wire.GroupContext
	sigPriv       [3][]byte
	sigPub        [3][]byte
	encryption    []byte
	senderData    []byte
	membershipKey []byte
}

func newGroup(t testing.TB, id suite.ID) *group {
	t.Helper()
	s, err := suite.New(id)
	if err != nil {
		t.Fatal(err)
	}
	g := &group{
		s: s,
		ctx: &wire.GroupContext{
			Version: wire.MLS10, CipherSuite: wire.CipherSuite(id), GroupID: []byte("group"),
			Epoch: 7, TreeHash: bytes.Repeat([]byte{1}, s.Nh()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.Nh()),
		},
		encryption:    bytes.Repeat([]byte{3}, s.Nh()),
		senderData:    bytes.Repeat([]byte{4}, s.Nh()),
		membershipKey: bytes.Repeat([]byte{5}, s.Nh()),
	}
	for i := range g.sigPriv {
		if g.sigPriv[i], g.sigPub[i], err = s.GenerateSignatureKey(nil); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *group) signerKey(sender wire.Sender) ([]byte, error) {
	if sender.Type != wire.SenderMember || sender.LeafIndex >= uint32(len(g.sigPub)) {
		return nil, fmt.Errorf("no member %+v", sender)
	}
	return g.sigPub[sender.LeafIndex], nil
}

func (g *group) keys(t testing.TB) EpochKeys {
	t.Helper()
	tree, err := schedule.NewSecretTree(g.s, g.encryption, 3, schedule.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	return EpochKeys{SenderDataSecret: g.senderData, SecretTree: tree}
}

func (g *group) content(from uint32, ct wire.ContentType) wire.FramedContent {
	fc := wire.FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch,
		Sender:            wire.Sender{Type: wire.SenderMember, LeafIndex: from},
		AuthenticatedData: []byte("ad"),
		Content:           wire.Content{ContentType: ct},
	}
	switch ct {
	case wire.ContentApplication:
		fc.ApplicationData = []byte("hello, group")
	case wire.ContentProposal:
		fc.Proposal = wire.Proposal{Type: wire.ProposalRemove, Remove: wire.Remove{Removed: 2}}
	case wire.ContentCommit:
		fc.Commit = wire.Commit{Proposals: []wire.ProposalOrRef{}}
	}
	return fc
}

func (g *group) sign(t testing.TB, wf wire.WireFormat, fc wire.FramedContent) *wire.AuthenticatedContent {
	t.Helper()
	ac, err := Sign(g.s, wf, fc, g.ctx, g.sigPriv[fc.Sender.LeafIndex])
	if err != nil {
		t.Fatal(err)
	}
	if fc.ContentType == wire.ContentCommit {
		ac.Auth.ConfirmationTag = bytes.Repeat([]byte{6}, g.s.Nh())
	}
	return ac
}

func encoded(t testing.TB, ac *wire.AuthenticatedContent) []byte {
	t.Helper()
	b, err := wire.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrivateRoundTrip(t *testing.T) {
	for _, id := range suite.Supported() {
		g := newGroup(t, id)
		sender, receiver := g.keys(t), g.keys(t)
		for _, ct := range []wire.ContentType{wire.ContentApplication, wire.ContentProposal, wire.ContentCommit} {
			for _, padTo := range []int{0, 1, 32, 1000} {
				ac := g.sign(t, wire.WireFormatPrivateMessage, g.content(2, ct))
				pm, err := ProtectPrivate(g.s, ac, sender, PrivateOptions{PadTo: padTo})
				if err != nil {
					t.Fatalf("%v: %v", g.s, err)
				}
				got, err := UnprotectPrivate(g.s, pm, g.ctx, receiver, g.signerKey)
				if err != nil {
					t.Fatalf("%v content %d pad %d: %v", g.s, ct, padTo, err)
				}
				if !bytes.Equal(encoded(t, got), encoded(t, ac)) {
					t.Errorf("%v content %d: unprotected content differs", g.s, ct)
				}
				if padTo > 1 && len(pm.Ciphertext)%padTo != 16%padTo {
					t.Errorf("%v: ciphertext of %d bytes not padded to %d (+16 tag)", g.s, len(pm.Ciphertext), padTo)
				}
			}
		}
	}
}

func TestPublicRoundTrip(t *testing.T) {
	for _, id := range suite.Supported() {
		g := newGroup(t, id)
		for _, ct := range []wire.ContentType{wire.ContentProposal, wire.ContentCommit} {
			ac := g.sign(t, wire.WireFormatPublicMessage, g.content(1, ct))
			pm, err := ProtectPublic(g.s, ac, g.ctx, g.membershipKey)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey)
			if err != nil {
				t.Fatalf("%v content %d: %v", g.s, ct, err)
			}
			if !bytes.Equal(encoded(t, got), encoded(t, ac)) {
				t.Errorf("%v content %d: unprotected content differs", g.s, ct)
			}
		}
	}
}

func TestPublicRejects(t *testing.T) {
	g := newGroup(t, suite.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	app := g.sign(t, wire.WireFormatPublicMessage, g.content(1, wire.ContentApplication))
	if _, err := ProtectPublic(g.s, app, g.ctx, g.membershipKey); !errors.Is(err, ErrApplicationPublic) {
		t.Errorf("protect application data: %v", err)
	}
	appMsg := &wire.PublicMessage{Content: app.Content, Auth: app.Auth, MembershipTag: []byte{1}}
	if _, err := UnprotectPublic(g.s, appMsg, g.ctx, g.membershipKey, g.signerKey); !errors.Is(err, ErrApplicationPublic) {
		t.Errorf("unprotect application data: %v", err)
	}
	priv := g.sign(t, wire.WireFormatPrivateMessage, g.content(1, wire.ContentProposal))
	if _, err := ProtectPublic(g.s, priv, g.ctx, g.membershipKey); err == nil {
		t.Error("content signed for PrivateMessage went out as PublicMessage")
	}

	fresh := func() *wire.PublicMessage {
		pm, err := ProtectPublic(g.s, g.sign(t, wire.WireFormatPublicMessage, g.content(1, wire.ContentProposal)), g.ctx, g.membershipKey)
		if err != nil {
			t.Fatal(err)
		}
		return pm
	}
	pm := fresh()
	pm.MembershipTag[3] ^= 1
	if _, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey); !errors.Is(err, ErrMembershipTag) {
		t.Errorf("bad membership tag: %v", err)
	}
	pm = fresh()
	pm.Auth.Signature[0] ^= 1
	if _, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey); !errors.Is(err, ErrMembershipTag) {
		t.Errorf("bad signature under a tag that covers it: %v", err)
	}
	pm = fresh()
	pm.Content.Sender.LeafIndex = 2 // claims another sender; tag and signature break
	if _, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey); err == nil {
		t.Error("forged sender accepted")
	}
	// A signature by the wrong member, with a valid membership tag.
	fc := g.content(1, wire.ContentProposal)
	ac, err := Sign(g.s, wire.WireFormatPublicMessage, fc, g.ctx, g.sigPriv[0])
	if err != nil {
		t.Fatal(err)
	}
	if pm, err = ProtectPublic(g.s, ac, g.ctx, g.membershipKey); err != nil {
		t.Fatal(err)
	}
	if _, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey); !errors.Is(err, suite.ErrBadSignature) {
		t.Errorf("signature of another member: %v, want ErrBadSignature", err)
	}
	other := *g.ctx
	other.Epoch++
	if _, err := UnprotectPublic(g.s, fresh(), &other, g.membershipKey, g.signerKey); !errors.Is(err, ErrWrongGroup) {
		t.Errorf("wrong epoch: %v", err)
	}
	// A commit must carry its confirmation tag.
	commit := g.sign(t, wire.WireFormatPublicMessage, g.content(1, wire.ContentCommit))
	commit.Auth.ConfirmationTag = []byte{}
	if pm, err = ProtectPublic(g.s, commit, g.ctx, g.membershipKey); err != nil {
		t.Fatal(err)
	}
	if _, err := UnprotectPublic(g.s, pm, g.ctx, g.membershipKey, g.signerKey); !errors.Is(err, ErrConfirmationTag) {
		t.Errorf("commit without confirmation tag: %v", err)
	}
}

func TestPrivateRejects(t *testing.T) {
	g := newGroup(t, suite.MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519)
	sender, receiver := g.keys(t), g.keys(t)
	protect := func(ct wire.ContentType) *wire.PrivateMessage {
		pm, err := ProtectPrivate(g.s, g.sign(t, wire.WireFormatPrivateMessage, g.content(0, ct)), sender, PrivateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pm
	}

	pm := protect(wire.ContentApplication)
	if _, err := UnprotectPrivate(g.s, pm, g.ctx, receiver, g.signerKey); err != nil {
		t.Fatal(err)
	}
	if _, err := UnprotectPrivate(g.s, pm, g.ctx, receiver, g.signerKey); !errors.Is(err, schedule.ErrKeyConsumed) {
		t.Errorf("replay: %v, want ErrKeyConsumed", err)
	}

	for name, mutate := range map[string]func(*wire.PrivateMessage){
		"ciphertext":         func(pm *wire.PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 },
		"sender data":        func(pm *wire.PrivateMessage) { pm.EncryptedSenderData[0] ^= 1 },
		"authenticated data": func(pm *wire.PrivateMessage) { pm.AuthenticatedData = []byte("AD") },
		"content type":       func(pm *wire.PrivateMessage) { pm.ContentType = wire.ContentProposal },
	} {
		pm := protect(wire.ContentApplication)
		mutate(pm)
		if _, err := UnprotectPrivate(g.s, pm, g.ctx, receiver, g.signerKey); !errors.Is(err, ErrDecrypt) {
			t.Errorf("modified %s: %v, want ErrDecrypt", name, err)
		}
	}
	other := *g.ctx
	other.Epoch++
	if _, err := UnprotectPrivate(g.s, protect(wire.ContentProposal), &other, receiver, g.signerKey); !errors.Is(err, ErrWrongGroup) {
		t.Errorf("wrong epoch: %v", err)
	}
	// Keys of another epoch: the sender data does not open.
	otherKeys := EpochKeys{SenderDataSecret: bytes.Repeat([]byte{9}, g.s.Nh()), SecretTree: receiver.SecretTree}
	if _, err := UnprotectPrivate(g.s, protect(wire.ContentProposal), g.ctx, otherKeys, g.signerKey); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other sender-data secret: %v, want ErrDecrypt", err)
	}

	public := g.sign(t, wire.WireFormatPublicMessage, g.content(0, wire.ContentProposal))
	if _, err := ProtectPrivate(g.s, public, sender, PrivateOptions{}); err == nil {
		t.Error("content signed for PublicMessage went out as PrivateMessage")
	}
	ext := g.content(0, wire.ContentProposal)
	ext.Sender = wire.Sender{Type: wire.SenderExternal}
	extAC := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: ext}
	if _, err := ProtectPrivate(g.s, extAC, sender, PrivateOptions{}); !errors.Is(err, ErrNotMember) {
		t.Errorf("external sender: %v, want ErrNotMember", err)
	}
	commit := g.sign(t, wire.WireFormatPrivateMessage, g.content(0, wire.ContentCommit))
	commit.Auth.ConfirmationTag = nil
	if _, err := ProtectPrivate(g.s, commit, sender, PrivateOptions{}); !errors.Is(err, ErrConfirmationTag) {
		t.Errorf("commit without confirmation tag: %v", err)
	}
}
