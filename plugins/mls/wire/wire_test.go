package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

func sampleLeaf(src LeafNodeSource) LeafNode {
	return LeafNode{
		EncryptionKey: bytes.Repeat([]byte{1}, 32),
		SignatureKey:  bytes.Repeat([]byte{2}, 32),
		Credential:    Credential{Type: CredentialBasic, Identity: []byte("alice")},
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{MLS10},
			CipherSuites: []CipherSuite{1, 3, 0x0a0a},
			Extensions:   []ExtensionType{0x1a1a},
			Proposals:    []ProposalType{},
			Credentials:  []CredentialType{CredentialBasic},
		},
		Source:     src,
		Lifetime:   Lifetime{NotBefore: 1, NotAfter: 1 << 40},
		ParentHash: []byte{9, 9},
		Extensions: []Extension{{Type: ExtensionApplicationID, Data: []byte("app")}},
		Signature:  bytes.Repeat([]byte{3}, 64),
	}
}

func ptr[T any](v T) *T { return &v }

func sampleKeyPackage() KeyPackage {
	return KeyPackage{Version: MLS10, CipherSuite: 1, InitKey: []byte{4, 4}, LeafNode: sampleLeaf(LeafNodeSourceKeyPackage), Signature: []byte{5}}
}

func sampleGroupContext() GroupContext {
	return GroupContext{Version: MLS10, CipherSuite: 1, GroupID: []byte("g"), Epoch: 7, TreeHash: []byte{1}, ConfirmedTranscriptHash: []byte{2}}
}

func sampleCommit() Commit {
	return Commit{
		Proposals: []ProposalOrRef{
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalAdd, Add: &Add{KeyPackage: sampleKeyPackage()}}},
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalRemove, Remove: Remove{Removed: 3}}},
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalPSK, PreSharedKey: PreSharedKey{PSK: PreSharedKeyID{Type: PSKResumption, Usage: ResumptionBranch, PSKGroupID: []byte("g"), PSKEpoch: 2, Nonce: []byte{1}}}}},
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalReInit, ReInit: &ReInit{GroupID: []byte("h"), Version: MLS10, CipherSuite: 3}}},
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalGroupContextExtensions}},
			{Type: ProposalOrRefReference, Reference: bytes.Repeat([]byte{8}, 32)},
		},
		Path: &UpdatePath{
			LeafNode: sampleLeaf(LeafNodeSourceCommit),
			Nodes:    []UpdatePathNode{{EncryptionKey: []byte{6}, EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte{1}, Ciphertext: []byte{2}}}}},
		},
	}
}

// samples returns one MLSMessage of every wire format and a few other
// top-level structures; they seed the fuzz targets too.
func samples() map[string]Encoder {
	kp := sampleKeyPackage()
	content := FramedContent{GroupID: []byte("g"), Epoch: 7, Sender: Sender{Type: SenderMember, LeafIndex: 1}, Content: Content{ContentType: ContentCommit, Commit: sampleCommit()}}
	ext := FramedContent{GroupID: []byte("g"), Epoch: 7, Sender: Sender{Type: SenderExternal, SenderIndex: 2}, Content: Content{ContentType: ContentProposal, Proposal: Proposal{Type: ProposalExternalInit, ExternalInit: ExternalInit{KEMOutput: []byte{1}}}}}
	return map[string]Encoder{
		"key package": &MLSMessage{Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: &kp},
		"public commit": &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: content, Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}, MembershipTag: []byte{3},
		}},
		"public external proposal": &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{Content: ext, Auth: FramedContentAuthData{Signature: []byte{1}}}},
		"private": &MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: &PrivateMessage{
			GroupID: []byte("g"), Epoch: 1, ContentType: ContentApplication, AuthenticatedData: []byte{}, EncryptedSenderData: []byte{1}, Ciphertext: bytes.Repeat([]byte{2}, 100),
		}},
		"welcome":    &MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: &Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{{NewMember: []byte{1}, EncryptedGroupSecrets: HPKECiphertext{KEMOutput: []byte{2}, Ciphertext: []byte{3}}}}, EncryptedGroupInfo: []byte{4}}},
		"group info": &MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: &GroupInfo{GroupContext: sampleGroupContext(), Extensions: []Extension{{Type: ExtensionExternalPub, Data: []byte{1}}}, ConfirmationTag: []byte{1}, Signer: 2, Signature: []byte{3}}},
		"ratchet tree": &RatchetTree{
			{Type: NodeTypeLeaf, Leaf: ptr(sampleLeaf(LeafNodeSourceUpdate))},
			{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte{1}, ParentHash: []byte{}, UnmergedLeaves: []uint32{2}}},
			nil,
			nil,
			{Type: NodeTypeLeaf, Leaf: ptr(sampleLeaf(LeafNodeSourceKeyPackage))},
		},
		"group secrets":              &GroupSecrets{JoinerSecret: []byte{1}, PathSecret: []byte{}, PSKs: []PreSharedKeyID{{Type: PSKExternal, PSKID: []byte("id"), Nonce: []byte{2}}}},
		"group secrets without path": &GroupSecrets{JoinerSecret: []byte{1}},
		"credential x509":            &Credential{Type: CredentialX509, Certificates: [][]byte{{1}, {2, 3}}},
		"credential custom":          &Credential{Type: 0xf000, Data: []byte{1}},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, v := range samples() {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back := fresh(v)
		if err := Unmarshal(b, back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b2, err := Marshal(back)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encoding differs (%v)", name, err)
		}
	}
}

