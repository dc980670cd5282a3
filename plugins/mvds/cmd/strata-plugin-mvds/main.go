// Command strata-plugin-mvds serves the mvds sync layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mvds"
)

func main() { sdk.Serve(mvds.New()) }
