// Command strata-plugin-bsp serves the bsp sync layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/bsp"
)

func main() { sdk.Serve(bsp.New()) }
