// Package testvectors runs the MLS working group's interop test vectors
// (github.com/mlswg/mls-implementations, test-vectors/) against Strata's
// RFC 9420 library. It holds no code of its own: the runner and the checkers
// are tests, and the vectors are in testdata/ (see testdata/README.md).
//
// Set STRATA_MLS_VECTORS to a directory of further vector files to run them
// as well.
package testvectors
