// Command strata-plugin-devp2p serves the devp2p p2p overlay layer as a
// Strata plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/devp2p"
)

func main() { sdk.Serve(devp2p.New()) }
