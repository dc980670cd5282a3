package p2pkit

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/strata-msg/strata/core/sdk"
)

// ListenError turns the error of an overlay that could not listen on
// addrs, the value of config key key, into a config error that names the
// key and the fix when an address is in use; other errors pass unchanged.
// Overlays wrap the system's error in their own, sometimes as text only,
// so the text is checked as well.
func ListenError(err error, key string, addrs []string) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
		return err
	}
	what := "the listen address"
	if len(addrs) > 0 {
		what = strings.Join(addrs, ", ")
	}
	return &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("%s is in use", what), Fix: "choose another port, or 0 for any free one"}
}
