// Command strata-plugin-rogue serves the rogue test layer as a plugin.
package main

import (
	"os"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/rogue"
)

func main() {
	if n := os.Getenv(rogue.EnvBatchFrames); n != "" {
		os.Setenv(sdk.EnvBatchFrames, n)
	}
	sdk.Serve(rogue.New())
}
