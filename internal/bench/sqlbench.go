package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/db"
)

// DefaultScales are the dataset sizes (tasks) the sql benchmark measures at.
var DefaultScales = []int{100, 1000, 10000, 50000}

// SQLConfig configures SQL. Zero values mean the documented default.
type SQLConfig struct {
	DatabaseURL string
	// Scales are the dataset sizes, in tasks; the dataset grows from one to
	// the next. Default DefaultScales.
	Scales []int
	// Samples is how many calls of each function are timed per scale. Default 500.
	Samples int
	// Warmup calls per function and scale are made first and not timed. Default 20.
	Warmup int
	// Dataset shapes the generated data (its Tasks, Start and DatabaseURL are ignored).
	Dataset GenerateConfig
	// Cases are the calls to time. Default SQLCases.
	Cases []SQLCase
	// ContentionWorkers run compare-and-swap transitions at once. Default 8;
	// negative skips the contention benchmark.
	ContentionWorkers int
	// ContentionDuration is how long each contention mode runs. Default 5s.
	ContentionDuration time.Duration
	Logger             *slog.Logger
	Progress           func(ProgressReport)
}

func (c SQLConfig) withDefaults() SQLConfig {
	if len(c.Scales) == 0 {
		c.Scales = DefaultScales
	}
	if c.Samples == 0 {
		c.Samples = 500
	}
	if c.Warmup == 0 {
		c.Warmup = 20
	}
	if len(c.Cases) == 0 {
		c.Cases = SQLCases
	}
	if c.ContentionWorkers == 0 {
		c.ContentionWorkers = 8
	}
	if c.ContentionDuration == 0 {
		c.ContentionDuration = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(ProgressReport) {}
	}
	return c
}

func (c SQLConfig) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("sql benchmark: a database URL is required")
	case c.Samples < 1:
		return fmt.Errorf("sql benchmark: samples must be ≥ 1, got %d", c.Samples)
	case c.Warmup < 0:
		return fmt.Errorf("sql benchmark: warmup must be ≥ 0, got %d", c.Warmup)
	case c.ContentionDuration < 0:
		return fmt.Errorf("sql benchmark: contention duration must be ≥ 0, got %s", c.ContentionDuration)
	}
	for i, s := range c.Scales {
		if s < 1 || (i > 0 && s <= c.Scales[i-1]) {
			return fmt.Errorf("sql benchmark: scales must be positive and increasing, got %v", c.Scales)
		}
	}
	return nil
}

// SQLResult is the sql benchmark's outcome. Latencies are milliseconds.
type SQLResult struct {
	Benchmark string `json:"benchmark"`
	Scales    []int  `json:"scales"`
	Samples   int    `json:"samples"`
	// Functions holds one entry per case, in SQLCases order.
	Functions []SQLFunction `json:"functions"`
	// Datasets describes the data at each scale.
	Datasets []ScaleDataset `json:"datasets"`
	// Contention is measured at the largest scale.
	Contention []ContentionResult `json:"contention,omitempty"`
	// RoundTripP50 is one `SELECT 1` round trip: part of every figure here.
	RoundTripP50 float64   `json:"roundtrip_p50_ms"`
	Postgres     Postgres  `json:"postgres"`
	Machine      Machine   `json:"machine"`
	Commit       string    `json:"commit"`
	StartedAt    time.Time `json:"started_at"`
	DurationS    float64   `json:"duration_s"`
}

// SQLFunction is one case's latencies across the scales.
type SQLFunction struct {
	Name     string     `json:"name"`
	Function string     `json:"function"`
	PerTask  bool       `json:"per_task"`
	Writes   bool       `json:"writes"`
	Points   []SQLPoint `json:"points"`
	// Growth is p50 at the largest scale ÷ p50 at the smallest.
	Growth float64 `json:"growth"`
	// GrowthFromSecond is p50 at the largest scale ÷ p50 at the second
	// smallest: at the smallest scale a writing call has so few rows to pick
	// from that it keeps hitting the same pages (cached, no full-page WAL
	// images), which flatters its figure there.
	GrowthFromSecond float64 `json:"growth_from_second_scale,omitempty"`
	Goals            []Goal  `json:"goals,omitempty"`
}

// SQLPoint is one case at one scale.
type SQLPoint struct {
	Scale   int     `json:"scale"`
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
}

