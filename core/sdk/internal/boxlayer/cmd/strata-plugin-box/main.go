// Command strata-plugin-box serves the box secure layer, a conformance test
// fixture without forward secrecy, as a plugin. Never use it to protect
// real messages.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/boxlayer"
)

func main() { sdk.Serve(boxlayer.New()) }
