package promtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills Prometheus if the test binary dies without running
// its cleanups (a panic, a -timeout kill), so no orphan keeps running.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
