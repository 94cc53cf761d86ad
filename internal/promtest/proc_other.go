//go:build !linux

package promtest

import "os/exec"

// setDeathSignal has no portable equivalent outside Linux; t.Cleanup still
// stops Prometheus on every normal exit.
func setDeathSignal(*exec.Cmd) {}
