package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/template"
)

// GenerateConfig configures Generate. Zero values mean the documented default.
type GenerateConfig struct {
	// DatabaseURL names the server (required). Generate migrates it.
	DatabaseURL string
	// Tasks is how many tasks to add. Default 1000.
	Tasks int
	// Start is the index of the first task to add: a dataset of N tasks grown
	// to M by Start=N, Tasks=M-N is the same as one generated with Tasks=M.
	Start int
	// Grow makes Tasks the size to grow the generated dataset already in the
	// database to (Start is then the number of generated tasks found), so
	// running Generate again adds to it instead of colliding with it.
	Grow bool
	// Shapes of the generated templates. Default all (AllShapes).
	Shapes []string
	// AvgSteps is the mean step count of a template; StepVariance the most a
	// template's count differs from it (uniformly). Defaults 6 and 2.
	AvgSteps     int
	StepVariance int
	// StepVarianceSet marks StepVariance as given (0 is a valid variance).
	StepVarianceSet bool
	// Namespaces is how many namespaces the templates are spread over. Default 4.
	Namespaces int
	// StateMix weighs the task states. Default DefaultStateMix.
	StateMix []StateWeight
	// Seed makes the dataset reproducible: the same seed and sizes give the
	// same tasks, steps, states and history (timestamps are relative to the
	// time of generation). Default 1.
	Seed int64
	// Lease is what remains of the lease of in-progress steps; a negative
	// value makes them already expired, as if their worker had died (so a
	// running engine reclaims them). Default 10m.
	Lease time.Duration
	// RetryDue is the fraction of waiting_for_retry tasks whose backoff has
	// already elapsed (the readiness poller's work). Default 0.02.
	RetryDue float64
	// RetryDueSet marks RetryDue as given (0 is valid).
	RetryDueSet bool
	// ChunkTasks is how many tasks one COPY transaction loads. Default 5000.
	ChunkTasks int
	Logger     *slog.Logger
	// Progress is told how far the load got (may be nil).
	Progress func(ProgressReport)
}

// ProgressReport says how far a long phase got.
type ProgressReport struct {
	Phase string
	Done  int
	Total int
}

func (c GenerateConfig) withDefaults() GenerateConfig {
	if c.Tasks == 0 {
		c.Tasks = 1000
	}
	if len(c.Shapes) == 0 {
		c.Shapes = AllShapes
	}
	if c.AvgSteps == 0 {
		c.AvgSteps = 6
	}
	if !c.StepVarianceSet && c.StepVariance == 0 {
		c.StepVariance = 2
	}
	if c.Namespaces == 0 {
		c.Namespaces = 4
	}
	if len(c.StateMix) == 0 {
		c.StateMix = DefaultStateMix
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Minute
	}
	if !c.RetryDueSet && c.RetryDue == 0 {
		c.RetryDue = 0.02
	}
	if c.ChunkTasks == 0 {
		c.ChunkTasks = 5000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(ProgressReport) {}
	}
	return c
}

func (c GenerateConfig) validate() error {
	if c.DatabaseURL == "" {
		return errors.New("generate: a database URL is required")
	}
	return c.validateData()
}

// validateData checks everything but the database URL.
func (c GenerateConfig) validateData() error {
	switch {
	case c.Tasks < 1:
		return fmt.Errorf("generate: tasks must be ≥ 1, got %d", c.Tasks)
	case c.Start < 0:
		return fmt.Errorf("generate: start must be ≥ 0, got %d", c.Start)
	case c.AvgSteps < 1 || c.AvgSteps > 99:
		return fmt.Errorf("generate: avg steps must be 1..99, got %d", c.AvgSteps)
	case c.StepVariance < 0 || c.AvgSteps-c.StepVariance < 1:
		return fmt.Errorf("generate: step variance must be 0..%d (avg steps - 1), got %d", c.AvgSteps-1, c.StepVariance)
	case c.Namespaces < 1 || c.Namespaces > 100:
		return fmt.Errorf("generate: namespaces must be 1..100, got %d", c.Namespaces)
	case c.RetryDue < 0 || c.RetryDue > 1:
		return fmt.Errorf("generate: retry due fraction must be in [0, 1], got %g", c.RetryDue)
	case c.ChunkTasks < 1:
		return fmt.Errorf("generate: chunk must be ≥ 1, got %d", c.ChunkTasks)
	}
	for _, s := range c.Shapes {
		if !slices.Contains(AllShapes, s) {
			return fmt.Errorf("generate: unknown shape %q (want %v)", s, AllShapes)
		}
	}
	for _, w := range c.StateMix {
		if !slices.Contains(GenStates, w.State) || w.Weight < 0 {
			return fmt.Errorf("generate: bad state mix entry %s=%g", w.State, w.Weight)
		}
	}
	if totalWeight(c.StateMix) <= 0 {
		return errors.New("generate: the state mix has no positive weight")
	}
	return nil
}

