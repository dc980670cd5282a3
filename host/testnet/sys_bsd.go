//go:build unix && !linux

package testnet

import "syscall"

// sysProcAttr puts a host in its own process group. Only Linux has a
// parent-death signal; elsewhere the plugin SDK's parent watchdog is what
// stops plugins whose host is gone, and a killed testnet can leave hosts
// running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
