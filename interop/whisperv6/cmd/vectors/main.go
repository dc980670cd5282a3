// Command vectors writes known-answer Whisper v6 vectors produced by
// go-ethereum v1.9.20 (see ../../testdata/README.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/strata-msg/strata/interop/whisperv6/vectors"
)

func main() {
	out := flag.String("o", "testdata/geth_vectors.json", "output file (- for stdout)")
	flag.Parse()
	f, err := vectors.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vectors:", err)
		os.Exit(1)
	}
	b, err := vectors.Marshal(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vectors:", err)
		os.Exit(1)
	}
	if *out == "-" {
		os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "vectors:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d pow, %d bloom, %d symmetric, %d asymmetric, %d mined\n", *out, len(f.PoW), len(f.Bloom), len(f.Symmetric), len(f.Asymmetric), len(f.Mined))
}