// Goal is a target and whether the run met it.
type Goal struct {
	Goal string `json:"goal"`
	Met  bool   `json:"met"`
	// Value is what was measured against it.
	Value float64 `json:"value"`
}

// ScaleDataset is the dataset at one scale.
type ScaleDataset struct {
	Scale        int              `json:"scale"`
	GenerateS    float64          `json:"generate_s"`
	TasksByState map[string]int64 `json:"tasks_by_state"`
	Steps        int64            `json:"steps"`
	Tables       []TableSize      `json:"tables"`
}

// ContentionResult is many workers running compare-and-swap task
// transitions at once (read the state, move it if it is still that).
type ContentionResult struct {
	// Mode is "same_task" (every worker on one task) or "different_tasks".
	Mode      string  `json:"mode"`
	Workers   int     `json:"workers"`
	DurationS float64 `json:"duration_s"`
	Attempts  int64   `json:"attempts"`
	// Succeeded transitions; Conflicts are attempts whose state had changed.
	Succeeded         int64   `json:"succeeded"`
	Conflicts         int64   `json:"conflicts"`
	ConflictRate      float64 `json:"conflict_rate"`
	AttemptsPerSec    float64 `json:"attempts_per_s"`
	TransitionsPerSec float64 `json:"transitions_per_s"`
	// Latency of one transition_task_state_atomic call (autocommit, durable).
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
}

// Goals checked by the sql benchmark.
const (
	goalReadyTasksP50Ms = 1.0
	goalReadinessP50Ms  = 0.150
	goalPerTaskGrowth   = 1.5
)

// SQL times every case at every scale: it grows a generated dataset to each
// scale in turn and calls each function Samples times on a dedicated
// connection (a writing call inside a transaction that is rolled back, so
// the data stays the same), then measures transition contention at the
// largest scale.
func SQL(ctx context.Context, cfg SQLConfig) (*SQLResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	workers := max(cfg.ContentionWorkers, 0)
	pool, _, pg, err := prepare(ctx, cfg.DatabaseURL, int32(workers+4))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if n, err := countGenerated(ctx, pool); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, fmt.Errorf("sql benchmark: the database already holds %d generated tasks; it grows its own dataset from none, so give it an empty database", n)
	}
	res := &SQLResult{Benchmark: "sql", Scales: cfg.Scales, Samples: cfg.Samples, Postgres: pg,
		Machine: ThisMachine(), Commit: Commit(), StartedAt: started.UTC()}
	rt, err := roundTrip(ctx, cfg.DatabaseURL, 200)
	if err != nil {
		return nil, err
	}
	res.RoundTripP50 = rt.pct(50)

	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	funcs := db.NewFuncs(nil)
	hists := make([][]*hist, len(cfg.Cases))
	have := 0
	var samples *Samples
	for si, scale := range cfg.Scales {
		ds, err := growDataset(ctx, pool, cfg.Dataset, have, scale, cfg.Progress)
		if err != nil {
			return nil, err
		}
		have = scale
		res.Datasets = append(res.Datasets, ds)
		if samples, err = LoadSamples(ctx, pool); err != nil {
			return nil, err
		}
		phase := fmt.Sprintf("sql at %d tasks", scale)
		for ci, c := range cfg.Cases {
			cfg.Progress(ProgressReport{Phase: phase, Done: ci, Total: len(cfg.Cases)})
			hists[ci] = append(hists[ci], nil)
			if c.Candidates(samples) == 0 {
				cfg.Logger.Warn("nothing to call the function on at this scale", "function", c.Name, "scale", scale)
				continue
			}
			r := rand.New(rand.NewPCG(uint64(scale), uint64(ci)))
			h, err := timeCase(ctx, conn, funcs, c, samples, r, cfg.Warmup, cfg.Samples)
			if err != nil {
				return nil, fmt.Errorf("%s at %d tasks: %w", c.Name, scale, err)
			}
			hists[ci][si] = h
		}
		cfg.Progress(ProgressReport{Phase: phase, Done: len(cfg.Cases), Total: len(cfg.Cases)})
	}

	for ci, c := range cfg.Cases {
		fr := SQLFunction{Name: c.Name, Function: c.Function, PerTask: c.PerTask, Writes: c.Writes}
		for si, h := range hists[ci] {
			if h == nil {
				continue
			}
			fr.Points = append(fr.Points, SQLPoint{Scale: cfg.Scales[si], Samples: h.count(), P50: h.pct(50), P95: h.pct(95),
				P99: h.pct(99), Max: h.max(), Mean: h.mean()})
		}
		fr.Growth, fr.Goals = judge(fr)
		if len(fr.Points) > 2 && fr.Points[1].P50 > 0 {
			fr.GrowthFromSecond = round3(fr.Points[len(fr.Points)-1].P50 / fr.Points[1].P50)
		}
		res.Functions = append(res.Functions, fr)
	}

	if workers > 0 && cfg.ContentionDuration > 0 {
		if len(samples.Running) < workers+1 {
			cfg.Logger.Warn("too few running tasks for the contention benchmark", "running", len(samples.Running))
		} else {
			for _, mode := range []string{ContentionSameTask, ContentionDifferentTasks} {
				cfg.Progress(ProgressReport{Phase: "contention " + mode, Done: 0, Total: 1})
				cr, err := Contention(ctx, pool, funcs, mode, samples.Running[:workers+1], workers, cfg.ContentionDuration)
				if err != nil {
					return nil, err
				}
				res.Contention = append(res.Contention, cr)
				cfg.Progress(ProgressReport{Phase: "contention " + mode, Done: 1, Total: 1})
			}
		}
	}
	res.DurationS = round3(time.Since(started).Seconds())
	return res, nil
}

