// Command strata is the Strata host: it runs a node from a config file,
// checks configs, manages plugins and contacts, and runs the demo.
package main

import (
	"context"
	"os"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/cli"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/bsp"
	"github.com/strata-msg/strata/plugins/devp2p"
	"github.com/strata-msg/strata/plugins/doubleratchet"
	libp2pplugin "github.com/strata-msg/strata/plugins/libp2p"
	"github.com/strata-msg/strata/plugins/mixnet"
	mls "github.com/strata-msg/strata/plugins/mls/layer"
	"github.com/strata-msg/strata/plugins/mvds"
	"github.com/strata-msg/strata/plugins/none"
	"github.com/strata-msg/strata/plugins/whisper"
)

func main() {
	catalog := plugins.Catalog{}.
		Add(func() sdk.Layer { return libp2pplugin.New() }).
		Add(func() sdk.Layer { return devp2p.New() }).
		Add(func() sdk.Layer { return none.New() }).
		Add(func() sdk.Layer { return whisper.New() }).
		Add(func() sdk.Layer { return mixnet.New() }).
		Add(func() sdk.Layer { return doubleratchet.New() }).
		Add(func() sdk.Layer { return mls.New() }).
		Add(func() sdk.Layer { return mvds.New() }).
		Add(func() sdk.Layer { return bsp.New() })
	os.Exit(cli.Execute(context.Background(), cli.Env{
		Catalog: catalog,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Environ: os.Environ(),
	}, os.Args[1:]))
}