// stepCount returns the step count of a template drawn by r for shape.
func (c GenerateConfig) stepCount(shape string, r *rand.Rand) int {
	n := c.AvgSteps
	if c.StepVariance > 0 {
		n += r.IntN(2*c.StepVariance+1) - c.StepVariance
	}
	return max(n, minSteps[shape])
}

// sizes lists every step count a template of shape may have.
func (c GenerateConfig) sizes(shape string) []int {
	var out []int
	for n := c.AvgSteps - c.StepVariance; n <= c.AvgSteps+c.StepVariance; n++ {
		m := max(n, minSteps[shape])
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// genTemplate is a registered generated template.
type genTemplate struct {
	namespace  string
	shape      string
	namedTask  uuid.UUID
	stepNames  []string
	namedSteps []uuid.UUID
	parents    [][]int
	queue      string
}

// GenerateResult describes the dataset after a Generate.
type GenerateResult struct {
	Benchmark string `json:"benchmark"`
	// Added is how many tasks this run added (from index Start).
	Added int   `json:"added"`
	Start int   `json:"start"`
	Seed  int64 `json:"seed"`
	// StateMix and Shapes are the configuration used.
	StateMix     string   `json:"state_mix"`
	Shapes       []string `json:"shapes"`
	AvgSteps     int      `json:"avg_steps"`
	StepVariance int      `json:"step_variance"`
	Namespaces   int      `json:"namespaces"`
	Templates    int      `json:"templates"`
	// LoadS is the time the COPYs took; TasksPerSec the rate.
	LoadS       float64 `json:"load_s"`
	TasksPerSec float64 `json:"tasks_per_s"`
	// AnalyzeS is the time of the VACUUM ANALYZE after loading.
	AnalyzeS  float64      `json:"analyze_s"`
	Stats     DatasetStats `json:"stats"`
	Postgres  Postgres     `json:"postgres"`
	Machine   Machine      `json:"machine"`
	Commit    string       `json:"commit"`
	StartedAt time.Time    `json:"started_at"`
}

// DatasetStats are counts and sizes of everything in the database (the
// generated tasks and any others).
type DatasetStats struct {
	Tasks        int64            `json:"tasks"`
	Steps        int64            `json:"steps"`
	TasksByState map[string]int64 `json:"tasks_by_state"`
	TasksByShape map[string]int64 `json:"tasks_by_shape"`
	StepsByState map[string]int64 `json:"steps_by_state"`
	Tables       []TableSize      `json:"tables"`
}

// TableSize is one table's rows and on-disk size.
type TableSize struct {
	Table      string `json:"table"`
	Rows       int64  `json:"rows"`
	TableBytes int64  `json:"table_bytes"`
	IndexBytes int64  `json:"index_bytes"`
}

// Generate loads a synthetic workload into the database: tasks of generated
// templates (linear, diamond, tree and mixed DAGs of configurable size) in
// a mix of states, each with the steps, edges, task and step history and
// queue messages that state implies, as the engine would have left them. It
// loads with COPY, one transaction per chunk, then VACUUM ANALYZEs.
func Generate(ctx context.Context, cfg GenerateConfig) (*GenerateResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	pool, _, pg, err := prepare(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if cfg.Grow {
		have, err := countGenerated(ctx, pool)
		if err != nil {
			return nil, err
		}
		cfg.Start, cfg.Tasks = have, cfg.Tasks-have
	}
	res := &GenerateResult{Benchmark: "generate", Added: max(cfg.Tasks, 0), Start: cfg.Start, Seed: cfg.Seed,
		StateMix: FormatStateMix(cfg.StateMix), Shapes: cfg.Shapes, AvgSteps: cfg.AvgSteps,
		StepVariance: cfg.StepVariance, Namespaces: cfg.Namespaces,
		Postgres: pg, Machine: ThisMachine(), Commit: Commit(), StartedAt: started.UTC()}
	if cfg.Tasks > 0 {
		if err := generate(ctx, pool, cfg, res); err != nil {
			return nil, err
		}
	}
	res.Stats, err = ReadDatasetStats(ctx, pool)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// generate does Generate's work on an open pool.
func generate(ctx context.Context, pool *pgxpool.Pool, cfg GenerateConfig, res *GenerateResult) error {
	tpls, err := registerGenerated(ctx, pool, cfg)
	if err != nil {
		return err
	}
	res.Templates = len(tpls)
	processor := uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("tasker-bench-orchestrator-%d", cfg.Seed)))
	fastLoad, err := isSuperuser(ctx, pool)
	if err != nil {
		return err
	}
	now := time.Now()
	t0 := time.Now()
	// One goroutine builds the next chunk while this one loads the last:
	// building is Go CPU, loading mostly server CPU and I/O.
	type chunk struct {
		b          *rowBuilder
		start, end int
	}
	chunks := make(chan chunk, 1)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(chunks)
		for start := cfg.Start; start < cfg.Start+cfg.Tasks; start += cfg.ChunkTasks {
			end := min(start+cfg.ChunkTasks, cfg.Start+cfg.Tasks)
			b := &rowBuilder{cfg: cfg, now: now, processor: processor}
			for i := start; i < end; i++ {
				b.task(i, tpls)
			}
			select {
			case chunks <- chunk{b, start, end}:
			case <-gctx.Done():
				return
			}
		}
	})
	defer wg.Wait()
	for c := range chunks {
		if err := c.b.load(ctx, pool, fastLoad); err != nil {
			cancel()
			return fmt.Errorf("loading tasks %d..%d: %w", c.start, c.end-1, err)
		}
		cfg.Progress(ProgressReport{Phase: "load", Done: c.end - cfg.Start, Total: cfg.Tasks})
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	res.LoadS = round3(time.Since(t0).Seconds())
	res.TasksPerSec = round3(float64(cfg.Tasks) / time.Since(t0).Seconds())
	t1 := time.Now()
	cfg.Progress(ProgressReport{Phase: "analyze", Done: 0, Total: 1})
	// Fresh statistics, as autovacuum would have gathered over the time the
	// data took to accumulate; plans (and so the benchmarks) depend on them.
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+hotTables()); err != nil {
		return fmt.Errorf("analyzing the dataset: %w", err)
	}
	cfg.Progress(ProgressReport{Phase: "analyze", Done: 1, Total: 1})
	res.AnalyzeS = round3(time.Since(t1).Seconds())
	return nil
}

