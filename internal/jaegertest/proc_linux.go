package jaegertest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills Jaeger if the test binary dies without running its
// cleanups (a panic, a -timeout kill), so no orphan keeps running.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
