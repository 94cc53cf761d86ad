package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SuiteConfig configures Suite.
type SuiteConfig struct {
	// DatabaseURL is where the sql and explain benchmarks build their dataset.
	DatabaseURL string
	SQL         SQLConfig
	Explain     ExplainConfig
	Paths       CriticalPathConfig
	// Progress receives every phase's progress (may be nil).
	Progress func(ProgressReport)
}

// SuiteResult is what the report is made of.
type SuiteResult struct {
	Benchmark string              `json:"benchmark"`
	SQL       *SQLResult          `json:"sql,omitempty"`
	Explain   *ExplainResult      `json:"explain,omitempty"`
	Paths     *CriticalPathResult `json:"critical_paths,omitempty"`
	StartedAt time.Time           `json:"started_at"`
	DurationS float64             `json:"duration_s"`
}

// Suite runs the sql benchmark, the explain analyzer on the dataset it left
// (at its largest scale), and the critical paths in a database of their own
// (created next to DatabaseURL and dropped again), so the dataset's live
// tasks do not load the engine they measure.
func Suite(ctx context.Context, cfg SuiteConfig) (*SuiteResult, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("suite: a database URL is required")
	}
	started := time.Now()
	res := &SuiteResult{Benchmark: "suite", StartedAt: started.UTC()}
	cfg.SQL.DatabaseURL, cfg.Explain.DatabaseURL = cfg.DatabaseURL, cfg.DatabaseURL
	if cfg.Progress != nil {
		cfg.SQL.Progress, cfg.Explain.Progress, cfg.Paths.Progress = cfg.Progress, cfg.Progress, cfg.Progress
	}
	var err error
	if res.SQL, err = SQL(ctx, cfg.SQL); err != nil {
		return nil, fmt.Errorf("sql benchmark: %w", err)
	}
	cfg.Explain.Tasks = res.SQL.Scales[len(res.SQL.Scales)-1]
	cfg.Explain.Dataset = cfg.SQL.Dataset
	if res.Explain, err = Explain(ctx, cfg.Explain); err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	pathsURL, drop, err := createDatabase(ctx, cfg.DatabaseURL, "tasker_bench_paths_"+randomSuffix())
	if err != nil {
		return nil, err
	}
	cfg.Paths.DatabaseURL = pathsURL
	res.Paths, err = CriticalPaths(ctx, cfg.Paths)
	if derr := drop(); err == nil && derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, fmt.Errorf("critical paths: %w", err)
	}
	res.DurationS = round3(time.Since(started).Seconds())
	return res, nil
}

// createDatabase creates database name on the server of base and returns
// its URL and a function that drops it.
func createDatabase(ctx context.Context, base, name string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("creating database %s (the role needs CREATEDB): %w", name, err)
	}
	drop := func() error {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return fmt.Errorf("dropping database %s: %w", name, err)
		}
		defer func() { _ = c.Close(context.Background()) }()
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping database %s: %w", name, err)
		}
		return nil
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		_ = drop()
		return "", nil, fmt.Errorf("the database URL must be a postgres:// URL to create a second database next to it")
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// ReadSuite reads a suite result written by WriteReport (results.json).
func ReadSuite(path string) (*SuiteResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	var r SuiteResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if r.SQL == nil && r.Explain == nil && r.Paths == nil {
		return nil, fmt.Errorf("%s holds no benchmark results", path)
	}
	return &r, nil
}

// Report files.
const (
	ReportMarkdown = "report.md"
	ReportResults  = "results.json"
	ChartSQLP50    = "sql-p50.svg"
	ChartSQLP99    = "sql-p99.svg"
	ChartPathsCDF  = "critical-paths-cdf.svg"
)

// WriteReport writes the Markdown report, its SVG charts and (unless
// withJSON is false) the results as JSON into dir, and returns the paths written.
func WriteReport(dir string, r *SuiteResult, withJSON bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	files := map[string][]byte{ReportMarkdown: []byte(r.Markdown())}
	if r.SQL != nil {
		files[ChartSQLP50] = sqlChart(r.SQL, "p50").SVG()
		files[ChartSQLP99] = sqlChart(r.SQL, "p99").SVG()
	}
	if r.Paths != nil {
		files[ChartPathsCDF] = pathsChart(r.Paths).SVG()
	}
	if withJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encoding results: %w", err)
		}
		files[ReportResults] = append(b, '\n')
	}
	var written []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return written, fmt.Errorf("writing %s: %w", p, err)
		}
		written = append(written, p)
	}
	return written, nil
}