// countGenerated counts the generated tasks in the database.
func countGenerated(ctx context.Context, q db.Querier) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks t
		JOIN tasker.named_tasks nt USING (named_task_uuid)
		JOIN tasker.task_namespaces ns USING (task_namespace_uuid)
		WHERE ns.name LIKE 'bench\_gen\_%'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting generated tasks: %w", err)
	}
	return n, nil
}

func isSuperuser(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var super bool
	if err := pool.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return false, fmt.Errorf("reading the role's privileges: %w", err)
	}
	return super, nil
}

// registerGenerated registers every template the configuration can draw
// and returns them keyed by namespace index, shape and step count.
func registerGenerated(ctx context.Context, pool *pgxpool.Pool, cfg GenerateConfig) (map[genKey]*genTemplate, error) {
	qc := queue.NewClient(nil)
	for _, q := range []string{queue.StepResults, queue.TaskRequests} {
		if err := qc.Create(ctx, pool, q); err != nil {
			return nil, fmt.Errorf("creating queue %s: %w", q, err)
		}
	}
	out := map[genKey]*genTemplate{}
	for k := range cfg.Namespaces {
		ns := GenNamespace(k)
		for _, shape := range cfg.Shapes {
			for _, n := range cfg.sizes(shape) {
				tpl := buildTemplate(ns, shape, n)
				if err := tpl.Validate(nil); err != nil {
					return nil, fmt.Errorf("generated template %s: %w", tpl.Key(), err)
				}
				if err := templatestore.Register(ctx, pool, qc, tpl); err != nil {
					return nil, err
				}
				reg, err := templatestore.Lookup(ctx, pool, ns, tpl.Name, tpl.Version)
				if err != nil {
					return nil, err
				}
				wq, _ := queue.WorkerQueue(ns)
				g := &genTemplate{namespace: ns, shape: shape, namedTask: reg.NamedTaskUUID,
					parents: shapeParents(shape, n), queue: wq}
				for _, s := range tpl.Steps {
					g.stepNames = append(g.stepNames, s.Name)
					g.namedSteps = append(g.namedSteps, reg.NamedSteps[s.Name])
				}
				out[genKey{k, shape, n}] = g
			}
		}
	}
	return out, nil
}

