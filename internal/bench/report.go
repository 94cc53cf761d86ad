package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes one result as a JSON object, or several (asArray) as an
// array, to path.
func WriteJSON(path string, results []*Result, asArray bool) error {
	var v any = results
	if !asArray {
		if len(results) != 1 {
			return fmt.Errorf("writing %s: want one result, have %d", path, len(results))
		}
		v = results[0]
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// PrintE2E writes the results as tables: the environment once, then
// latencies next to the floor, then the per-hop breakdown.
func PrintE2E(w io.Writer, results []*Result) error {
	if len(results) == 0 {
		return nil
	}
	first := results[0]
	pg, m := first.Postgres, first.Machine
	durable := "DURABLE"
	if !pg.Durable() {
		durable = "NOT DURABLE"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "machine   %d CPUs, %s/%s, %s, load average %s at start\n", m.CPUs, m.GOOS, m.GOARCH, m.GoVersion, loads(results))
	fmt.Fprintf(&b, "postgres  %s  fsync=%s synchronous_commit=%s full_page_writes=%s shared_buffers=%s wal_sync_method=%s  (%s)\n",
		pg.Version, pg.Fsync, pg.SynchronousCommit, pg.FullPageWrites, pg.SharedBuffers, pg.WalSyncMethod, durable)
	fmt.Fprintf(&b, "commit    %s\n", first.Commit)
	how := "completion seen in-process right after the finalizing commit (hook)"
	if first.Completion == CompletionPoll {
		how = fmt.Sprintf("completion seen by polling the task row every %dµs", first.PollIntervalUs)
	}
	fmt.Fprintf(&b, "e2e       closed loop, one task in flight, create → complete; %s\n\n", how)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "template\t%5s\t%5s\t%6s\tlatency (ms)\t%7s\t%7s\t%7s\t%7s\t%7s\t%10s\t\n",
		"steps", "runs", "errors", "p50", "p95", "p99", "max", "mean", "p50/commit")
	for _, r := range results {
		ratio := "-"
		if r.Floor.CommitP50 > 0 {
			ratio = fmt.Sprintf("%.1f×", r.P50/r.Floor.CommitP50)
		}
		fmt.Fprintf(tw, "%s\t%5d\t%5d\t%6d\tclient\t%7.2f\t%7.2f\t%7.2f\t%7.2f\t%7.2f\t%10s\t\n",
			shortName(r), r.Steps, r.Runs, r.Errors, r.P50, r.P95, r.P99, r.Max, r.Mean, ratio)
		fmt.Fprintf(tw, "\t\t\t\tdb recorded\t%7.2f\t%7.2f\t%7.2f\t%7.2f\t%7.2f\t\t\n", r.DBP50, r.DBP95, r.DBP99, r.DBMax, r.DBMean)
		fmt.Fprintf(tw, "\t\t\t\tfloor: commit\t%7.2f\t%7.2f\t%7.2f\t\t\t\t\n", r.Floor.CommitP50, r.Floor.CommitP95, r.Floor.CommitP99)
		fmt.Fprintf(tw, "\t\t\t\tfloor: notify\t%7.2f\t%7.2f\t%7.2f\t\t\t\t\n", r.Floor.NotifyP50, r.Floor.NotifyP95, r.Floor.NotifyP99)
		fmt.Fprintf(tw, "\t\t\t\tfloor: SELECT 1\t%7.2f\t\t%7.2f\t\t\t\t\n", r.Floor.RoundTripP50, r.Floor.RoundTripP99)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if g, ok := goals[shortName(r)]; ok {
			verdict := "met"
			if r.P50 > g.p50 || (g.p99 > 0 && r.P99 > g.p99) {
				verdict = "NOT met"
			}
			limit := fmt.Sprintf("p50 ≤ %g ms", g.p50)
			if g.p99 > 0 {
				limit += fmt.Sprintf(", p99 ≤ %g ms", g.p99)
			}
			fmt.Fprintf(w, "%s: goal %s: %s\n", shortName(r), limit, verdict)
		}
	}
	for _, r := range results {
		fmt.Fprintf(w, "%s: per task %.1f transaction IDs (write transactions + writing subtransactions), %.1f kB WAL\n",
			shortName(r), r.XIDsPerTask, r.WALBytesPerTask/1024)
	}
	for _, r := range results {
		if r.HookMisses > 0 {
			fmt.Fprintf(w, "warning: %s: %d completions were not reported by the hook and were found by polling (±%s)\n",
				shortName(r), r.HookMisses, hookSafetyPoll)
		}
		for _, e := range r.ErrorSamples {
			fmt.Fprintf(w, "error: %s: %s\n", shortName(r), e)
		}
	}

	fmt.Fprintln(w, "\nper-hop breakdown from the transition history (ms; timestamps are clock_timestamp() inside each transaction)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "template\thop\t%7s\t%7s\t%7s\t%7s\t%7s\t\n", "samples", "p50", "p95", "p99", "mean")
	for _, r := range results {
		name := shortName(r)
		for _, h := range r.Hops {
			if h.Samples == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%7d\t%7.3f\t%7.3f\t%7.3f\t%7.3f\t\n", name, h.Name, h.Samples, h.P50, h.P95, h.P99, h.Mean)
			name = ""
		}
	}
	return tw.Flush()
}

func shortName(r *Result) string {
	for short, full := range ShortNames {
		if strings.HasPrefix(r.Template, full+"@") {
			return short
		}
	}
	return r.Template
}

// loads lists each template's starting 1-minute load average.
func loads(results []*Result) string {
	parts := make([]string, 0, len(results))
	for _, r := range results {
		if r.Machine.LoadAvg1 < 0 {
			return "unknown"
		}
		parts = append(parts, fmt.Sprintf("%.2f", r.Machine.LoadAvg1))
	}
	return strings.Join(parts, " / ")
}

// goals are the create → complete targets of docs/benchmarks.md (client-observed, ms).
var goals = map[string]struct{ p50, p99 float64 }{
	"linear":    {10, 25},
	"diamond":   {15, 0},
	"tree":      {15, 0},
	"mixed_dag": {15, 0},
}