func sqlChart(r *SQLResult, which string) chart {
	c := chart{Title: "SQL function latency (" + which + ") vs dataset size", XLabel: "tasks in the dataset (log)",
		YLabel: which + " latency, ms (log)", LogX: true, LogY: true}
	for _, f := range r.Functions {
		s := chartSeries{Name: f.Name, Dashed: !f.PerTask}
		for _, p := range f.Points {
			v := p.P50
			if which == "p99" {
				v = p.P99
			}
			s.Points = append(s.Points, [2]float64{float64(p.Scale), v})
		}
		c.Series = append(c.Series, s)
	}
	if which == "p50" {
		c.HLines = []chartLine{{goalReadyTasksP50Ms, "get_next_ready_tasks goal 1 ms"}, {goalReadinessP50Ms, "readiness goal 150 µs"}}
	}
	return c
}

func pathsChart(r *CriticalPathResult) chart {
	c := chart{Title: "Critical paths: cumulative distribution", XLabel: "latency, ms (log)", YLabel: "fraction of samples",
		LogX: true}
	for _, p := range r.Paths {
		s := chartSeries{Name: p.ID}
		for _, pt := range p.CDF {
			s.Points = append(s.Points, [2]float64{pt[0], pt[1]})
		}
		c.Series = append(c.Series, s)
	}
	return c
}