// judge computes a function's growth ratio and checks it against the goals.
func judge(f SQLFunction) (float64, []Goal) {
	if len(f.Points) == 0 {
		return 0, nil
	}
	first, last := f.Points[0], f.Points[len(f.Points)-1]
	growth := 0.0
	if first.P50 > 0 {
		growth = round3(last.P50 / first.P50)
	}
	var goals []Goal
	switch f.Function {
	case "get_next_ready_tasks":
		goals = append(goals, Goal{Goal: fmt.Sprintf("p50 ≤ %g ms at %d tasks", goalReadyTasksP50Ms, last.Scale),
			Met: last.P50 <= goalReadyTasksP50Ms, Value: last.P50})
	case "get_step_readiness_status":
		goals = append(goals, Goal{Goal: fmt.Sprintf("p50 ≤ %g ms at %d tasks", goalReadinessP50Ms, last.Scale),
			Met: last.P50 <= goalReadinessP50Ms, Value: last.P50})
	}
	if f.PerTask && len(f.Points) > 1 {
		goals = append(goals, Goal{Goal: fmt.Sprintf("growth %d→%d ≤ %g", first.Scale, last.Scale, goalPerTaskGrowth),
			Met: growth <= goalPerTaskGrowth, Value: growth})
	}
	return growth, goals
}

// growDataset adds tasks have..scale-1 to the dataset.
func growDataset(ctx context.Context, pool *pgxpool.Pool, gen GenerateConfig, have, scale int, progress func(ProgressReport)) (ScaleDataset, error) {
	t0 := time.Now()
	gen.Start, gen.Tasks = have, scale-have
	gen.Progress = func(p ProgressReport) {
		progress(ProgressReport{Phase: fmt.Sprintf("generate %d tasks: %s", scale, p.Phase), Done: p.Done, Total: p.Total})
	}
	gen = gen.withDefaults()
	if err := gen.validateData(); err != nil {
		return ScaleDataset{}, err
	}
	if err := generate(ctx, pool, gen, &GenerateResult{}); err != nil {
		return ScaleDataset{}, err
	}
	// Loading wrote hundreds of MB of WAL: without a checkpoint now, the one
	// it triggers would write the dirty pages back while the next phase
	// measures. Needs superuser or pg_checkpoint; without, measure anyway.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		gen.Logger.Warn("could not checkpoint after loading; a checkpoint may run during the measurements", "error", err)
	}
	st, err := ReadDatasetStats(ctx, pool)
	if err != nil {
		return ScaleDataset{}, err
	}
	return ScaleDataset{Scale: scale, GenerateS: round3(time.Since(t0).Seconds()), TasksByState: st.TasksByState,
		Steps: st.Steps, Tables: st.Tables}, nil
}

// vacuumEvery is how many samples of a case with SQLCase.Vacuum run between vacuums.
const vacuumEvery = 50

