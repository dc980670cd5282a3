// Command strata-plugin-mixnet serves the mixnet privacy layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mixnet"
)

func main() { sdk.Serve(mixnet.New()) }
