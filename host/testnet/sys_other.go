//go:build !unix

package testnet

import (
	"os"
	"syscall"
)

// sysProcAttr has nothing to set here: there are no process groups or
// parent-death signals, and a killed testnet can leave hosts running.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalHost ends the host; without signals, a stop is a kill.
func signalHost(pid int, _ bool) { killPID(pid) }

// killPID ends one process.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// pidExists cannot tell without /proc; it says no, so that waits end.
func pidExists(int) bool { return false }