type genKey struct {
	ns    int
	shape string
	steps int
}

// rowBuilder accumulates the rows of one chunk, table by table.
type rowBuilder struct {
	cfg       GenerateConfig
	now       time.Time
	processor uuid.UUID

	tasks, steps, edges, taskTrans, stepTrans, messages [][]any
}

var (
	taskCols = []string{"task_uuid", "named_task_uuid", "state", "complete", "context", "initiator", "source_system",
		"reason", "tags", "priority", "requested_at", "state_changed_at", "completed_at", "created_at", "updated_at",
		"correlation_id", "trace_context"}
	stepCols = []string{"workflow_step_uuid", "task_uuid", "named_step_uuid", "name", "handler", "state", "retryable",
		"max_attempts", "attempts", "backoff_base_ms", "backoff_cap_ms", "timeout_ms", "in_process", "processed",
		"processed_at", "last_attempted_at", "last_failure_at", "backoff_request_ms", "next_retry_at", "lease_expires_at",
		"worker_id", "results", "created_at", "updated_at"}
	edgeCols      = []string{"workflow_step_edge_uuid", "from_step_uuid", "to_step_uuid", "name", "created_at"}
	taskTransCols = []string{"task_uuid", "from_state", "to_state", "reason", "processor_uuid", "metadata", "created_at", "correlation_id"}
	stepTransCols = []string{"workflow_step_uuid", "task_uuid", "from_state", "to_state", "reason", "attempt", "worker_id",
		"metadata", "created_at", "correlation_id"}
	messageCols = []string{"queue_name", "read_ct", "enqueued_at", "vt", "message", "headers"}
)

// load copies the chunk in one transaction. skipFKChecks turns off the
// foreign key triggers for it (superusers only): the generator writes
// consistent rows by construction, and the checks would double the load time.
func (b *rowBuilder) load(ctx context.Context, pool *pgxpool.Pool, skipFKChecks bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if skipFKChecks {
			if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				return fmt.Errorf("turning off foreign key triggers: %w", err)
			}
		}
		for _, t := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"tasks", taskCols, b.tasks},
			{"workflow_steps", stepCols, b.steps},
			{"workflow_step_edges", edgeCols, b.edges},
			{"task_transitions", taskTransCols, b.taskTrans},
			{"workflow_step_transitions", stepTransCols, b.stepTrans},
			{"queue_messages", messageCols, b.messages},
		} {
			if len(t.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tasker", t.table}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
				return fmt.Errorf("copying into %s: %w", t.table, err)
			}
		}
		return nil
	})
}

