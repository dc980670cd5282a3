package testvectors

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() {
	for _, typ := range []string{"passive-client-welcome", "passive-client-handling-commit", "passive-client-random"} {
		register(typ, checkPassiveClient)
	}
}

// passiveClientVector is one case of the interop suite's passive-client
// files (test-vectors.md, "Passive Client Scenarios").
type passiveClientVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes             `json:"key_package"` // MLSMessage
	SignaturePriv             hexBytes             `json:"signature_priv"`
	EncryptionPriv            hexBytes             `json:"encryption_priv"`
	InitPriv                  hexBytes             `json:"init_priv"`
	Welcome                   hexBytes             `json:"welcome"`      // MLSMessage
	RatchetTree               hexBytes             `json:"ratchet_tree"` // optional
	InitialEpochAuthenticator hexBytes             `json:"initial_epoch_authenticator"`
	Epochs                    []passiveClientEpoch `json:"epochs"`
}

type passiveClientEpoch struct {
	Proposals          []hexBytes `json:"proposals"` // MLSMessages
	Commit             hexBytes   `json:"commit"`    // MLSMessage
	EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
}

// MarshalJSON writes h as a hex string, nil as null.
func (h hexBytes) MarshalJSON() ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	return json.Marshal(hex.EncodeToString(h))
}

// checkPassiveClient follows a group as a passive member: it checks the
// member's private keys against its KeyPackage, joins from the Welcome
// (with the given ratchet tree if the GroupInfo has none, and the external
// PSKs), checks the initial epoch authenticator, then for each epoch
// handles the proposals and the Commit and checks the epoch
// authenticator.
func checkPassiveClient(t *testing.T, data []byte, rep *report) {
	for i, v := range decodeCases[passiveClientVector](t, data) {
		if _, err := suite.New(suite.ID(v.CipherSuite)); err != nil {
			caseSuite(t, v.CipherSuite, rep)
			continue
		}
		if err := runPassiveClient(&v); err != nil {
			t.Errorf("case %d (suite %d): %v", i, v.CipherSuite, err)
			continue
		}
		rep.pass()
	}
}

func runPassiveClient(v *passiveClientVector) error {
	cs, err := suite.New(suite.ID(v.CipherSuite))
	if err != nil {
		return err
	}
	var kpm, wm wire.MLSMessage
	if err := wire.Unmarshal(v.KeyPackage, &kpm); err != nil || kpm.KeyPackage == nil {
		return fmt.Errorf("key_package is not an MLSMessage with a KeyPackage (%v)", err)
	}
	if err := wire.Unmarshal(v.Welcome, &wm); err != nil || wm.Welcome == nil {
		return fmt.Errorf("welcome is not an MLSMessage with a Welcome (%v)", err)
	}
	kp := kpm.KeyPackage
	for _, c := range []struct {
		name      string
		priv, pub []byte
	}{{"init_priv", v.InitPriv, kp.InitKey}, {"encryption_priv", v.EncryptionPriv, kp.LeafNode.EncryptionKey}} {
		if pub, err := cs.HPKEPublicKey(c.priv); err != nil || !bytes.Equal(pub, c.pub) {
			return fmt.Errorf("%s does not match the KeyPackage (%v)", c.name, err)
		}
	}
	sig, err := cs.SignWithLabel(v.SignaturePriv, "test", []byte("passive client"))
	if err == nil {
		err = cs.VerifyWithLabel(kp.LeafNode.SignatureKey, "test", []byte("passive client"), sig)
	}
	if err != nil {
		return fmt.Errorf("signature_priv does not match the KeyPackage: %w", err)
	}

	psks := map[string][]byte{}
	for _, p := range v.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	// The vectors are recordings: the clock is set to the start of the
	// passive client's KeyPackage lifetime, when its group was made.
	when := time.Unix(int64(min(kp.LeafNode.Lifetime.NotBefore, 1<<62)), 0)
	cfg := group.Config{
		Now: func() time.Time { return when },
		ExternalPSK: func(id []byte) ([]byte, bool) {
			s, ok := psks[string(id)]
			return s, ok
		},
		PastEpochs: 128, // resumption PSKs may name much earlier epochs
	}
	var rt wire.RatchetTree
	if v.RatchetTree != nil {
		if err := wire.Unmarshal(v.RatchetTree, &rt); err != nil {
			return fmt.Errorf("ratchet_tree: %w", err)
		}
	}
	bundle := &group.KeyPackageBundle{
		KeyPackage: *kp, InitPriv: v.InitPriv, EncryptionPriv: v.EncryptionPriv,
		Identity: group.Identity{Credential: kp.LeafNode.Credential, SignaturePriv: v.SignaturePriv, SignaturePub: kp.LeafNode.SignatureKey},
	}
	g, err := group.Join(cfg, bundle, wm.Welcome, rt)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		return fmt.Errorf("initial epoch authenticator %x, want %x", g.EpochAuthenticator(), v.InitialEpochAuthenticator)
	}
	for e, ep := range v.Epochs {
		for k, p := range ep.Proposals {
			var m wire.MLSMessage
			if err := wire.Unmarshal(p, &m); err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", e, k, err)
			}
			ev, err := g.Handle(&m)
			if err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", e, k, err)
			}
			if ev.Kind != group.EventProposal {
				return fmt.Errorf("epoch %d proposal %d: a message of kind %d", e, k, ev.Kind)
			}
		}
		var m wire.MLSMessage
		if err := wire.Unmarshal(ep.Commit, &m); err != nil {
			return fmt.Errorf("epoch %d commit: %w", e, err)
		}
		ev, err := g.Handle(&m)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", e, err)
		}
		if ev.Kind != group.EventCommit {
			return fmt.Errorf("epoch %d commit: a message of kind %d", e, ev.Kind)
		}
		if !bytes.Equal(g.EpochAuthenticator(), ep.EpochAuthenticator) {
			return fmt.Errorf("epoch %d (group epoch %d): epoch authenticator %x, want %x", e, g.Epoch(), g.EpochAuthenticator(), ep.EpochAuthenticator)
		}
	}
	return nil
}

