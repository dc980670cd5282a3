package sdk

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal asks Linux to send the plugin SIGTERM when the host
// dies, so that no plugin outlives a host killed with -9. The SDK's parent
// watchdog covers the same case on other systems and if this signal is lost.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