// uuidEpoch is the time in the first generated task's IDs.
var uuidEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// randUUID draws a UUIDv7 for time at from r, so IDs are reproducible and
// ordered by time like the engine's.
func randUUID(r *rand.Rand, at time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(at.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	a, c := r.Uint64(), r.Uint64()
	for i := range 2 {
		u[6+i] = byte(a >> (8 * i))
	}
	for i := range 8 {
		u[8+i] = byte(c >> (8 * i))
	}
	u[6] = (u[6] & 0x0f) | 0x70
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

// genStep is a step being simulated.
type genStep struct {
	id       uuid.UUID
	state    state.Step
	attempts int
	clock    time.Time
	lastAtt  *time.Time
	lastFail *time.Time
	procAt   *time.Time
	nextRet  *time.Time
	backoff  *int32
	lease    *time.Time
	worker   *string
	results  []byte
}

// taskSim carries one task's simulation: its clock advances a little with
// every event, so history rows are ordered as the engine would write them.
type taskSim struct {
	b     *rowBuilder
	r     *rand.Rand
	id    uuid.UUID
	corr  uuid.UUID
	tpl   *genTemplate
	clock time.Time
	state state.Task
	steps []genStep
}

func (s *taskSim) tick() time.Time {
	s.clock = s.clock.Add(time.Duration(200+s.r.IntN(2800)) * time.Microsecond)
	return s.clock
}

func (s *taskSim) moveTask(reason string, to state.Task) {
	for _, st := range state.TaskPath(s.state, to) {
		why := reason
		switch {
		case st == state.TaskInitializing:
			why = "initialize"
		case st == state.TaskEvaluatingResults && s.state == state.TaskStepsInProcess:
			why = "step_result_received"
		case st == state.TaskStepsInProcess && s.state == state.TaskEnqueuingSteps:
			why = "steps_enqueued"
		}
		meta, _ := json.Marshal(map[string]string{"reason": why})
		s.b.taskTrans = append(s.b.taskTrans, []any{s.id, string(s.state), string(st), why, s.b.processor, meta, s.tick(), s.corr})
		s.state = st
	}
}

func (s *taskSim) moveStep(i int, to state.Step, reason, worker string, meta []byte) {
	st := &s.steps[i]
	var w any
	if worker != "" {
		w = worker
	}
	if meta == nil {
		meta = []byte(`{}`)
	}
	at := s.tick()
	s.b.stepTrans = append(s.b.stepTrans, []any{st.id, s.id, string(st.state), string(to), reason, int32(st.attempts), w, meta, at, s.corr})
	st.state, st.clock = to, at
}

func (s *taskSim) workerID() string { return fmt.Sprintf("bench-gen-worker-%d", s.r.IntN(8)) }

func (s *taskSim) stepMessage(i int, attempt int) []byte {
	m, _ := json.Marshal(messages.StepMessage{TaskUUID: s.id, StepUUID: s.steps[i].id, CorrelationID: s.corr,
		Namespace: s.tpl.namespace, StepName: s.tpl.stepNames[i], Attempt: attempt})
	return m
}

// enqueue moves step i to enqueued (from pending, or via pending from
// waiting_for_retry as enqueue_steps does).
func (s *taskSim) enqueue(i int) {
	if s.steps[i].state == state.StepWaitingForRetry {
		s.moveStep(i, state.StepPending, "retry_ready", "", nil)
	}
	s.moveStep(i, state.StepEnqueued, "enqueue", "", nil)
}

// claim is a worker taking step i (attempts + 1).
func (s *taskSim) claim(i int) {
	w := s.workerID()
	st := &s.steps[i]
	st.attempts++
	s.moveStep(i, state.StepInProgress, "claimed", w, nil)
	at := st.clock
	st.lastAtt, st.worker = &at, &w
}

// submit is the worker's result submission for the claimed step i.
func (s *taskSim) submit(i int, success bool) {
	st := &s.steps[i]
	execMs := float64(100+s.r.IntN(1900)) / 1000
	done := s.tick()
	res := messages.StepExecutionResult{StepUUID: st.id, Success: success, Status: "completed",
		Result: map[string]any{"step": s.tpl.stepNames[i], "value": s.r.IntN(1000)},
		Metadata: messages.ResultMetadata{ExecutionTimeMs: execMs, Attempt: st.attempts, WorkerID: *st.worker,
			StartedAt: st.lastAtt.UTC(), CompletedAt: done.UTC(), CorrelationID: s.corr}}
	to, reason := state.StepEnqueuedForOrchestration, "handler_succeeded"
	if !success {
		res.Status, res.Result = "failed", map[string]any{}
		res.Error = &messages.ResultError{Message: "generated failure", ErrorType: "retryable_error", Retryable: true}
		res.Metadata.Retryable = true
		to, reason = state.StepEnqueuedAsErrorForOrchestration, "handler_failed"
	}
	st.results, _ = json.Marshal(res)
	meta, _ := json.Marshal(map[string]float64{"execution_time_ms": execMs})
	s.moveStep(i, to, reason, *st.worker, meta)
}

// attempt is a claim and a submission.
func (s *taskSim) attempt(i int, success bool) {
	s.claim(i)
	s.submit(i, success)
}

// finishStep applies an attempt's result as orchestration would.
func (s *taskSim) finishStep(i int, to state.Step, reason string) {
	meta, _ := json.Marshal(map[string]string{"reason": reason})
	s.moveStep(i, to, reason, "", meta)
	st := &s.steps[i]
	switch to {
	case state.StepComplete:
		at := st.clock
		st.procAt = &at
	case state.StepError, state.StepWaitingForRetry:
		at := st.clock
		st.lastFail = &at
	}
}

// task simulates task i and appends its rows.
func (b *rowBuilder) task(i int, tpls map[genKey]*genTemplate) {
	cfg := b.cfg
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i)))
	gs := pickState(cfg.StateMix, weyl(cfg.Seed, 1, weylState, i))
	shape := cfg.Shapes[int(weyl(cfg.Seed, 2, weylShape, i)*float64(len(cfg.Shapes)))%len(cfg.Shapes)]
	nsIdx := r.IntN(cfg.Namespaces)
	tpl := tpls[genKey{nsIdx, shape, cfg.stepCount(shape, r)}]
	n := len(tpl.stepNames)

	// Finished tasks are spread over the last day; live ones started in the
	// last ten minutes.
	var created time.Time
	if gs == GenComplete || gs == GenError {
		created = b.now.Add(-24*time.Hour + time.Duration(r.Int64N(int64(24*time.Hour-15*time.Minute))))
	} else {
		created = b.now.Add(-10*time.Minute + time.Duration(r.Int64N(int64(9*time.Minute))))
	}
	sim := &taskSim{b: b, r: r, tpl: tpl, clock: created, state: state.TaskPending}
	// IDs carry a time that depends on the index alone (not on when the
	// data was generated), so a seed always gives the same IDs, ordered by
	// index as the engine's UUIDv7s are by creation.
	idTime := uuidEpoch.Add(time.Duration(i) * time.Millisecond)
	sim.id = randUUID(r, idTime)
	sim.corr = randUUID(r, idTime)
	sim.steps = make([]genStep, n)
	for j := range sim.steps {
		sim.steps[j] = genStep{id: randUUID(r, idTime), state: state.StepPending, clock: created}
	}
	priority := 0
	if r.IntN(10) == 0 {
		priority = r.IntN(21) - 10
	}

	// History: creation of the task and its steps.
	createdMeta := []byte(`{}`)
	b.taskTrans = append(b.taskTrans, []any{sim.id, nil, "pending", "created", b.processor, createdMeta, created, sim.corr})
	for j := range sim.steps {
		b.stepTrans = append(b.stepTrans, []any{sim.steps[j].id, sim.id, nil, "pending", "created", int32(0), nil, createdMeta, created, sim.corr})
	}

	// A random linear extension of the DAG; a prefix of it is complete and
	// the steps whose parents are all complete form the frontier.
	order := linearExtension(tpl.parents, r)
	var done int
	switch gs {
	case GenComplete:
		done = n
	case GenPending:
		done = -1
	default:
		done = r.IntN(n)
	}
	if done >= 0 {
		sim.runPrefix(order[:done])
	}
	isDone := make([]bool, n)
	for _, j := range order[:max(done, 0)] {
		isDone[j] = true
	}
	var frontier []int
	if done >= 0 && done < n {
		for _, j := range order {
			if isDone[j] {
				continue
			}
			ready := true
			for _, p := range tpl.parents[j] {
				ready = ready && isDone[p]
			}
			if ready {
				frontier = append(frontier, j)
			}
		}
	}

	switch gs {
	case GenComplete:
		sim.moveTask("all_steps_complete", state.TaskComplete)
	case GenInProgress:
		sim.inProgress(frontier)
	case GenWaitingForRetry:
		sim.waitingForRetry(frontier, r.Float64() < cfg.RetryDue)
	case GenError:
		sim.failed(frontier)
	}

	// Rows.
	var completedAt any
	if sim.state.Terminal() {
		completedAt = sim.clock
	}
	ctxJSON, _ := json.Marshal(map[string]any{"generated": true, "index": i})
	b.tasks = append(b.tasks, []any{sim.id, tpl.namedTask, string(sim.state), sim.state == state.TaskComplete, ctxJSON,
		"tasker-bench", "bench", "generated", []byte(`[]`), int32(priority), created, sim.clock, completedAt, created, sim.clock,
		sim.corr, []byte(`{}`)})
	for j, st := range sim.steps {
		processed := st.state == state.StepComplete
		var results any
		if st.results != nil {
			results = st.results
		}
		b.steps = append(b.steps, []any{st.id, sim.id, tpl.namedSteps[j], tpl.stepNames[j], GenHandler, string(st.state), true,
			int32(genMaxAttempts), int32(st.attempts), int32(genBackoffBase / time.Millisecond), int32(genBackoffCap / time.Millisecond), int32(template.DefaultTimeout / time.Millisecond),
			st.state == state.StepInProgress, processed, st.procAt, st.lastAtt, st.lastFail, st.backoff, st.nextRet, st.lease,
			st.worker, results, created, st.clock})
		for _, p := range tpl.parents[j] {
			b.edges = append(b.edges, []any{randUUID(r, idTime), sim.steps[p].id, st.id, "provides", created})
		}
	}
}

