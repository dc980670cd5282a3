package main_test

import (
	"strings"
	"testing"
)

// TestDemoThreeUsers runs `strata demo` on the default stack (libp2p +
// mixnet + mls + bsp, with the mixnet the testnet builds), its layers in
// process (so that no plugin binary is needed): three users through their
// nodes' APIs, a 1:1 chat, a private group and the public chat, every
// message arriving, delivered and read receipts back. (make demo-ci runs
// it with plugins as processes, and on whisper.)
func TestDemoThreeUsers(t *testing.T) {
	out, err := strata(t, "demo", "--mode", "inproc", "--plugins", t.TempDir(), "-n", "2")
	if err != nil || !strings.Contains(out, "demo ok: every message arrived everywhere") {
		t.Fatalf("strata demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"1:1 alice & bob, as bob sees it:",
		`group "friends", as carol sees it:`,
		`· alice created the group "friends", inviting bob, carol`,
		"· carol joined",
		"carol: carol to the group, 2   [delivered 2/2, read by alice, bob]",
		"alice: hi bob, 2 from alice   [delivered 1/1, read by bob]",
		"1:1 alice & bob      4     4/4",
		`group "friends"      6     12/12`,
		"public #strata-demo  6     12/12",
		"public #strata-demo, as bob sees it:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
