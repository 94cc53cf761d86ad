package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/worker"
)

// Topology is how many orchestrators and workers a load benchmark runs, as
// separate engines in this process sharing the database (each with its own
// pool and listener, as separate processes would), except for one of each,
// which run in one engine on the benchmark's pool as tasker dev does.
type Topology struct {
	Orchestrators int `json:"orchestrators"`
	Workers       int `json:"workers"`
}

func (t Topology) withDefaults() Topology {
	if t.Orchestrators == 0 {
		t.Orchestrators = 1
	}
	if t.Workers == 0 {
		t.Workers = 1
	}
	return t
}

func (t Topology) validate() error {
	if t.Orchestrators < 1 || t.Workers < 1 || t.Orchestrators > 16 || t.Workers > 16 {
		return fmt.Errorf("bench: orchestrators and workers must be from 1 to 16 (got %d, %d)", t.Orchestrators, t.Workers)
	}
	return nil
}

func (t Topology) combined() bool { return t.Orchestrators == 1 && t.Workers == 1 }

func (t Topology) String() string {
	if t.combined() {
		return "1 orchestrator + 1 worker in one engine"
	}
	return fmt.Sprintf("%d orchestrators + %d workers, separate engines", t.Orchestrators, t.Workers)
}

// engineSpec is what startEngines starts.
type engineSpec struct {
	topo              Topology
	url               string
	maxConns          int32
	namespace         string
	reg               *handler.Registry
	workerConcurrency int
	resultWorkers     int
	tel               base.Telemetry
	// orchTel is given to orchestrators instead of tel when set (a logger
	// that reports completions).
	orchTel *base.Telemetry
}

// engineSet is a running topology.
type engineSet struct {
	engines []*engine.Engine
	// pools are the engines' own pools (not the benchmark's), closed by stop.
	pools []*pgxpool.Pool
	// server is an orchestrator tasks can be created at.
	server *orchestration.Service
}

// openPools opens the pools a topology's engines need besides shared: none
// for the combined engine, else one per engine.
func openPools(ctx context.Context, spec engineSpec) ([]*pgxpool.Pool, error) {
	if spec.topo.combined() {
		return nil, nil
	}
	var pools []*pgxpool.Pool
	for range spec.topo.Orchestrators + spec.topo.Workers {
		p, err := db.NewPool(ctx, spec.url, spec.maxConns)
		if err != nil {
			for _, p := range pools {
				p.Close()
			}
			return nil, fmt.Errorf("opening an engine's pool: %w", err)
		}
		pools = append(pools, p)
	}
	return pools, nil
}

// startEngines starts spec's engines: on shared when the topology is one
// engine, else on pools (from openPools, which stop closes).
// loadSetup is what the load benchmarks (throughput, latency under load)
// start from: a migrated database with the example templates registered,
// the template to load, and the floor.
type loadSetup struct {
	pool              *pgxpool.Pool
	reg               *handler.Registry
	pg                Postgres
	ns, name, version string
	tpl               *templatestore.Registered
	floor             Floor
}

// setupLoad prepares the database for template and measures the floor; the
// caller closes s.pool.
func setupLoad(ctx context.Context, template, url string, maxConns int32, floorSamples int,
	progress func(string, ...any)) (_ *loadSetup, err error) {
	s := &loadSetup{}
	if s.ns, s.name, s.version, err = ResolveTemplate(template); err != nil {
		return nil, err
	}
	if s.pool, s.reg, s.pg, err = prepare(ctx, url, maxConns); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.pool.Close()
		}
	}()
	if s.tpl, err = templatestore.Lookup(ctx, s.pool, s.ns, s.name, s.version); err != nil {
		return nil, fmt.Errorf("template %s: %w", template, err)
	}
	progress("floor (%d commits, %d notifications)", floorSamples, floorSamples)
	if s.floor, err = MeasureFloor(ctx, url, floorSamples); err != nil {
		return nil, err
	}
	return s, nil
}

// hotTables lists the tables the engine's hot path plans against
// (db.HotTables) and the template tables it joins, for ANALYZE.
func hotTables() string {
	names := append(db.HotTables(), "named_tasks", "named_steps", "task_namespaces")
	for i, n := range names {
		names[i] = "tasker." + n
	}
	return strings.Join(names, ", ")
}

// analyzeHotTables gives the planner statistics of the tables as they are
// now. A benchmark's database is minutes old: autovacuum (one visit per
// database per autovacuum_naptime, a minute by default) has not analyzed
// it yet, and plans made for never-analyzed tables seq-scan workflow_steps
// on every claim (3 to 4 times slower at 10,000 steps). A database in
// service has been analyzed; this measures that state.
func analyzeHotTables(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `ANALYZE `+hotTables()); err != nil {
		return fmt.Errorf("analyzing the hot tables: %w", err)
	}
	return nil
}

