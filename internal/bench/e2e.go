package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

// ShortNames maps the benchmark's short template names to example templates.
var ShortNames = map[string]string{
	"linear":    "linear_workflow/mathematical_sequence",
	"diamond":   "diamond_workflow/diamond_pattern",
	"tree":      "tree_workflow/hierarchical_tree",
	"mixed_dag": "mixed_dag_workflow/complex_dag",
	"single":    "single_workflow/single_step",
}

// AllTemplates are the DAG templates `--template all` runs, in order.
var AllTemplates = []string{"linear", "diamond", "tree", "mixed_dag"}

// Config configures E2E. Zero values mean the documented default.
type Config struct {
	// DatabaseURL names the server to run against (required). E2E applies the
	// migrations and registers the example templates.
	DatabaseURL string
	// MaxConns is the engine pool's size. Default 40 (as `tasker dev`).
	MaxConns int32
	// Runs is how many measured tasks each template gets. Default 200.
	Runs int
	// Warmup tasks run before the measured ones and are not counted. 0 means none.
	Warmup int
	// EvenNumber is context.even_number of every task. Default 6.
	EvenNumber int
	// FloorSamples is how many commits and notifications the floor takes. Default 200.
	FloorSamples int
	// Completion is CompletionHook (default) or CompletionPoll.
	Completion string
	// PollInterval is how often CompletionPoll reads the task. Default 200µs.
	PollInterval time.Duration
	// TaskTimeout is how long one task may take before it counts as an error. Default 60s.
	TaskTimeout time.Duration
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
	// Progress receives a line as each phase starts (may be nil).
	Progress func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = 40
	}
	if c.Runs == 0 {
		c.Runs = 200
	}
	if c.EvenNumber == 0 {
		c.EvenNumber = 6
	}
	if c.FloorSamples == 0 {
		c.FloorSamples = 200
	}
	if c.Completion == "" {
		c.Completion = CompletionHook
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Microsecond
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("bench: a database URL is required")
	case c.Runs < 1:
		return fmt.Errorf("bench: runs must be ≥ 1, got %d", c.Runs)
	case c.Warmup < 0:
		return fmt.Errorf("bench: warmup must be ≥ 0, got %d", c.Warmup)
	case c.EvenNumber < 2 || c.EvenNumber > 100 || c.EvenNumber%2 != 0:
		return fmt.Errorf("bench: even number must be an even integer from 2 to 100, got %d", c.EvenNumber)
	case c.FloorSamples < 1:
		return fmt.Errorf("bench: floor samples must be ≥ 1, got %d", c.FloorSamples)
	case c.Completion != CompletionHook && c.Completion != CompletionPoll:
		return fmt.Errorf("bench: completion must be %q or %q, got %q", CompletionHook, CompletionPoll, c.Completion)
	case c.PollInterval < 0:
		return fmt.Errorf("bench: poll interval must be ≥ 0, got %s", c.PollInterval)
	}
	return nil
}

// Result is one template's outcome. Latencies are milliseconds.
type Result struct {
	Benchmark string `json:"benchmark"`
	// Template is the template run, "namespace/name@version".
	Template string `json:"template"`
	// Requested is the name it was asked for ("linear", or a reference).
	Requested string `json:"requested"`
	Steps     int    `json:"steps"`
	// Runs counts measured tasks, errors included; Warmup the ones before.
	Runs   int `json:"runs"`
	Warmup int `json:"warmup"`
	// Errors counts measured tasks that did not complete (another final
	// state, a timeout or a failed create). They are not in the latencies.
	Errors int `json:"errors"`
	// ErrorSamples are the first few error descriptions.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Completion is how completion was observed: hook or poll.
	Completion string `json:"completion"`
	// PollIntervalUs is the poll period (poll), or 0.
	PollIntervalUs int64 `json:"poll_interval_us,omitempty"`
	// XIDsPerTask is how many transaction IDs the measured tasks used per
	// task: one per write transaction (each commit of which waits for a WAL
	// flush when synchronous_commit is on) plus one per subtransaction that
	// wrote (a plpgsql EXCEPTION block, a savepoint). WALBytesPerTask is the
	// WAL they wrote. Both are server-wide, so other activity counts too.
	XIDsPerTask     float64 `json:"xids_per_task"`
	WALBytesPerTask float64 `json:"wal_bytes_per_task"`
	// HookMisses counts tasks whose completion the hook did not report and
	// the safety-net poll found instead (should be 0).
	HookMisses int `json:"hook_misses,omitempty"`

	// Client-observed create → complete.
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	// DB-recorded tasks.completed_at − tasks.created_at.
	DBP50  float64 `json:"db_p50_ms"`
	DBP95  float64 `json:"db_p95_ms"`
	DBP99  float64 `json:"db_p99_ms"`
	DBMax  float64 `json:"db_max_ms"`
	DBMean float64 `json:"db_mean_ms"`

	Floor    Floor    `json:"floor"`
	Hops     []Hop    `json:"hops,omitempty"`
	Postgres Postgres `json:"postgres"`
	Machine  Machine  `json:"machine"`
	Commit   string   `json:"commit"`
	// StartedAt is when this template's benchmark started; DurationS how long
	// it took, floor and warmup included.
	StartedAt time.Time `json:"started_at"`
	DurationS float64   `json:"duration_s"`
}

