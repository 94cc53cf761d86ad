package devdb

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
)

// ShutdownMode is how Halt and Restart stop the server (pg_ctl -m).
type ShutdownMode string

const (
	// ShutdownFast disconnects every session and shuts down cleanly.
	ShutdownFast ShutdownMode = "fast"
	// ShutdownImmediate kills the server processes without a shutdown
	// checkpoint, as a crash would; the next start runs crash recovery.
	ShutdownImmediate ShutdownMode = "immediate"
)

// Halt stops the server but keeps its files, so Resume can bring it back on
// the same port: the outages of fault-injection tests.
func (c *Cluster) Halt(ctx context.Context, mode ShutdownMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("halting postgres in %s: cluster already stopped", c.dir)
	}
	out, err := c.owner.command(ctx, filepath.Join(c.binDir, "pg_ctl"),
		"-D", c.DataDir(), "-m", string(mode), "-t", "30", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("halting postgres in %s (%s): %w: %s", c.dir, mode, err, bytes.TrimSpace(out))
	}
	c.logf("devdb: halted postgres on port %d (%s)", c.port, mode)
	return nil
}

// Resume starts a halted server again on its port and waits until it
// accepts connections.
func (c *Cluster) Resume(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("resuming postgres in %s: cluster already stopped", c.dir)
	}
	logPath := filepath.Join(c.dir, logFile)
	out, err := c.owner.command(ctx, filepath.Join(c.binDir, "pg_ctl"),
		"-D", c.DataDir(), "-l", logPath, "-w", "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("resuming postgres in %s: %w: %s\n%s", c.dir, err, bytes.TrimSpace(out), logTail(logPath))
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	c.logf("devdb: resumed postgres on port %d", c.port)
	return nil
}

// Restart is Halt then Resume.
func (c *Cluster) Restart(ctx context.Context, mode ShutdownMode) error {
	if err := c.Halt(ctx, mode); err != nil {
		return err
	}
	return c.Resume(ctx)
}
