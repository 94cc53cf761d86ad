//go:build !unix

package devdb

import (
	"context"
	"os/exec"
)

// osUser is the account the server runs as; outside unix it is always nil,
// meaning the current user.
type osUser struct{}

func serverOwner() (*osUser, error) { return nil, nil }

func (u *osUser) chown(string) error { return nil }

func (u *osUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// processAlive claims every process is alive, so stale clusters are never
// reaped where liveness cannot be checked.
func processAlive(int) bool { return true }
