package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// LatencyConfig configures LatencyUnderLoad. Zero values mean the documented default.
type LatencyConfig struct {
	DatabaseURL string
	// MaxConns is each engine pool's size. Default 40.
	MaxConns int32
	// Template is a ShortNames key or NS/NAME[@VERSION]. Default single.
	Template string
	// Rates are the arrival rates (tasks per second) measured, in order. Required.
	Rates []float64
	// Duration is the measured window of each rate, after Warmup (whose
	// arrivals are not measured). Defaults 10s and 2s.
	Duration time.Duration
	Warmup   time.Duration
	// Topology is how many orchestrators and workers run. Default 1 + 1.
	Topology Topology
	// WorkerConcurrency is each worker's handler slots. Default 32.
	WorkerConcurrency int
	// ResultWorkers is orchestration's result-processing concurrency
	// (0: orchestration's default).
	ResultWorkers int
	// Creators are the goroutines that create the arriving tasks; arrivals
	// due while all are busy are created together, in one batch. Default 4.
	Creators int
	// Drain bounds the wait for a rate's tasks after its window; tasks still
	// open then count as incomplete. Default 60s.
	Drain time.Duration
	// FloorSamples is how many commits and notifications the floor takes. Default 100.
	FloorSamples int
	Logger       *slog.Logger
	Progress     func(format string, args ...any)
}

