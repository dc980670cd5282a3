package sdk

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal asks Linux to send the plugin SIGTERM when the host
// dies, so that no plugin outlives a host killed with -9; the SDK's parent
// watchdog covers the same case on other systems and if this signal is
// lost. It also puts the plugin in its own process group, so that a signal
// sent to the host's group (Ctrl-C in a terminal, GNU timeout) reaches the
// host alone, and the host stops its plugins in order.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