// runPrefix runs the given steps to completion in order, as a sequence of
// result processing rounds (each enqueues the next step).
func (s *taskSim) runPrefix(steps []int) {
	for _, j := range steps {
		s.moveTask("ready_steps_found", state.TaskStepsInProcess)
		s.enqueue(j)
		s.attempt(j, true)
		s.finishStep(j, state.StepComplete, "result_success")
		s.moveTask("step_result_received", state.TaskEvaluatingResults)
	}
}

// inProgress puts the frontier in flight: enqueued (message visible),
// claimed by a worker (message hidden for its lease), or with its result
// waiting for orchestration (in the results queue).
func (s *taskSim) inProgress(frontier []int) {
	s.moveTask("ready_steps_found", state.TaskStepsInProcess)
	for _, j := range frontier {
		s.enqueue(j)
		st := &s.steps[j]
		enqAt := st.clock
		switch k := s.r.IntN(20); {
		case k < 8: // enqueued
			s.b.messages = append(s.b.messages, []any{s.tpl.queue, int32(0), enqAt, enqAt, s.stepMessage(j, 1), []byte(`{}`)})
		case k < 17: // in progress
			s.claim(j)
			lease := s.b.now.Add(s.b.cfg.Lease)
			st.lease = &lease
			s.b.messages = append(s.b.messages, []any{s.tpl.queue, int32(1), enqAt, lease, s.stepMessage(j, 1), []byte(`{}`)})
		default: // result submitted, waiting for orchestration
			s.attempt(j, true)
			m, _ := json.Marshal(messages.StepResultMessage{TaskUUID: s.id, StepUUID: st.id, CorrelationID: s.corr,
				StepName: s.tpl.stepNames[j], Attempt: st.attempts, Success: true, WorkerID: *st.worker})
			s.b.messages = append(s.b.messages, []any{queue.StepResults, int32(0), st.clock, st.clock, m, []byte(`{}`)})
		}
	}
}