func (c LatencyConfig) withDefaults() LatencyConfig {
	if c.MaxConns <= 0 {
		c.MaxConns = 40
	}
	if c.Template == "" {
		c.Template = "single"
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	c.Topology = c.Topology.withDefaults()
	if c.WorkerConcurrency == 0 {
		c.WorkerConcurrency = 32
	}
	if c.Creators == 0 {
		c.Creators = 4
	}
	if c.Drain == 0 {
		c.Drain = time.Minute
	}
	if c.FloorSamples == 0 {
		c.FloorSamples = 100
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

// MaxRate bounds an arrival rate: beyond it the ticker, not the engine, is measured.
const MaxRate = 100000

func (c LatencyConfig) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("bench: a database URL is required")
	case len(c.Rates) == 0:
		return errors.New("bench: at least one rate is required")
	case c.Duration <= 0 || c.Warmup < 0 || c.Drain <= 0:
		return fmt.Errorf("bench: duration and drain must be > 0 and warmup ≥ 0 (got %s, %s, %s)", c.Duration, c.Drain, c.Warmup)
	case c.WorkerConcurrency < 1 || c.Creators < 1 || c.FloorSamples < 1:
		return fmt.Errorf("bench: worker concurrency, creators and floor samples must be ≥ 1 (got %d, %d, %d)",
			c.WorkerConcurrency, c.Creators, c.FloorSamples)
	}
	for _, r := range c.Rates {
		if r <= 0 || r > MaxRate {
			return fmt.Errorf("bench: a rate must be above 0 and at most %d tasks/s, got %g", MaxRate, r)
		}
	}
	return c.Topology.validate()
}

// RateResult is one arrival rate's outcome. Latencies are milliseconds,
// from each task's scheduled arrival to its completion as the orchestrator
// reports it right after the finalizing commit: time a task waited for a
// creator counts, as it would for a client.
type RateResult struct {
	TargetRate float64 `json:"target_rate"`
	// CreatedRate is the measured arrivals created per second of the window;
	// CompletedRate the tasks completed per second of the window (the
	// achieved rate).
	CreatedRate   float64 `json:"created_per_second"`
	CompletedRate float64 `json:"completed_per_second"`
	// Tasks are the measured arrivals; Incomplete those not finished when
	// the drain ended; Errors failed creates and tasks that ended other than
	// complete.
	Tasks      int `json:"tasks"`
	Incomplete int `json:"incomplete"`
	Errors     int `json:"errors"`
	// MaxBatch is the largest batch of arrivals created together.
	MaxBatch int     `json:"max_batch"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Saturated: the completed rate fell below 95 % of the target, tasks
	// did not finish, or p99 ran away (more than 10× the lowest rate's).
	Saturated bool   `json:"saturated"`
	Why       string `json:"why,omitempty"`
}

// LatencyResult is a latency-under-load run.
type LatencyResult struct {
	Benchmark string       `json:"benchmark"`
	Template  string       `json:"template"`
	Steps     int          `json:"steps_per_task"`
	WindowS   float64      `json:"window_s"`
	WarmupS   float64      `json:"warmup_s"`
	Topology  Topology     `json:"topology"`
	Rates     []RateResult `json:"rates"`
	// SaturatesAt is the first target rate found saturated, 0 when none was.
	SaturatesAt float64   `json:"saturates_at"`
	Floor       Floor     `json:"floor"`
	Postgres    Postgres  `json:"postgres"`
	Machine     Machine   `json:"machine"`
	Commit      string    `json:"commit"`
	StartedAt   time.Time `json:"started_at"`
}

// LatencyUnderLoad offers tasks at each fixed rate in turn (open loop: a
// ticker schedules arrivals whatever the engine does) and reports each
// rate's create → complete latency and achieved rate, and where the engine
// saturates. One topology serves every rate; each rate's tasks are drained
// before the next starts.
func LatencyUnderLoad(ctx context.Context, cfg LatencyConfig) (*LatencyResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ls, err := setupLoad(ctx, cfg.Template, cfg.DatabaseURL, cfg.MaxConns, cfg.FloorSamples, cfg.Progress)
	if err != nil {
		return nil, err
	}
	pool, reg, ns, name, version := ls.pool, ls.reg, ls.ns, ls.name, ls.version
	defer pool.Close()
	res := &LatencyResult{Benchmark: "latency-under-load", Template: ls.tpl.Template.Key(), Steps: len(ls.tpl.Template.Steps),
		WindowS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), Topology: cfg.Topology,
		Postgres: ls.pg, Machine: ThisMachine(), Commit: Commit(), StartedAt: time.Now().UTC(), Floor: ls.floor}

	trk := newTracker()
	tel := base.Telemetry{Logger: cfg.Logger}
	spec := engineSpec{topo: cfg.Topology, url: cfg.DatabaseURL, maxConns: cfg.MaxConns, namespace: ns, reg: reg,
		workerConcurrency: cfg.WorkerConcurrency, resultWorkers: cfg.ResultWorkers, tel: tel,
		orchTel: &base.Telemetry{Logger: slog.New(hookHandler{inner: cfg.Logger.Handler(), t: trk})}}
	pools, err := openPools(ctx, spec)
	if err != nil {
		return nil, err
	}
	set, err := startEngines(ctx, spec, pool, pools)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, set.stop()) }()

	for _, rate := range cfg.Rates {
		cfg.Progress("rate %g tasks/s: %s warm-up, %s measured", rate, cfg.Warmup, cfg.Duration)
		rr, err := runRate(ctx, cfg, rate, set.server, pool, trk, ns, name, version)
		if err != nil {
			return nil, fmt.Errorf("rate %g: %w", rate, err)
		}
		res.Rates = append(res.Rates, rr)
	}
	markSaturation(res)
	return res, nil
}

// arrival is one task to create, with when it was due.
type arrival struct {
	due      time.Time
	measured bool
}

// created is an arrival that was created.
type created struct {
	id       uuid.UUID
	due      time.Time
	measured bool
}

func runRate(ctx context.Context, cfg LatencyConfig, rate float64, server *orchestration.Service, q db.Querier,
	trk *tracker, ns, name, version string) (RateResult, error) {
	rr := RateResult{TargetRate: rate}
	batches := make(chan []arrival, 64)
	var mu sync.Mutex
	var out []created
	var createErrs, maxBatch atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Creators {
		wg.Go(func() {
			for batch := range batches {
				if int64(len(batch)) > maxBatch.Load() {
					maxBatch.Store(int64(len(batch))) // a lost race only understates a peak
				}
				reqs, err := taskRequests(ns, name, version, len(batch), 0)
				if err != nil {
					createErrs.Add(int64(len(batch)))
					continue
				}
				var ids []uuid.UUID
				if len(reqs) == 1 {
					var c *orchestration.Created
					if c, err = server.CreateTask(ctx, reqs[0]); err == nil {
						ids = []uuid.UUID{c.TaskUUID}
					}
				} else {
					ids, err = createInBatches(ctx, server, reqs, client.MaxTaskBatch)
				}
				if err != nil {
					createErrs.Add(int64(len(batch)))
					continue
				}
				mu.Lock()
				for i, id := range ids {
					out = append(out, created{id: id, due: batch[i].due, measured: batch[i].measured})
				}
				mu.Unlock()
			}
		})
	}

	// The scheduler: every millisecond, every arrival due by now is handed
	// to a creator; arrivals no creator can take yet join the next hand-off,
	// so a slow engine never slows the arrivals down.
	start := time.Now()
	warmEnd := start.Add(cfg.Warmup)
	end := warmEnd.Add(cfg.Duration)
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(time.Millisecond)
	var pending []arrival
	sent := 0
	for now := start; now.Before(end) && ctx.Err() == nil; now = <-tick.C {
		for {
			due := start.Add(time.Duration(sent) * interval)
			if due.After(now) || !due.Before(end) {
				break
			}
			pending = append(pending, arrival{due: due, measured: !due.Before(warmEnd)})
			sent++
		}
		for len(pending) > 0 {
			n := min(len(pending), client.MaxTaskBatch)
			select {
			case batches <- pending[:n:n]:
				pending = pending[n:]
				continue
			default:
			}
			break
		}
	}
	tick.Stop()
	for len(pending) > 0 && ctx.Err() == nil {
		n := min(len(pending), client.MaxTaskBatch)
		batches <- pending[:n:n]
		pending = pending[n:]
	}
	close(batches)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rr, err
	}
	rr.MaxBatch = int(maxBatch.Load())
	rr.Errors = int(createErrs.Load())

	// Drain: wait for every task of this rate, then forget them.
	dctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	defer cancel()
	h := newHist()
	var measuredIDs []uuid.UUID
	completedInWindow := 0
	for _, c := range out {
		f := trk.watch(c.id)
		select {
		case <-f.done:
		case <-dctx.Done():
			if err := ctx.Err(); err != nil {
				return rr, err
			}
		}
		select {
		case <-f.done:
			if !f.at.Before(warmEnd) && f.at.Before(end) {
				completedInWindow++
			}
			if c.measured {
				h.record(f.at.Sub(c.due))
			}
		default:
			if c.measured {
				rr.Incomplete++
			}
		}
		if c.measured {
			rr.Tasks++
			measuredIDs = append(measuredIDs, c.id)
		}
		trk.forget(c.id)
	}
	if len(measuredIDs) > 0 {
		// Failed tasks: finished, but not complete (unfinished ones are
		// counted as Incomplete, not here).
		var failed int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE task_uuid = ANY($1)
			AND state IN ('error', 'cancelled', 'resolved_manually')`, measuredIDs).Scan(&failed); err != nil {
			return rr, fmt.Errorf("reading final states: %w", err)
		}
		rr.Errors += failed
	}
	window := cfg.Duration.Seconds()
	rr.CreatedRate = round3(float64(rr.Tasks) / window)
	rr.CompletedRate = round3(float64(completedInWindow) / window)
	rr.P50, rr.P95, rr.P99, rr.Max = h.pct(50), h.pct(95), h.pct(99), h.max()
	return rr, nil
}

