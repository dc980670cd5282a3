//go:build !linux

package sdk

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; the plugin's parent watchdog ends it instead.
func setParentDeathSignal(*exec.Cmd) {}
