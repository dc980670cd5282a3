// Command strata-plugin-whisper serves the whisper privacy layer as a plugin.
package main

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/whisper"
)

func main() { sdk.Serve(whisper.New()) }