// Markdown renders the report.
func (r *SuiteResult) Markdown() string {
	var b strings.Builder
	b.WriteString("# Tasker benchmark report\n\n")
	env := func(pg Postgres, m Machine, commit string) {
		durable := "durable"
		if !pg.Durable() {
			durable = "NOT durable"
		}
		fmt.Fprintf(&b, "Machine: %d CPUs, %s/%s, %s, load average %.2f at start. PostgreSQL %s (fsync=%s, synchronous_commit=%s, shared_buffers=%s; %s). Commit %s.\n\n",
			m.CPUs, m.GOOS, m.GOARCH, m.GoVersion, m.LoadAvg1, pg.Version, pg.Fsync, pg.SynchronousCommit, pg.SharedBuffers, durable, commit)
	}
	if s := r.SQL; s != nil {
		b.WriteString("## SQL functions (`tasker bench sql`)\n\n")
		env(s.Postgres, s.Machine, s.Commit)
		fmt.Fprintf(&b, "%d timed calls per function and scale on one connection, each on a random task, step or message of the dataset; "+
			"calls that write run in a transaction that is rolled back (the commit is not timed). A `SELECT 1` round trip "+
			"(p50 %.3f ms) is part of every figure. Latencies in ms, p50 / p95 / p99.\n\n", s.Samples, s.RoundTripP50)
		b.WriteString("| function | kind |")
		for _, sc := range s.Scales {
			fmt.Fprintf(&b, " %s tasks |", thousands(sc))
		}
		b.WriteString(" growth |")
		if len(s.Scales) > 2 {
			fmt.Fprintf(&b, " growth from %s |", thousands(s.Scales[1]))
		}
		b.WriteString("\n|---|---|")
		for range s.Scales {
			b.WriteString("---|")
		}
		b.WriteString("---|")
		if len(s.Scales) > 2 {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, f := range s.Functions {
			kind := "global"
			if f.PerTask {
				kind = "per task"
			}
			fmt.Fprintf(&b, "| %s | %s |", f.Name, kind)
			byScale := map[int]SQLPoint{}
			for _, p := range f.Points {
				byScale[p.Scale] = p
			}
			for _, sc := range s.Scales {
				if p, ok := byScale[sc]; ok {
					fmt.Fprintf(&b, " %.3f / %.3f / %.3f |", p.P50, p.P95, p.P99)
				} else {
					b.WriteString(" – |")
				}
			}
			fmt.Fprintf(&b, " %.2f× |", f.Growth)
			if len(s.Scales) > 2 {
				fmt.Fprintf(&b, " %.2f× |", f.GrowthFromSecond)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\n![p50 vs dataset size](%s)\n![p99 vs dataset size](%s)\n\n", ChartSQLP50, ChartSQLP99)
		b.WriteString("### Goals\n\n| function | goal | measured | |\n|---|---|---|---|\n")
		for _, g := range s.Goals() {
			verdict := "met"
			if !g.Met {
				verdict = "**not met**"
			}
			fmt.Fprintf(&b, "| %s | %s | %.3f | %s |\n", g.Name, g.Goal.Goal, g.Value, verdict)
		}
		if len(s.Contention) > 0 {
			fmt.Fprintf(&b, "\n### State-transition contention (%s tasks)\n\n", thousands(s.Scales[len(s.Scales)-1]))
			b.WriteString("Each worker reads a task's state and moves it with `transition_task_state_atomic` (compare-and-swap, durable autocommit).\n\n")
			b.WriteString("| mode | workers | attempts/s | transitions/s | conflict rate | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|---|\n")
			for _, c := range s.Contention {
				fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.1f %% | %.3f | %.3f | %.3f |\n", c.Mode, c.Workers, c.AttemptsPerSec,
					c.TransitionsPerSec, c.ConflictRate*100, c.P50, c.P95, c.P99)
			}
		}
		b.WriteString("\n### Datasets\n\n| tasks | complete | running | waiting for retry | error | pending | steps | step history rows | task history rows | generated in |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, d := range s.Datasets {
			rows := map[string]int64{}
			for _, t := range d.Tables {
				rows[t.Table] = t.Rows
			}
			st := d.TasksByState
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %.1f s |\n", thousands(d.Scale), st["complete"], st["steps_in_process"],
				st["waiting_for_retry"], st["error"], st["pending"], d.Steps, rows["workflow_step_transitions"], rows["task_transitions"], d.GenerateS)
		}
		b.WriteString("\n")
	}
	if e := r.Explain; e != nil {
		fmt.Fprintf(&b, "## Plans (`tasker bench explain`, %s tasks)\n\n", thousands(e.Tasks))
		fmt.Fprintf(&b, "Every statement each call ran, inside the functions included (auto_explain, ANALYZE, BUFFERS). "+
			"Findings: sequential scans of tables with ≥ %s rows, row estimates off by ≥ %g× (at the lowest node), sorts or hashes spilling to disk.\n\n",
			thousands(int(e.SeqScanMinRows)), e.MisestimateFactor)
		b.WriteString("| function | statements | execution ms (sum) | shared hit | shared read | findings |\n|---|---|---|---|---|---|\n")
		for _, c := range e.Cases {
			var ms float64
			var hit, read int64
			for _, st := range c.Statements {
				if !st.Nested {
					ms += st.ExecutionMs
					hit += st.SharedHit
					read += st.SharedRead
				}
			}
			kinds := map[string]int{}
			for _, f := range e.Findings {
				if f.Case == c.Name {
					kinds[f.Kind]++
				}
			}
			var ks []string
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range kinds {
					if !yield(k) {
						return
					}
				}
			}) {
				ks = append(ks, fmt.Sprintf("%d %s", kinds[k], k))
			}
			fmt.Fprintf(&b, "| %s | %d | %.3f | %d | %d | %s |\n", c.Name, len(c.Statements), ms, hit, read, strings.Join(ks, ", "))
		}
		b.WriteString("\n")
		findings := slices.Clone(e.Findings)
		sort.SliceStable(findings, func(i, j int) bool { return findingRank(findings[i]) < findingRank(findings[j]) })
		if len(findings) > 0 {
			b.WriteString("| function | finding | statement |\n|---|---|---|\n")
			for _, f := range findings {
				fmt.Fprintf(&b, "| %s | **%s**: %s | `%s` |\n", f.Case, f.Kind, f.Detail, strings.ReplaceAll(shortQuery(f.Query), "|", "\\|"))
			}
			b.WriteString("\n")
		}
	}
	if p := r.Paths; p != nil {
		b.WriteString("## Critical paths (`tasker bench critical-paths`)\n\n")
		env(p.Postgres, p.Machine, p.Commit)
		fmt.Fprintf(&b, "%d samples per path, one at a time, on a fresh database with the engine in-process.\n\n", p.Samples)
		b.WriteString("| path | p50 ms | p95 ms | p99 ms | max ms | target |\n|---|---|---|---|---|---|\n")
		for _, ps := range p.Paths {
			var ts []string
			for _, t := range ps.Targets {
				op := "<"
				if t.Label == "goal" {
					op = "≤"
				}
				verdict := "met"
				if !t.Met {
					verdict = "**not met**"
				}
				ts = append(ts, fmt.Sprintf("%s p%g %s %g ms: %s", t.Label, t.Percentile, op, t.LimitMs, verdict))
			}
			fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.3f | %.3f | %s |\n", ps.Name, ps.P50, ps.P95, ps.P99, ps.Max, strings.Join(ts, "; "))
		}
		fmt.Fprintf(&b, "\n![critical path CDFs](%s)\n\n", ChartPathsCDF)
		for _, ps := range p.Paths {
			fmt.Fprintf(&b, "- **%s** (`%s`): %s.\n", ps.Name, ps.ID, ps.Description)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func findingRank(f Finding) int {
	return map[string]int{FindingSeqScan: 0, FindingDiskSort: 1, FindingTempSpill: 2, FindingMisestimate: 3}[f.Kind]
}

// thousands writes n with thin separators: 50,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