// markSaturation flags the saturated rates and the first of them.
func markSaturation(res *LatencyResult) {
	if len(res.Rates) == 0 {
		return
	}
	lowest := slices.MinFunc(res.Rates, func(a, b RateResult) int {
		if a.TargetRate < b.TargetRate {
			return -1
		}
		if a.TargetRate > b.TargetRate {
			return 1
		}
		return 0
	})
	for i := range res.Rates {
		r := &res.Rates[i]
		switch {
		case r.Incomplete > 0:
			r.Saturated, r.Why = true, fmt.Sprintf("%d tasks unfinished after the drain", r.Incomplete)
		case r.CompletedRate < 0.95*r.TargetRate:
			r.Saturated, r.Why = true, fmt.Sprintf("completed %.0f/s, below 95 %% of %g/s", r.CompletedRate, r.TargetRate)
		case lowest.P99 > 0 && r.TargetRate > lowest.TargetRate && r.P99 > 10*lowest.P99:
			r.Saturated, r.Why = true, fmt.Sprintf("p99 %.1f ms is over 10× the p99 at %g/s", r.P99, lowest.TargetRate)
		}
		if r.Saturated && (res.SaturatesAt == 0 || r.TargetRate < res.SaturatesAt) {
			res.SaturatesAt = r.TargetRate
		}
	}
}

