//go:build unix

package testnet

import "syscall"

// signalHost sends SIGTERM (term) or SIGKILL to the host's process group,
// which holds the host alone (its plugins have groups of their own), or
// to the host if that fails.
func signalHost(pid int, term bool) {
	sig := syscall.SIGKILL
	if term {
		sig = syscall.SIGTERM
	}
	if syscall.Kill(-pid, sig) != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// killPID sends SIGKILL to one process.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// pidExists reports whether a process with the pid exists, for systems
// without /proc.
func pidExists(pid int) bool { return syscall.Kill(pid, 0) == nil }
