// Command strata-plugin-echo serves the echo test layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/echolayer"
)

func main() { sdk.Serve(echolayer.New()) }
