// Command strata-plugin-none serves the none privacy layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/none"
)

func main() { sdk.Serve(none.New()) }