// waitingForRetry fails every frontier step retryably; due decides whether
// the backoff has already elapsed.
func (s *taskSim) waitingForRetry(frontier []int, due bool) {
	s.moveTask("ready_steps_found", state.TaskStepsInProcess)
	for _, j := range frontier {
		failures := 1 + s.r.IntN(genMaxAttempts-1)
		for range failures {
			s.enqueue(j)
			s.attempt(j, false)
			s.finishStep(j, state.StepWaitingForRetry, "retryable_failure")
		}
		st := &s.steps[j]
		var next time.Time
		if due {
			next = s.b.now.Add(-time.Duration(s.r.IntN(1000)) * time.Millisecond)
		} else {
			next = s.b.now.Add(10*time.Minute + time.Duration(s.r.Int64N(int64(50*time.Minute))))
		}
		backoff := int32(next.Sub(*st.lastFail) / time.Millisecond)
		st.nextRet, st.backoff = &next, &backoff
	}
	s.moveTask("awaiting_retry_backoff", state.TaskWaitingForRetry)
}

// failed exhausts the retries of the first frontier step (and of some of
// its siblings); the others were never enqueued once the task was blocked.
func (s *taskSim) failed(frontier []int) {
	s.moveTask("ready_steps_found", state.TaskStepsInProcess)
	for k, j := range frontier {
		if k > 0 && s.r.IntN(3) != 0 {
			continue
		}
		for a := 1; a <= genMaxAttempts; a++ {
			s.enqueue(j)
			s.attempt(j, false)
			if a < genMaxAttempts {
				s.finishStep(j, state.StepWaitingForRetry, "retryable_failure")
			} else {
				s.finishStep(j, state.StepError, "retries_exhausted")
			}
		}
	}
	s.moveTask("step_failed_permanently", state.TaskError)
}

