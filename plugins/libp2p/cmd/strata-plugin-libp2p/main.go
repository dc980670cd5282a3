// Command strata-plugin-libp2p serves the libp2p p2p overlay layer as a
// Strata plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	libp2pplugin "github.com/strata-msg/strata/plugins/libp2p"
)

func main() { sdk.Serve(libp2pplugin.New()) }
