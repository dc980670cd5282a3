// Command strata-plugin-doubleratchet is the doubleratchet secure layer as
// a Strata plugin: X3DH / PQXDH key agreement and the Double Ratchet with
// header encryption. The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/doubleratchet"
)

func main() {
	sdk.Serve(doubleratchet.New())
}
