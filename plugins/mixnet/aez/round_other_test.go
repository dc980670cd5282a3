//go:build !amd64 || purego

package aez

// fastRounds reports whether the AES rounds run as instructions: never in
// this build.
func fastRounds() bool { return false }