// linearExtension returns the step indexes in a random order that respects
// the dependencies.
func linearExtension(parents [][]int, r *rand.Rand) []int {
	n := len(parents)
	indeg := make([]int, n)
	children := make([][]int, n)
	for i, ps := range parents {
		indeg[i] = len(ps)
		for _, p := range ps {
			children[p] = append(children[p], i)
		}
	}
	var ready, out []int
	for i := range n {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		k := r.IntN(len(ready))
		i := ready[k]
		ready = slices.Delete(ready, k, k+1)
		out = append(out, i)
		for _, c := range children[i] {
			indeg[c]--
			if indeg[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	return out
}

// ReadDatasetStats counts tasks and steps by state and shape and reads the
// tables' sizes.
func ReadDatasetStats(ctx context.Context, q db.Querier) (DatasetStats, error) {
	st := DatasetStats{TasksByState: map[string]int64{}, TasksByShape: map[string]int64{}, StepsByState: map[string]int64{}}
	collect := func(sql string, into func(k string, n int64)) error {
		rows, err := q.Query(ctx, sql)
		if err != nil {
			return fmt.Errorf("reading dataset statistics: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return fmt.Errorf("reading dataset statistics: %w", err)
			}
			into(k, n)
		}
		return rows.Err()
	}
	if err := collect(`SELECT state, count(*) FROM tasker.tasks GROUP BY state`, func(k string, n int64) {
		st.TasksByState[k] = n
		st.Tasks += n
	}); err != nil {
		return st, err
	}
	if err := collect(`SELECT nt.name, count(*) FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid) GROUP BY nt.name`,
		func(k string, n int64) {
			shape := ShapeOfTemplate(k)
			if shape == "" {
				shape = "other"
			}
			st.TasksByShape[shape] += n
		}); err != nil {
		return st, err
	}
	if err := collect(`SELECT state, count(*) FROM tasker.workflow_steps GROUP BY state`, func(k string, n int64) {
		st.StepsByState[k] = n
		st.Steps += n
	}); err != nil {
		return st, err
	}
	rows, err := q.Query(ctx, `SELECT c.relname, 0::bigint,
			pg_table_size(c.oid), pg_indexes_size(c.oid)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'tasker' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC`)
	if err != nil {
		return st, fmt.Errorf("reading table sizes: %w", err)
	}
	st.Tables, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableSize, error) {
		var t TableSize
		err := r.Scan(&t.Table, &t.Rows, &t.TableBytes, &t.IndexBytes)
		return t, err
	})
	if err != nil {
		return st, fmt.Errorf("reading table sizes: %w", err)
	}
	for i := range st.Tables {
		// Exact counts: the tables are at most a few million rows here.
		if err := q.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"tasker", st.Tables[i].Table}.Sanitize()).
			Scan(&st.Tables[i].Rows); err != nil {
			return st, fmt.Errorf("counting %s: %w", st.Tables[i].Table, err)
		}
	}
	return st, nil
}
