//go:build unix && !linux

package sdk

// fdExecPath: see binary_linux.go.
const fdExecPath = "/dev/fd/3"
