//go:build !linux

package jaegertest

import "os/exec"

// setDeathSignal has no portable equivalent outside Linux; t.Cleanup still
// stops Jaeger on every normal exit.
func setDeathSignal(*exec.Cmd) {}
