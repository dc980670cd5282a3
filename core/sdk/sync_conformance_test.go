package sdk_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/internal/synclayer"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// syncOpener opens the syncfix fixture in mode. Out of process it builds
// the plugin binary first, into the test's own directory (TestMain builds
// only the echo plugin).
func syncOpener(t *testing.T, mode sdktest.Mode) sdktest.Opener {
	t.Helper()
	var path string
	if mode == sdktest.OutOfProcess {
		var err error
		path, err = sdktest.Build(t.TempDir(), "github.com/strata-msg/strata/core/sdk/internal/synclayer/cmd/strata-plugin-syncfix", synclayer.Name)
		if err != nil {
			t.Fatal(err)
		}
	}
	return sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_SYNC, func() sdk.Layer { return synclayer.New() }, path)
}

// TestSyncConformance runs the sync suite on the syncfix fixture in both
// modes, which is what shows the suite can be passed by an honest layer.
// The modes run in parallel: each has its own instances and directories.
func TestSyncConformance(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			conformance.Sync(t, syncOpener(t, mode), conformance.Options{})
		})
	}
}

// TestSyncfixMessageID pins the fixture's documented id encoding to a
// vector computed independently (Python hashlib over the documented bytes).
func TestSyncfixMessageID(t *testing.T) {
	var parent synclayer.ID
	for i := range parent {
		parent[i] = 0x01
	}
	author := bytes.Repeat([]byte{0xaa}, synclayer.IdentitySize)
	got := synclayer.MessageID([]byte("g1"), author, []synclayer.ID{parent}, []byte("hello"))
	const want = "7c382c9b1325f0faba35c258ad4bceca2ed60912e0e49046d4ea3e7d8eff0616"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("MessageID = %x, want %s", got, want)
	}
	// The length prefixes keep fields apart.
	a := synclayer.MessageID([]byte("ab"), []byte("c"), nil, nil)
	b := synclayer.MessageID([]byte("a"), []byte("bc"), nil, nil)
	if a == b {
		t.Fatal("moving a byte from the group to the author kept the id")
	}
}
