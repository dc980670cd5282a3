// Command strata-plugin-syncfix serves the syncfix test layer as a plugin.
// syncfix is a fixture for the sync conformance suite, not a protocol to
// deploy.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/synclayer"
)

func main() { sdk.Serve(synclayer.New()) }
