package layer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
)

// filesContain reports whether any file of dir holds b.
func filesContain(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, b) {
			return true
		}
	}
	return false
}

// TestSupersededSecretsLeaveTheDisk checks that an epoch's secrets are on
// disk while it is current and in no file of the data directory once the
// group has moved on, and that a restart resumes the group.
func TestSupersededSecretsLeaveTheDisk(t *testing.T) {
	n := newNet(t, "a", "b")
	a, b := n.nodes[0], n.nodes[1]
	const conv = "forget"
	n.converse(conv, a, b)
	n.run()
	_, auth, _ := n.state(b, conv)
	if !filesContain(t, b.dir, auth) {
		t.Fatal("the current epoch's authenticator is not on disk: the test looks for the wrong bytes")
	}
	a.l.mu.Lock()
	a.l.commit(a.l.convs[conv], nil, nil, false)
	a.l.flush(n.ctx)
	a.l.mu.Unlock()
	n.run()
	n.agree(conv, a, b)
	if filesContain(t, b.dir, auth) {
		t.Fatal("a superseded epoch's authenticator is still on disk")
	}
	n.restart(b, b.dir)
	n.run()
	n.agree(conv, a, b)
}

// TestSealedAtRest runs a layer with an at-rest key: its signature key,
// KeyPackages and group states are in no file in the clear, and the
// database does not open without the key or with another.
func TestSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0x42}, atrest.KeySize)
	open := func(k []byte) (*Layer, error) {
		l := New()
		env := sdk.Env{Logger: hclog.NewNullLogger(), Out: temitter{&tnet{t: t, hosts: map[string][][]byte{}}, &tnode{}}, Run: context.Background()}
		_, err := l.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: testConfigJSON, DataDir: dir,
			NodeIdentity: bytes.Repeat([]byte{1}, identitySize), AtRestKey: bytes.Clone(k)}, env)
		return l, err
	}
	l, err := open(key)
	if err != nil {
		t.Fatal(err)
	}
	sigPriv := bytes.Clone(l.ident.SignaturePriv)
	initPriv := bytes.Clone(l.kps[0].bundle.InitPriv)
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string][]byte{"signature key": sigPriv, "KeyPackage init key": initPriv} {
		if filesContain(t, dir, secret) {
			t.Errorf("the %s is on disk in the clear", what)
		}
	}
	if _, err := open(nil); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("opened without the key: %v", err)
	}
	if _, err := open(bytes.Repeat([]byte{0x43}, atrest.KeySize)); err == nil || !errors.Is(err, atrest.ErrWrongKey) {
		t.Fatalf("opened with another key: %v", err)
	}
	l, err = open(key)
	if err != nil {
		t.Fatalf("reopened with the key: %v", err)
	}
	if !bytes.Equal(l.ident.SignaturePriv, sigPriv) {
		t.Fatal("another signature key after a restart")
	}
	l.Stop(context.Background())
}
