package bench

import (
	"fmt"
	"io"
)

// PrintEnv writes the machine, PostgreSQL settings and commit lines every
// benchmark prints before its figures.
func PrintEnv(w io.Writer, pg Postgres, m Machine, commit string) {
	durable := "DURABLE"
	if !pg.Durable() {
		durable = "NOT DURABLE"
	}
	load := "unknown"
	if m.LoadAvg1 >= 0 {
		load = fmt.Sprintf("%.2f", m.LoadAvg1)
	}
	fmt.Fprintf(w, "machine   %d CPUs, %s/%s, %s, load average %s at start\n", m.CPUs, m.GOOS, m.GOARCH, m.GoVersion, load)
	fmt.Fprintf(w, "postgres  %s  fsync=%s synchronous_commit=%s full_page_writes=%s shared_buffers=%s wal_sync_method=%s  (%s)\n",
		pg.Version, pg.Fsync, pg.SynchronousCommit, pg.FullPageWrites, pg.SharedBuffers, pg.WalSyncMethod, durable)
	fmt.Fprintf(w, "commit    %s\n", commit)
}