// timeCase makes warmup + n calls of c and returns the histogram of the n.
func timeCase(ctx context.Context, conn *pgx.Conn, f *db.Funcs, c SQLCase, s *Samples, r *rand.Rand, warmup, n int) (*hist, error) {
	h := newHist()
	for i := range warmup + n {
		if c.Vacuum != "" && i > 0 && i%vacuumEvery == 0 {
			if _, err := conn.Exec(ctx, "VACUUM "+pgx.Identifier{"tasker", c.Vacuum}.Sanitize()); err != nil {
				return nil, fmt.Errorf("vacuuming %s: %w", c.Vacuum, err)
			}
		}
		var d time.Duration
		if c.Writes {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return nil, err
			}
			t0 := time.Now()
			err = c.Call(ctx, tx, f, s, r)
			d = time.Since(t0)
			if rerr := tx.Rollback(ctx); err == nil {
				err = rerr
			}
			if err != nil {
				return nil, err
			}
		} else {
			t0 := time.Now()
			if err := c.Call(ctx, conn, f, s, r); err != nil {
				return nil, err
			}
			d = time.Since(t0)
		}
		if i >= warmup {
			h.record(d)
		}
	}
	return h, nil
}

// Contention modes.
const (
	ContentionSameTask       = "same_task"
	ContentionDifferentTasks = "different_tasks"
)

// Contention runs workers goroutines for d, each repeatedly reading a task's
// state and moving it between steps_in_process and evaluating_results with
// transition_task_state_atomic (autocommit): all on tasks[0] (same_task) or
// each on its own (different_tasks). The tasks must be in one of the two
// states.
func Contention(ctx context.Context, pool *pgxpool.Pool, f *db.Funcs, mode string, tasks []uuid.UUID, workers int, d time.Duration) (ContentionResult, error) {
	res := ContentionResult{Mode: mode, Workers: workers}
	if len(tasks) < workers {
		return res, fmt.Errorf("contention: %d tasks for %d workers", len(tasks), workers)
	}
	var attempts, succeeded, conflicts atomic.Int64
	hists := make([]*hist, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		task := tasks[0]
		if mode == ContentionDifferentTasks {
			task = tasks[w]
		}
		hists[w] = newHist()
		wg.Go(func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				errs[w] = err
				return
			}
			defer conn.Release()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				var cur string
				if err := conn.QueryRow(ctx, `SELECT state FROM tasker.tasks WHERE task_uuid = $1`, task).Scan(&cur); err != nil {
					errs[w] = fmt.Errorf("contention: reading state: %w", err)
					return
				}
				to := "evaluating_results"
				if cur == to {
					to = "steps_in_process"
				} else if cur != "steps_in_process" {
					errs[w] = fmt.Errorf("contention: task %s is %s", task, cur)
					return
				}
				t0 := time.Now()
				ok, err := f.TransitionTaskStateAtomic(ctx, conn, task, cur, to, benchProcessor, map[string]any{"reason": "contention"})
				hists[w].record(time.Since(t0))
				if err != nil {
					errs[w] = err
					return
				}
				attempts.Add(1)
				if ok {
					succeeded.Add(1)
				} else {
					conflicts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	elapsed := time.Since(start).Seconds()
	all := newHist()
	for _, h := range hists {
		all.h.Merge(h.h)
	}
	res.DurationS = round3(elapsed)
	res.Attempts, res.Succeeded, res.Conflicts = attempts.Load(), succeeded.Load(), conflicts.Load()
	if res.Attempts > 0 {
		res.ConflictRate = round3(float64(res.Conflicts) / float64(res.Attempts))
	}
	res.AttemptsPerSec = round3(float64(res.Attempts) / elapsed)
	res.TransitionsPerSec = round3(float64(res.Succeeded) / elapsed)
	res.P50, res.P95, res.P99 = all.pct(50), all.pct(95), all.pct(99)
	return res, nil
}

// Goals lists every goal of the result, named by function.
func (r *SQLResult) Goals() []NamedGoal {
	var out []NamedGoal
	for _, f := range r.Functions {
		for _, g := range f.Goals {
			out = append(out, NamedGoal{Name: f.Name, Goal: g})
		}
	}
	return out
}

// NamedGoal is a goal of one function.
type NamedGoal struct {
	Name string
	Goal
}

// Function returns the named case's result.
func (r *SQLResult) Function(name string) (SQLFunction, bool) {
	i := slices.IndexFunc(r.Functions, func(f SQLFunction) bool { return f.Name == name })
	if i < 0 {
		return SQLFunction{}, false
	}
	return r.Functions[i], true
}
