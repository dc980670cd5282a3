// Command strata-plugin-padded serves the padded privacy layer as a Strata
// plugin. Install the binary under this name in the host's plugins.dir.
package main

import (
	"github.com/strata-msg/strata/core/sdk"

	padded "example.com/strata-padded"
)

func main() { sdk.Serve(padded.New()) }