// ChartSVG draws create → complete p50 and p99 against the target rate.
func (r *LatencyResult) ChartSVG() []byte {
	c := chart{Title: "create → complete latency vs arrival rate (" + r.Template + ")", XLabel: "target rate, tasks/s (log)",
		YLabel: "latency, ms (log)", LogX: true, LogY: true}
	var p50, p99 [][2]float64
	for _, rr := range r.Rates {
		p50 = append(p50, [2]float64{rr.TargetRate, rr.P50})
		p99 = append(p99, [2]float64{rr.TargetRate, rr.P99})
	}
	c.Series = []chartSeries{{Name: "p50", Points: p50}, {Name: "p99", Points: p99, Dashed: true}}
	if r.SaturatesAt > 0 {
		c.Title += fmt.Sprintf(", saturates at %g/s", r.SaturatesAt)
	}
	return c.SVG()
}

// PrintLatency writes the environment and one line per rate.
func PrintLatency(w io.Writer, r *LatencyResult) error {
	fmt.Fprintf(w, "latency under load: %s (%d steps), open loop, %gs window after %gs warm-up per rate; %s\n",
		r.Template, r.Steps, r.WindowS, r.WarmupS, r.Topology)
	printEnv(w, r.Machine, r.Postgres, r.Commit, r.Floor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET/S\tCREATED/S\tCOMPLETED/S\tTASKS\tp50 ms\tp95 ms\tp99 ms\tmax ms\tMAX BATCH\tERRORS\tSATURATED\t")
	for _, rr := range r.Rates {
		sat := "no"
		if rr.Saturated {
			sat = "yes: " + rr.Why
		}
		fmt.Fprintf(tw, "%g\t%.0f\t%.0f\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t\n", rr.TargetRate, rr.CreatedRate, rr.CompletedRate,
			rr.Tasks, rr.P50, rr.P95, rr.P99, rr.Max, rr.MaxBatch, rr.Errors, sat)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.SaturatesAt > 0 {
		_, err := fmt.Fprintf(w, "\nsaturates at %g tasks/s\n", r.SaturatesAt)
		return err
	}
	_, err := fmt.Fprintln(w, "\nno rate saturated")
	return err
}

// printEnv writes the machine, PostgreSQL, commit and floor lines the load
// benchmarks share.
func printEnv(w io.Writer, m Machine, pg Postgres, commit string, f Floor) {
	durable := "DURABLE"
	if !pg.Durable() {
		durable = "NOT DURABLE"
	}
	fmt.Fprintf(w, "machine   %d CPUs, %s/%s, %s, load average %.2f at start\n", m.CPUs, m.GOOS, m.GOARCH, m.GoVersion, m.LoadAvg1)
	fmt.Fprintf(w, "postgres  %s  fsync=%s synchronous_commit=%s full_page_writes=%s  (%s)\n",
		pg.Version, pg.Fsync, pg.SynchronousCommit, pg.FullPageWrites, durable)
	fmt.Fprintf(w, "commit    %s\n", commit)
	fmt.Fprintf(w, "floor     commit p50/p95/p99 %.2f/%.2f/%.2f ms, notify %.2f/%.2f/%.2f ms, SELECT 1 p50/p99 %.2f/%.2f ms (%d samples)\n\n",
		f.CommitP50, f.CommitP95, f.CommitP99, f.NotifyP50, f.NotifyP95, f.NotifyP99, f.RoundTripP50, f.RoundTripP99, f.Samples)
}