// ResolveTemplate turns a short name or "NS/NAME[@VERSION]" into its parts.
func ResolveTemplate(name string) (ns, tname, version string, err error) {
	ref := name
	if full, ok := ShortNames[name]; ok {
		ref = full
	}
	ns, tname, version, err = template.ParseRef(ref)
	if err != nil {
		short := slices.Sorted(func(yield func(string) bool) {
			for k := range ShortNames {
				if !yield(k) {
					return
				}
			}
		})
		return "", "", "", fmt.Errorf("%w (or one of %s)", err, strings.Join(short, ", "))
	}
	return ns, tname, version, nil
}

// E2E runs the closed-loop create → complete benchmark for each template in
// turn, each on its own freshly started engine, and returns one Result per
// template. A task that does not complete is counted in Result.Errors, not
// returned as an error; err is for failures of the benchmark itself.
func E2E(ctx context.Context, cfg Config, templates ...string) ([]*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(templates) == 0 {
		return nil, errors.New("bench: no template given")
	}
	type target struct{ requested, ns, name, version string }
	targets := make([]target, 0, len(templates))
	for _, t := range templates {
		ns, name, version, err := ResolveTemplate(t)
		if err != nil {
			return nil, err
		}
		targets = append(targets, target{t, ns, name, version})
	}

	pool, reg, pg, err := prepare(ctx, cfg.DatabaseURL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	env := envInfo{pg: pg, machine: ThisMachine(), commit: Commit()}

	var out []*Result
	for _, t := range targets {
		registered, err := templatestore.Lookup(ctx, pool, t.ns, t.name, t.version)
		if err != nil {
			return out, fmt.Errorf("template %s: %w", t.requested, err)
		}
		r, err := runE2E(ctx, cfg, pool, reg, registered.Template, t.requested, env)
		if err != nil {
			return out, fmt.Errorf("template %s: %w", t.requested, err)
		}
		out = append(out, r)
	}
	return out, nil
}

type envInfo struct {
	pg      Postgres
	machine Machine
	commit  string
}

// registerExamples registers the example templates the way `tasker dev`
// does, after checking that reg runs all their handlers.
func registerExamples(ctx context.Context, pool *pgxpool.Pool, reg *handler.Registry) error {
	tpls, err := examples.Templates()
	if err != nil {
		return err
	}
	for _, t := range tpls {
		if err := t.Validate(reg.Has); err != nil {
			return err
		}
	}
	return templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls)
}

// prepare connects to url, migrates, registers the example templates and
// reads the server's settings: what every benchmark starts with.
func prepare(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, *handler.Registry, Postgres, error) {
	pool, err := db.NewPool(ctx, url, maxConns)
	if err != nil {
		return nil, nil, Postgres{}, err
	}
	fail := func(err error) (*pgxpool.Pool, *handler.Registry, Postgres, error) {
		pool.Close()
		return nil, nil, Postgres{}, err
	}
	if err := db.Migrate(ctx, pool); err != nil {
		return fail(err)
	}
	reg := handler.NewRegistry()
	if err := examples.Register(reg); err != nil {
		return fail(err)
	}
	if err := registerExamples(ctx, pool, reg); err != nil {
		return fail(err)
	}
	pg, err := ReadPostgres(ctx, pool)
	if err != nil {
		return fail(err)
	}
	return pool, reg, pg, nil
}

