package testnet

import "syscall"

// sysProcAttr puts a host in its own process group (so that a terminal's
// Ctrl-C reaches the testnet alone, which then stops the hosts in order)
// and has Linux kill it when the testnet's process dies, so that no host
// outlives the testnet; its plugins then follow it (the plugin SDK sets
// their parent-death signal).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
