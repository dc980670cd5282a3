package main_test

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestVersionFlag: `strata --version` prints what `strata version` does.
func TestVersionFlag(t *testing.T) {
	flag, err := strata(t, "--version")
	if err != nil || !strings.Contains(flag, "plugin API v") {
		t.Fatalf("strata --version: %v\n%s", err, flag)
	}
	cmd, err := strata(t, "version")
	if err != nil || cmd != flag {
		t.Fatalf("strata version: %v\n%q, strata --version %q", err, cmd, flag)
	}
}

// TestAllowUnverifiedOnlyWherePluginsRun: --allow-unverified is offered by
// the commands that start plugins, and by no other.
func TestAllowUnverifiedOnlyWherePluginsRun(t *testing.T) {
	for _, args := range [][]string{
		{"run"}, {"config", "check"}, {"demo"}, {"testnet"}, {"compare"},
	} {
		out, err := strata(t, append(args, "--help")...)
		if err != nil || !strings.Contains(out, "--allow-unverified") {
			t.Errorf("strata %s --help: %v; want --allow-unverified\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{
		{"send"}, {"listen"}, {"conversation", "create"}, {"conversation", "list"}, {"conversation", "join"},
		{"contact", "list"}, {"contact", "export"}, {"contact", "import"},
		{"plugins", "list"}, {"plugins", "lock"}, {"plugins", "verify"},
	} {
		out, err := strata(t, append(args, "--help")...)
		if err != nil || strings.Contains(out, "allow-unverified") {
			t.Errorf("strata %s --help: %v; it starts no plugin, want no --allow-unverified\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestHelpTexts: run says what it prints and where its API is; compare's
// usage does not make --scenario look required; descriptions are wrapped.
func TestHelpTexts(t *testing.T) {
	out, err := strata(t, "run", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"contact card", "strata:card:", "api.sock", "api.listen", "FINGERPRINT"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help does not mention %q:\n%s", want, out)
		}
	}
	out, err = strata(t, "compare", "--help")
	if err != nil {
		t.Fatal(err)
	}
	usage := usageLine(out)
	if strings.Contains(usage, "--scenario") && !strings.Contains(usage, "[--scenario") {
		t.Errorf("compare's usage shows --scenario as required: %s", usage)
	}
	for _, args := range [][]string{{"contact", "import"}, {"run"}, {"plugins", "lock"}, {"plugins", "list"}, {"compare"}} {
		out, err := strata(t, append(args, "--help")...)
		if err != nil {
			t.Fatal(err)
		}
		desc, _, _ := strings.Cut(out, "\nUsage:")
		for _, line := range strings.Split(desc, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("strata %s --help: a description line of %d columns: %s", strings.Join(args, " "), n, line)
			}
		}
	}
}

// usageLine is the line after "Usage:" in a help text.
func usageLine(help string) string {
	_, rest, _ := strings.Cut(help, "Usage:\n")
	line, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(line)
}