// maxErrorSamples bounds Result.ErrorSamples.
const maxErrorSamples = 5

// hookSafetyPoll is how often the hook method checks the task row in case the
// lifecycle record never comes (a renamed event would otherwise hang the run).
const hookSafetyPoll = 100 * time.Millisecond

// hookGrace is how long the hook may trail a final state the safety-net poll
// found before the completion counts as missed by the hook.
const hookGrace = time.Second

func runE2E(ctx context.Context, cfg Config, pool *pgxpool.Pool, reg *handler.Registry, tpl *template.Template,
	requested string, env envInfo) (*Result, error) {
	started := time.Now()
	machine := env.machine
	machine.LoadAvg1 = loadAvg1()
	res := &Result{
		Benchmark: "e2e", Template: tpl.Key(), Requested: requested, Steps: len(tpl.Steps),
		Runs: cfg.Runs, Warmup: cfg.Warmup, Completion: cfg.Completion,
		Postgres: env.pg, Machine: machine, Commit: env.commit, StartedAt: started.UTC(),
	}
	if cfg.Completion == CompletionPoll {
		res.PollIntervalUs = cfg.PollInterval.Microseconds()
	}

	cfg.Progress("%s: floor (%d commits, %d notifications)", tpl.Key(), cfg.FloorSamples, cfg.FloorSamples)
	floor, err := MeasureFloor(ctx, cfg.DatabaseURL, cfg.FloorSamples)
	if err != nil {
		return nil, err
	}
	res.Floor = floor

	logger := cfg.Logger
	trk := newTracker()
	if cfg.Completion == CompletionHook {
		logger = slog.New(hookHandler{inner: cfg.Logger.Handler(), t: trk})
	}
	initSvc, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: logger}})
	if err != nil {
		return nil, err
	}
	e, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{},
		Worker: &worker.Config{Namespaces: []string{tpl.Namespace}, Dispatcher: worker.RegistryDispatcher{Registry: reg},
			Submitter: initSvc}, Telemetry: base.Telemetry{Logger: logger}})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = e.Stop()
		}
	}()

	// The waiter's own connection keeps its reads off the engine's pool.
	wconn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connecting the waiter: %w", err)
	}
	defer func() { _ = wconn.Close(context.WithoutCancel(ctx)) }()
	w := &waiter{conn: wconn, trk: trk, cfg: cfg}

	clientH, dbH, outsideH := newHist(), newHist(), newHist()
	measured := make([]uuid.UUID, 0, cfg.Runs)
	fail := func(format string, args ...any) {
		res.Errors++
		if len(res.ErrorSamples) < maxErrorSamples {
			res.ErrorSamples = append(res.ErrorSamples, fmt.Sprintf(format, args...))
		}
	}
	cfg.Progress("%s: %d warmup + %d measured tasks, one at a time", tpl.Key(), cfg.Warmup, cfg.Runs)
	var before counters
	for i := range cfg.Warmup + cfg.Runs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		counted := i >= cfg.Warmup
		if i == cfg.Warmup {
			if before, err = readCounters(ctx, wconn); err != nil {
				return nil, err
			}
		}
		req, err := client.NewTaskRequest(tpl.Namespace, tpl.Name, tpl.Version, map[string]any{"even_number": cfg.EvenNumber})
		if err != nil {
			return nil, err
		}
		start := time.Now()
		created, err := e.Orchestrator.CreateTask(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if counted {
				fail("creating task: %v", err)
			}
			continue
		}
		end, missed, err := w.wait(ctx, created.TaskUUID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if counted {
				fail("task %s: %v", created.TaskUUID, err)
			}
			continue
		}
		st, dbDur, err := w.outcome(ctx, created.TaskUUID)
		if err != nil {
			return nil, err
		}
		if !counted {
			continue
		}
		if missed {
			res.HookMisses++
		}
		if st != state.TaskComplete {
			fail("task %s ended %s", created.TaskUUID, st)
			continue
		}
		clientH.record(end.Sub(start))
		dbH.record(dbDur)
		outsideH.record(end.Sub(start) - dbDur)
		measured = append(measured, created.TaskUUID)
	}
	after, err := readCounters(ctx, wconn)
	if err != nil {
		return nil, err
	}
	res.XIDsPerTask = round3(float64(after.nextXID-before.nextXID) / float64(cfg.Runs))
	res.WALBytesPerTask = round3(float64(after.walBytes-before.walBytes) / float64(cfg.Runs))
	stopped = true
	if err := e.Stop(); err != nil {
		return nil, fmt.Errorf("stopping the engine: %w", err)
	}

	res.P50, res.P95, res.P99, res.Max, res.Mean = clientH.pct(50), clientH.pct(95), clientH.pct(99), clientH.max(), clientH.mean()
	res.DBP50, res.DBP95, res.DBP99, res.DBMax, res.DBMean = dbH.pct(50), dbH.pct(95), dbH.pct(99), dbH.max(), dbH.mean()
	if len(measured) > 0 {
		hops, err := Hops(ctx, wconn, measured)
		if err != nil {
			return nil, err
		}
		res.Hops = append(hops, hopOf(HopOutsideDB, outsideH))
	}
	res.DurationS = round3(time.Since(started).Seconds())
	return res, nil
}

