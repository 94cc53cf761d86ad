package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/db"
)

// Postgres is the server a benchmark ran against.
type Postgres struct {
	Version           string `json:"version"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
	SharedBuffers     string `json:"shared_buffers"`
	WalSyncMethod     string `json:"wal_sync_method"`
}

// Durable reports whether commits wait for the WAL to reach disk.
func (p Postgres) Durable() bool {
	return p.Fsync == "on" && p.SynchronousCommit != "off"
}

// ReadPostgres reads the server version and the settings that decide commit cost.
func ReadPostgres(ctx context.Context, q db.Querier) (Postgres, error) {
	var p Postgres
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"server_version", &p.Version},
		{"fsync", &p.Fsync},
		{"synchronous_commit", &p.SynchronousCommit},
		{"full_page_writes", &p.FullPageWrites},
		{"shared_buffers", &p.SharedBuffers},
		{"wal_sync_method", &p.WalSyncMethod},
	} {
		// SHOW takes no parameters; the names are constants above.
		if err := q.QueryRow(ctx, "SHOW "+s.name).Scan(s.dst); err != nil {
			return p, fmt.Errorf("reading postgres setting %s: %w", s.name, err)
		}
	}
	return p, nil
}

// Machine is the host a benchmark ran on.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	// LoadAvg1 is the 1-minute load average when the benchmark started
	// (Linux only; -1 elsewhere): other work on the box skews the figures.
	LoadAvg1 float64 `json:"load_avg_1m"`
}

// ThisMachine describes the running process's host.
func ThisMachine() Machine {
	return Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
		LoadAvg1: loadAvg1()}
}

func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// Commit identifies the code that ran: the VCS revision stamped into the
// binary, else `git rev-parse --short HEAD` in the working directory, else
// "unknown". A "-dirty" suffix marks uncommitted changes.
func Commit() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 7 {
				rev = rev[:7]
			}
			if modified {
				rev += "-dirty"
			}
			return rev
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if rev == "" {
		return "unknown"
	}
	if st, err := exec.CommandContext(ctx, "git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "-dirty"
	}
	return rev
}