// fresh returns a new zero value of v's type, ready to decode into.
func fresh(v Encoder) interface {
	Encoder
	Decoder
} {
	switch v.(type) {
	case *MLSMessage:
		return new(MLSMessage)
	case *RatchetTree:
		return new(RatchetTree)
	case *GroupSecrets:
		return new(GroupSecrets)
	case *Credential:
		return new(Credential)
	}
	panic("fresh: add the type")
}

func TestOptionalPathSecret(t *testing.T) {
	for _, ps := range [][]byte{nil, {}, {1}} {
		b, _ := Marshal(&GroupSecrets{JoinerSecret: []byte{1}, PathSecret: ps})
		var g GroupSecrets
		if err := Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		if (g.PathSecret == nil) != (ps == nil) || !bytes.Equal(g.PathSecret, ps) {
			t.Errorf("path secret %v came back as %v", ps, g.PathSecret)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	priv, _ := Marshal(samples()["private"])
	pub, _ := Marshal(samples()["public commit"])
	tree, _ := Marshal(samples()["ratchet tree"])
	with := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	tests := []struct {
		name string
		in   []byte
		v    Decoder
		want error
	}{
		{"version 2", with(priv, 1, 2), new(MLSMessage), codec.ErrInvalid},
		{"wire format 6", with(priv, 3, 6), new(MLSMessage), codec.ErrInvalid},
		{"private content type 0", with(priv, 4+2+8, 0), new(MLSMessage), codec.ErrInvalid},
		{"sender type 5", with(pub, 4+2+8, 5), new(MLSMessage), codec.ErrInvalid},
		{"truncated", priv[:len(priv)-1], new(MLSMessage), codec.ErrTooLong},
		{"trailing byte", append(bytes.Clone(priv), 0), new(MLSMessage), codec.ErrTrailing},
		{"node type 3", with(tree, 3, 3), new(RatchetTree), codec.ErrInvalid},
		{"optional flag 2", with(tree, 2, 2), new(RatchetTree), codec.ErrBadOptional},
		{"proposal type 8", []byte{0x00, 0x08}, new(Proposal), codec.ErrInvalid},
		{"proposal or ref type 3", []byte{3}, new(ProposalOrRef), codec.ErrInvalid},
		{"psk type 3", []byte{3, 0, 0}, new(PreSharedKeyID), codec.ErrInvalid},
		{"resumption usage 0", []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, new(PreSharedKeyID), codec.ErrInvalid},
		{"commit path flag 2", []byte{0, 2}, new(Commit), codec.ErrBadOptional},
	}
	for _, tt := range tests {
		if err := Unmarshal(tt.in, tt.v); !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestLeafNodeSourceRejected(t *testing.T) {
	leaf := sampleLeaf(LeafNodeSourceUpdate)
	b, _ := Marshal(&leaf)
	// The source byte follows the two keys (1+32 each), the credential
	// (2+1+5) and the capabilities; find it by re-encoding up to it.
	var w codec.Writer
	w.Opaque(leaf.EncryptionKey)
	w.Opaque(leaf.SignatureKey)
	leaf.Credential.Encode(&w)
	leaf.Capabilities.Encode(&w)
	at := w.Len()
	if b[at] != byte(LeafNodeSourceUpdate) {
		t.Fatalf("source byte not at %d", at)
	}
	b[at] = 4
	if err := Unmarshal(b, new(LeafNode)); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("source 4: error %v", err)
	}
	if _, err := Marshal(&LeafNode{Source: 0}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("encoding source 0: error %v", err)
	}
}

func TestPrivateMessageContentPadding(t *testing.T) {
	c := PrivateMessageContent{Content: Content{ContentType: ContentApplication, ApplicationData: []byte("hi")}, Auth: FramedContentAuthData{Signature: []byte{1}}, Padding: 13}
	b, err := Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1+2+1+1+13 {
		t.Fatalf("encoded %d bytes", len(b))
	}
	got, err := DecodePrivateMessageContent(b, ContentApplication)
	if err != nil || got.Padding != 13 || string(got.ApplicationData) != "hi" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	b[len(b)-1] = 1
	if _, err := DecodePrivateMessageContent(b, ContentApplication); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("non-zero padding: error %v", err)
	}
	// A commit's auth data carries a confirmation tag.
	cc := PrivateMessageContent{Content: Content{ContentType: ContentCommit, Commit: sampleCommit()}, Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2, 2}}}
	b, _ = Marshal(&cc)
	got, err = DecodePrivateMessageContent(b, ContentCommit)
	if err != nil || !bytes.Equal(got.Auth.ConfirmationTag, []byte{2, 2}) || got.Padding != 0 {
		t.Fatalf("commit content: %+v, %v", got, err)
	}
}