// waiter detects that a task reached a final state.
type waiter struct {
	conn *pgx.Conn
	trk  *tracker
	cfg  Config
}

const taskStateSQL = `SELECT state FROM tasker.tasks WHERE task_uuid = $1`

// wait returns when task id reached a final state. missed reports that the
// hook did not say so and the safety-net poll found it.
func (w *waiter) wait(ctx context.Context, id uuid.UUID) (end time.Time, missed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.TaskTimeout)
	defer cancel()
	if w.cfg.Completion == CompletionPoll {
		for {
			final, err := w.final(ctx, id)
			if err != nil {
				return time.Time{}, false, err
			}
			if final {
				return time.Now(), false, nil
			}
			if w.cfg.PollInterval > 0 {
				shortSleep(w.cfg.PollInterval)
			}
		}
	}
	f := w.trk.watch(id)
	defer w.trk.forget(id)
	tick := time.NewTicker(hookSafetyPoll)
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return f.at, false, nil
		case <-ctx.Done():
			return time.Time{}, false, fmt.Errorf("not finished after %s", w.cfg.TaskTimeout)
		case <-tick.C:
			final, err := w.final(ctx, id)
			if err != nil {
				return time.Time{}, false, err
			}
			if final {
				// The poll can see the commit before the orchestrator has
				// emitted the record (it does so right after committing), so
				// give the hook a moment and prefer its exact time.
				seen := time.Now()
				grace := time.NewTimer(hookGrace)
				defer grace.Stop()
				select {
				case <-f.done:
					return f.at, false, nil
				case <-grace.C:
					return seen, true, nil
				}
			}
		}
	}
}

func (w *waiter) final(ctx context.Context, id uuid.UUID) (bool, error) {
	var st string
	if err := w.conn.QueryRow(ctx, taskStateSQL, id).Scan(&st); err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("not finished after %s", w.cfg.TaskTimeout)
		}
		return false, fmt.Errorf("reading task state: %w", err)
	}
	return state.Task(st).Terminal(), nil
}

// outcome reads the task's final state and the database's own account of
// its duration.
func (w *waiter) outcome(ctx context.Context, id uuid.UUID) (state.Task, time.Duration, error) {
	var st string
	var us *int64
	err := w.conn.QueryRow(ctx, `SELECT state,
			(extract(epoch FROM completed_at - created_at) * 1000000)::bigint
		FROM tasker.tasks WHERE task_uuid = $1`, id).Scan(&st, &us)
	if err != nil {
		return "", 0, fmt.Errorf("reading task %s: %w", id, err)
	}
	var d time.Duration
	if us != nil {
		d = time.Duration(*us) * time.Microsecond
	}
	return state.Task(st), d, nil
}

// counters are server-wide totals read without changing them.
type counters struct {
	// nextXID is the next transaction ID to be assigned: reading it does not
	// assign one (unlike pg_current_xact_id).
	nextXID  int64
	walBytes int64
}

func readCounters(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (counters, error) {
	var c counters
	err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
		(pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&c.nextXID, &c.walBytes)
	if err != nil {
		return c, fmt.Errorf("reading transaction and WAL counters: %w", err)
	}
	return c, nil
}
