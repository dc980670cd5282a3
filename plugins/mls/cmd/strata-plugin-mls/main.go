// Command strata-plugin-mls is the mls secure layer as a Strata plugin:
// Messaging Layer Security (RFC 9420) groups with serverless commit
// ordering. The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mls/layer"
)

func main() {
	sdk.Serve(layer.New())
}
