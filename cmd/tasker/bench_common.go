package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/bench"
	"github.com/taskerhq/tasker/internal/devdb"
)

// benchDatabase returns the URL a benchmark runs against: --database-url, or
// an ephemeral durable cluster started here (stop stops it; call it even on
// error paths after a nil error).
func benchDatabase(ctx context.Context, f dbFlags, errOut io.Writer, logger *slog.Logger) (url string, stop func() error, err error) {
	if f.URL != "" {
		return f.URL, func() error { return nil }, nil
	}
	if _, err := devdb.FindBinDir(); err != nil {
		return "", nil, &exitError{code: exitFailed, err: err}
	}
	fmt.Fprintln(errOut, "starting ephemeral durable PostgreSQL (fsync, synchronous_commit, full_page_writes on)…")
	cluster, err := devdb.Start(ctx, devdb.Options{Durable: true,
		Log: func(format string, args ...any) { logger.Debug(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return "", nil, fmt.Errorf("starting ephemeral PostgreSQL: %w", err)
	}
	return cluster.URL("postgres"), func() error { return cluster.Stop(context.Background()) }, nil
}

// writeJSONFile writes v, indented, to path.
func writeJSONFile(path string, v any, errOut io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(errOut, "wrote %s\n", path)
	return nil
}

// showResult ends the progress line on errOut, prints res on out and, with
// jsonPath set, writes it there as JSON: the end of every suite command.
func showResult[T any](out, errOut io.Writer, jsonPath string, res T, print func(io.Writer, T)) error {
	fmt.Fprintln(errOut)
	print(out, res)
	if jsonPath == "" {
		return nil
	}
	return writeJSONFile(jsonPath, res, errOut)
}

// progressBar draws long phases' progress on w: a bar redrawn in place on a
// terminal, else a line every tenth of the way.
type progressBar struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	phase string
	start time.Time
	last  int // last tenth printed (non-terminal)
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, tty: tty}
}

// Report is a bench progress callback.
func (p *progressBar) Report(r bench.ProgressReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Phase != p.phase {
		p.phase, p.start, p.last = r.Phase, time.Now(), -1
	}
	if r.Total <= 0 {
		return
	}
	frac := float64(r.Done) / float64(r.Total)
	elapsed := time.Since(p.start)
	eta := "?"
	if r.Done > 0 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	if p.tty {
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r%-22s [%s%s] %d/%d  %3.0f%%  eta %s   ", p.phase, strings.Repeat("#", n), strings.Repeat(".", width-n),
			r.Done, r.Total, frac*100, eta)
		if r.Done >= r.Total {
			fmt.Fprintln(p.w)
		}
		return
	}
	if tenth := int(frac * 10); tenth > p.last {
		p.last = tenth
		fmt.Fprintf(p.w, "%s: %d/%d (%.0f%%), %s elapsed, eta %s\n", p.phase, r.Done, r.Total, frac*100,
			elapsed.Round(100*time.Millisecond), eta)
	}
}

// startCPUProfile starts a CPU profile of this process (engine and
// benchmark) into path when path is set; the returned stop writes it.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	pf, err := os.Create(path)
	if err != nil {
		return nil, usageError("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		_ = pf.Close()
		return nil, fmt.Errorf("starting CPU profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := pf.Close(); err != nil {
			return fmt.Errorf("writing CPU profile: %w", err)
		}
		return nil
	}, nil
}