func startEngines(ctx context.Context, spec engineSpec, shared *pgxpool.Pool, pools []*pgxpool.Pool) (_ *engineSet, err error) {
	// Each engine's connections plan their statements afresh; they should
	// plan for the tables as they are.
	if err := analyzeHotTables(ctx, shared); err != nil {
		return nil, err
	}
	set := &engineSet{pools: pools}
	defer func() {
		if err != nil {
			err = errors.Join(err, set.stop())
		}
	}()
	orchTel := spec.tel
	if spec.orchTel != nil {
		orchTel = *spec.orchTel
	}
	workerCfg := func(p *pgxpool.Pool) (*worker.Config, error) {
		// Child tasks a handler creates go through an initializer of its own,
		// as in a worker process.
		sub, err := orchestration.New(p, orchestration.Config{Telemetry: spec.tel})
		if err != nil {
			return nil, err
		}
		return &worker.Config{Namespaces: []string{spec.namespace}, Dispatcher: worker.RegistryDispatcher{Registry: spec.reg},
			Concurrency: spec.workerConcurrency, Submitter: sub}, nil
	}
	orchCfg := &orchestration.Config{ResultWorkers: spec.resultWorkers}
	if spec.topo.combined() {
		wc, err := workerCfg(shared)
		if err != nil {
			return set, err
		}
		e, err := engine.Start(ctx, engine.Config{Pool: shared, Orchestration: orchCfg, Worker: wc, Telemetry: orchTel})
		if err != nil {
			return set, err
		}
		set.engines, set.server = append(set.engines, e), e.Orchestrator
		return set, nil
	}
	for i, p := range pools {
		cfg := engine.Config{Pool: p, Telemetry: spec.tel}
		if i < spec.topo.Orchestrators {
			cfg.Orchestration, cfg.Telemetry = &orchestration.Config{ResultWorkers: spec.resultWorkers}, orchTel
		} else if cfg.Worker, err = workerCfg(p); err != nil {
			return set, err
		}
		e, err := engine.Start(ctx, cfg)
		if err != nil {
			return set, fmt.Errorf("starting engine %d: %w", i+1, err)
		}
		set.engines = append(set.engines, e)
		if set.server == nil {
			set.server = e.Orchestrator
		}
	}
	return set, nil
}

func (s *engineSet) stop() error {
	var err error
	for _, e := range s.engines {
		err = errors.Join(err, e.Stop())
	}
	s.engines = nil
	for _, p := range s.pools {
		p.Close()
	}
	s.pools = nil
	return err
}

// taskRequests builds n requests of a template with varying context.
func taskRequests(ns, name, version string, n, offset int) ([]client.TaskRequest, error) {
	reqs := make([]client.TaskRequest, n)
	for i := range reqs {
		req, err := client.NewTaskRequest(ns, name, version, map[string]int{"even_number": 2 + 2*((offset+i)%10)})
		if err != nil {
			return nil, err
		}
		reqs[i] = req
	}
	return reqs, nil
}

// createInBatches creates reqs with batched creates of at most size tasks.
func createInBatches(ctx context.Context, svc *orchestration.Service, reqs []client.TaskRequest, size int) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, len(reqs))
	for len(reqs) > 0 {
		n := min(size, len(reqs))
		created, err := svc.CreateTasks(ctx, reqs[:n])
		if err != nil {
			return ids, fmt.Errorf("creating %d tasks: %w", n, err)
		}
		for _, c := range created {
			ids = append(ids, c.TaskUUID)
		}
		reqs = reqs[n:]
	}
	return ids, nil
}

// terminalSQL counts the given tasks still open and those that ended other
// than complete.
const terminalSQL = `SELECT count(*) FILTER (WHERE state NOT IN ('complete','error','cancelled','resolved_manually')),
	count(*) FILTER (WHERE state <> 'complete') FROM tasker.tasks WHERE task_uuid = ANY($1)`

// waitTerminal waits until every task of ids is terminal and returns how many
// did not complete. It checks every 100 ms: coarse on purpose, since the
// check itself costs database time the engine is being measured on.
func waitTerminal(ctx context.Context, q db.Querier, ids []uuid.UUID, timeout time.Duration) (bad int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var open int
		if err := q.QueryRow(ctx, terminalSQL, ids).Scan(&open, &bad); err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("tasks did not finish within %s", timeout)
			}
			return 0, fmt.Errorf("waiting for tasks: %w", err)
		}
		if open == 0 {
			return bad, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("tasks did not finish within %s: %d open", timeout, open)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recordDBLatency adds the database-recorded create → complete time of the
// completed tasks among ids (or, with ids nil, of the tasks completed between
// from and to) to h.
func recordDBLatency(ctx context.Context, q db.Querier, h *hist, ids []uuid.UUID, from, to time.Time) error {
	sql := `SELECT (extract(epoch FROM completed_at - created_at) * 1000000)::bigint FROM tasker.tasks
		WHERE task_uuid = ANY($1) AND state = 'complete'`
	args := []any{ids}
	if ids == nil {
		sql = `SELECT (extract(epoch FROM completed_at - created_at) * 1000000)::bigint FROM tasker.tasks
			WHERE state = 'complete' AND completed_at >= $1 AND completed_at < $2`
		args = []any{from, to}
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("reading task durations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var us int64
		if err := rows.Scan(&us); err != nil {
			return fmt.Errorf("reading task durations: %w", err)
		}
		h.record(time.Duration(us) * time.Microsecond)
	}
	return rows.Err()
}