// Strata's own passive-client vectors, made by plugins/mls/group (not the
// MLS working group's): generatePassiveClient records a scenario in the
// interop suite's JSON shape, from the point of view of a passive member
// "pat" that joins by Welcome and never sends.

type recorder struct {
	t       *testing.T
	cs      *suite.Suite
	cfg     group.Config
	members map[string]*group.Group
}

func marshalMsg(t *testing.T, m *wire.MLSMessage) hexBytes {
	t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *recorder) identity(name string) group.Identity {
	priv, pub, err := r.cs.GenerateSignatureKey(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return group.Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)}, SignaturePriv: priv, SignaturePub: pub}
}

func (r *recorder) bundle(name string) *group.KeyPackageBundle {
	b, err := group.NewKeyPackage(r.cs, r.identity(name), r.cfg.Now(), 24*time.Hour, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// send delivers a message from one member to all others but the ones in
// skip; pat is not in members while recording.
func (r *recorder) send(from string, m *wire.MLSMessage) {
	b := marshalMsg(r.t, m)
	for name, g := range r.members {
		if name == from {
			continue
		}
		var in wire.MLSMessage
		if err := wire.Unmarshal(b, &in); err != nil {
			r.t.Fatal(err)
		}
		ev, err := g.Handle(&in)
		if err != nil {
			r.t.Fatalf("%s handles %s's message: %v", name, from, err)
		}
		if ev.Removed {
			delete(r.members, name)
		}
	}
}

// commit commits for member from, delivers it, merges it, joins the given
// bundles and returns the commit message and the Welcome.
func (r *recorder) commit(from string, opts group.CommitOptions, joiners ...*group.KeyPackageBundle) (*wire.MLSMessage, *wire.MLSMessage) {
	g := r.members[from]
	pc, err := g.Commit(opts)
	if err != nil {
		r.t.Fatalf("%s commits: %v", from, err)
	}
	r.send(from, pc.Message)
	if err := g.Merge(pc); err != nil {
		r.t.Fatal(err)
	}
	for _, b := range joiners {
		j, err := group.Join(r.cfg, b, pc.Welcome.Welcome, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		r.members[string(b.Identity.Credential.Identity)] = j
	}
	return pc.Message, pc.Welcome
}

func (r *recorder) propose(from string, p wire.Proposal) hexBytes {
	m, err := r.members[from].Propose(p)
	if err != nil {
		r.t.Fatalf("%s proposes: %v", from, err)
	}
	r.send(from, m)
	return marshalMsg(r.t, m)
}

// generatePassiveClient records one scenario: pat joins (with the tree in
// the GroupInfo or given apart, with an external PSK), then the group goes
// through adds by value and by reference, an update by reference, a PSK,
// an empty commit, a remove by reference, a GroupContextExtensions and a
// removal with an add, each commit recorded with its proposals and the
// committer's epoch authenticator. handshake is the wire format the
// members send proposals and commits in.
func generatePassiveClient(t *testing.T, id suite.ID, handshake wire.WireFormat, externalTree bool, epochs bool) passiveClientVector {
	cs, err := suite.New(id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	pskID, pskSecret := []byte("strata passive client psk"), []byte("external psk secret")
	r := &recorder{t: t, cs: cs, members: map[string]*group.Group{}, cfg: group.Config{
		Now:             func() time.Time { return now },
		HandshakeFormat: handshake,
		PadTo:           16,
		ExternalPSK: func(id []byte) ([]byte, bool) {
			return pskSecret, bytes.Equal(id, pskID)
		},
	}}
	gid, err := group.NewGroupID(r.cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := group.Create(r.cfg, cs, gid, r.identity("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.members["alice"] = alice
	bob := r.bundle("bob")
	r.commit("alice", group.CommitOptions{Proposals: []wire.Proposal{group.AddProposal(bob.KeyPackage)}}, bob)

	pat := r.bundle("pat")
	psk, err := alice.ExternalPSKProposal(pskID)
	if err != nil {
		t.Fatal(err)
	}
	_, welcome := r.commit("alice", group.CommitOptions{
		Proposals:    []wire.Proposal{group.AddProposal(pat.KeyPackage), psk},
		ExternalTree: externalTree,
	})
	v := passiveClientVector{
		CipherSuite: uint16(id), KeyPackage: marshalMsg(t, &wire.MLSMessage{Version: 1, WireFormat: wire.WireFormatKeyPackage, KeyPackage: &pat.KeyPackage}),
		SignaturePriv: pat.Identity.SignaturePriv, EncryptionPriv: pat.EncryptionPriv, InitPriv: pat.InitPriv,
		Welcome: marshalMsg(t, welcome), InitialEpochAuthenticator: alice.EpochAuthenticator(),
		Epochs: []passiveClientEpoch{},
	}
	v.ExternalPSKs = append(v.ExternalPSKs, struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	}{pskID, pskSecret})
	if externalTree {
		rt := alice.Tree().Wire()
		b, err := wire.Marshal(&rt)
		if err != nil {
			t.Fatal(err)
		}
		v.RatchetTree = b
	}
	if !epochs {
		return v
	}
	// From here on pat receives everything; the recorder does not run
	// pat (runPassiveClient does).
	record := func(proposals []hexBytes, commit *wire.MLSMessage, committer string) {
		v.Epochs = append(v.Epochs, passiveClientEpoch{
			Proposals: proposals, Commit: marshalMsg(t, commit), EpochAuthenticator: r.members[committer].EpochAuthenticator(),
		})
	}
	// Bob proposes Carol by reference; Alice commits.
	carol := r.bundle("carol")
	props := []hexBytes{r.propose("bob", group.AddProposal(carol.KeyPackage))}
	c, _ := r.commit("alice", group.CommitOptions{}, carol)
	record(props, c, "alice")
	// Carol updates by reference; Bob commits with an external PSK by value.
	up, err := r.members["carol"].UpdateProposal()
	if err != nil {
		t.Fatal(err)
	}
	props = []hexBytes{r.propose("carol", up)}
	psk, err = r.members["bob"].ExternalPSKProposal(pskID)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = r.commit("bob", group.CommitOptions{Proposals: []wire.Proposal{psk}})
	record(props, c, "bob")
	// An empty commit from Carol.
	c, _ = r.commit("carol", group.CommitOptions{})
	record(nil, c, "carol")
	// Carol proposes removing Bob; Alice adds Dave by value in the same commit.
	dave := r.bundle("dave")
	props = []hexBytes{r.propose("carol", group.RemoveProposal(r.members["bob"].LeafIndex()))}
	c, _ = r.commit("alice", group.CommitOptions{Proposals: []wire.Proposal{group.AddProposal(dave.KeyPackage)}}, dave)
	record(props, c, "alice")
	// Dave changes the GroupContext extensions.
	gce := group.GroupContextExtensionsProposal([]wire.Extension{{Type: wire.ExtensionApplicationID, Data: []byte("strata")}})
	c, _ = r.commit("dave", group.CommitOptions{Proposals: []wire.Proposal{gce}})
	record(nil, c, "dave")
	// Two proposals by reference from two members, committed by a third
	// with a forced path.
	erin := r.bundle("erin")
	props = []hexBytes{
		r.propose("dave", group.AddProposal(erin.KeyPackage)),
		r.propose("alice", group.RemoveProposal(r.members["carol"].LeafIndex())),
	}
	c, _ = r.commit("dave", group.CommitOptions{Path: true}, erin)
	record(props, c, "dave")
	return v
}

// TestPassiveClientOwnVectors runs the passive-client checker over
// Strata's own recorded files (testdata/strata/) and the excerpts of the
// working group's (testdata/wg-excerpts/), which the runner does not walk:
// the first are not the working group's, the second are not whole files.
func TestPassiveClientOwnVectors(t *testing.T) {
	for _, dir := range []string{"strata", "wg-excerpts"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "passive-client-*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no files in testdata/%s", dir)
		}
		runPassiveClientFiles(t, files)
	}
}

func runPassiveClientFiles(t *testing.T, files []string) {
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		check, ok := checkers[fileType(path)]
		if !ok {
			t.Fatalf("%s: no checker", path)
		}
		rep := &report{}
		check(t, data, rep)
		t.Logf("%s: %s", path, rep)
		if rep.passed == 0 {
			t.Errorf("%s: no case passed", path)
		}
	}
}

// TestPassiveClientChecker records fresh scenarios, checks they pass, and
// checks the checker catches a wrong initial or later epoch authenticator,
// a missing proposal and a changed commit.
func TestPassiveClientChecker(t *testing.T) {
	for _, tc := range []struct {
		suite        suite.ID
		format       wire.WireFormat
		externalTree bool
	}{
		{1, wire.WireFormatPrivateMessage, false},
		{1, wire.WireFormatPublicMessage, true},
		{3, wire.WireFormatPublicMessage, false},
	} {
		v := generatePassiveClient(t, tc.suite, tc.format, tc.externalTree, true)
		if err := runPassiveClient(&v); err != nil {
			t.Fatalf("suite %d, format %d: %v", tc.suite, tc.format, err)
		}
		broken := []struct {
			name   string
			change func(v *passiveClientVector)
		}{
			{"initial authenticator", func(v *passiveClientVector) { v.InitialEpochAuthenticator[0] ^= 1 }},
			{"last authenticator", func(v *passiveClientVector) { v.Epochs[len(v.Epochs)-1].EpochAuthenticator[0] ^= 1 }},
			{"missing proposal", func(v *passiveClientVector) { v.Epochs[0].Proposals = nil }},
			{"changed commit", func(v *passiveClientVector) { c := v.Epochs[2].Commit; c[len(c)-1] ^= 1 }},
			{"missing psk", func(v *passiveClientVector) { v.ExternalPSKs = nil }},
			{"wrong encryption key", func(v *passiveClientVector) { v.EncryptionPriv = v.InitPriv }},
		}
		for _, b := range broken {
			data, _ := json.Marshal(v)
			var w passiveClientVector
			if err := json.Unmarshal(data, &w); err != nil {
				t.Fatal(err)
			}
			b.change(&w)
			if err := runPassiveClient(&w); err == nil {
				t.Errorf("suite %d: %s: checker passed", tc.suite, b.name)
			}
		}
	}
}

// TestWritePassiveClientVectors rewrites testdata/strata/ when
// STRATA_MLS_WRITE_VECTORS=1.
func TestWritePassiveClientVectors(t *testing.T) {
	if os.Getenv("STRATA_MLS_WRITE_VECTORS") != "1" {
		t.Skip("set STRATA_MLS_WRITE_VECTORS=1 to rewrite testdata/strata/")
	}
	write := func(name string, vs []passiveClientVector) {
		data, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "strata", name), append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var welcome, commits []passiveClientVector
	for _, id := range []suite.ID{1, 2, 3, 4, 5, 6, 7} {
		welcome = append(welcome,
			generatePassiveClient(t, id, wire.WireFormatPrivateMessage, false, false),
			generatePassiveClient(t, id, wire.WireFormatPublicMessage, true, false))
	}
	for _, id := range []suite.ID{1, 2, 3} {
		commits = append(commits,
			generatePassiveClient(t, id, wire.WireFormatPrivateMessage, false, true),
			generatePassiveClient(t, id, wire.WireFormatPublicMessage, true, true))
	}
	write("passive-client-welcome.json", welcome)
	write("passive-client-handling-commit.json", commits)
}