func TestTBS(t *testing.T) {
	kpLeaf := sampleLeaf(LeafNodeSourceKeyPackage)
	// The 64-byte signature has a 2-byte length header.
	full, _ := Marshal(&kpLeaf)
	tbs, err := kpLeaf.TBS([]byte("group"), 5)
	if err != nil || !bytes.Equal(tbs, full[:len(full)-len(kpLeaf.Signature)-2]) {
		t.Fatalf("key_package LeafNodeTBS is not the fields before the signature (%v)", err)
	}
	upd := sampleLeaf(LeafNodeSourceUpdate)
	full, _ = Marshal(&upd)
	tbs, _ = upd.TBS([]byte("group"), 5)
	want := append(bytes.Clone(full[:len(full)-len(upd.Signature)-2]), 5, 'g', 'r', 'o', 'u', 'p', 0, 0, 0, 5)
	if !bytes.Equal(tbs, want) {
		t.Fatalf("update LeafNodeTBS:\n got %x\nwant %x", tbs, want)
	}

	gc := sampleGroupContext()
	gcb, _ := Marshal(&gc)
	ac := samples()["public commit"].(*MLSMessage).PublicMessage.AuthenticatedContent()
	if _, err := ac.TBS(nil); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("member FramedContentTBS without a context: %v", err)
	}
	tbs, err = ac.TBS(&gc)
	if err != nil || !bytes.HasPrefix(tbs, []byte{0, 1, 0, 1}) || !bytes.HasSuffix(tbs, gcb) {
		t.Fatalf("FramedContentTBS: %x, %v", tbs, err)
	}
	tbm, _ := ac.TBM(&gc)
	if !bytes.HasPrefix(tbm, tbs) || !bytes.HasSuffix(tbm, []byte{1, 1, 1, 2}) {
		t.Fatalf("AuthenticatedContentTBM: %x", tbm)
	}
	ext := samples()["public external proposal"].(*MLSMessage).PublicMessage.AuthenticatedContent()
	if _, err := ext.TBS(nil); err != nil {
		t.Fatalf("external FramedContentTBS needs no context: %v", err)
	}
}

func TestMarshalIncomplete(t *testing.T) {
	if _, err := Marshal(&MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("MLSMessage without a body: %v", err)
	}
	if _, err := Marshal(&Proposal{Type: 0x0a0a}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("unknown proposal type: %v", err)
	}
	if _, err := Marshal(&Proposal{Type: ProposalAdd}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("Add proposal without its body: %v", err)
	}
	if _, err := Marshal(&Node{Type: NodeTypeParent, Leaf: &LeafNode{}}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("parent Node without a ParentNode: %v", err)
	}
	if _, err := Marshal(&ProposalOrRef{Type: ProposalOrRefProposal}); !errors.Is(err, codec.ErrInvalid) {
		t.Fatalf("ProposalOrRef without its proposal: %v", err)
	}
}
