package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestChatNeedsATerminal: strata chat refuses to draw into a pipe, and
// says what to use there.
func TestChatNeedsATerminal(t *testing.T) {
	var out, errs bytes.Buffer
	code := Execute(context.Background(), Env{Stdout: &out, Stderr: &errs}, []string{"chat", "--api", "unix:/nonexistent"})
	if code == 0 || !strings.Contains(errs.String(), "strata chat needs a terminal") {
		t.Fatalf("exit %d, stderr %q", code, errs.String())
	}
}
