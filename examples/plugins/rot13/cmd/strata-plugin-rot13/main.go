// Command strata-plugin-rot13 serves the rot13 privacy layer as a Strata
// plugin. Install the binary under this name in one of the host's
// plugins.dir directories.
package main

import (
	"github.com/strata-msg/strata/core/sdk"

	"example.com/strata-rot13"
)

func main() { sdk.Serve(rot13.New()) }
