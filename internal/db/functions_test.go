package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// ---------------------------------------------------------------------------
// Fixture: hand-built DAGs inserted directly with SQL, every state explicit.
// ---------------------------------------------------------------------------

// env is one fresh database with a namespace and a named task to hang tasks on.
type env struct {
	pool      *pgxpool.Pool
	funcs     *db.Funcs
	ns        string
	taskName  string
	version   string
	namedTask uuid.UUID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{pool: dbtest.NewPool(t), funcs: db.NewFuncs(nil), ns: "billing", taskName: "charge", version: "1.2.0"}
	ctx := context.Background()
	nsUUID := uuid.Must(uuid.NewV7())
	_, err := e.pool.Exec(ctx, `INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES ($1, $2)`, nsUUID, e.ns)
	require.NoError(t, err)
	e.namedTask = uuid.Must(uuid.NewV7())
	_, err = e.pool.Exec(ctx, `INSERT INTO tasker.named_tasks (named_task_uuid, task_namespace_uuid, name, version, configuration)
		VALUES ($1, $2, $3, $4, '{}')`, e.namedTask, nsUUID, e.taskName, e.version)
	require.NoError(t, err)
	return e
}

// workerQueue creates and returns the namespace's worker queue.
func (e *env) workerQueue(t *testing.T) string {
	t.Helper()
	q := "worker_" + e.ns + "_queue"
	e.createQueue(t, q)
	return q
}

func (e *env) createQueue(t *testing.T, q string) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), "SELECT tasker.queue_create($1)", q)
	require.NoError(t, err)
}

type taskSpec struct {
	State    string // default steps_in_process
	Priority int
	Context  string // JSON object; default {}
}

// stepSpec describes one workflow_steps row. Zero values mean: state pending,
// max_attempts 3, retryable, no retry time, no lease, no results. in_process
// and processed follow the state (as the SQL functions set them) and can be
// forced on.
type stepSpec struct {
	Name         string
	State        string
	Parents      []string
	Attempts     int
	MaxAttempts  int
	NotRetryable bool
	InProcess    bool
	Processed    bool
	RetryIn      *time.Duration // next_retry_at = clock + RetryIn (negative: in the past)
	LeaseIn      *time.Duration // lease_expires_at = clock + LeaseIn
	Results      string
	Inputs       string
}

func in(d time.Duration) *time.Duration { return &d }

type dag struct {
	Task  uuid.UUID
	Corr  uuid.UUID
	Steps map[string]uuid.UUID
}

func (d *dag) id(t *testing.T, name string) uuid.UUID {
	t.Helper()
	id, ok := d.Steps[name]
	require.True(t, ok, "fixture has no step %q", name)
	return id
}

func secs(d *time.Duration) any {
	if d == nil {
		return nil
	}
	return d.Seconds()
}

func jsonOrNil(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// build inserts a task, its steps and edges; steps must be listed parents first.
func (e *env) build(t *testing.T, ts taskSpec, steps ...stepSpec) *dag {
	t.Helper()
	ctx := context.Background()
	if ts.State == "" {
		ts.State = "steps_in_process"
	}
	if ts.Context == "" {
		ts.Context = "{}"
	}
	d := &dag{Task: uuid.Must(uuid.NewV7()), Corr: uuid.Must(uuid.NewV7()), Steps: map[string]uuid.UUID{}}
	_, err := e.pool.Exec(ctx, `INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, complete, completed_at, context, priority, correlation_id)
		VALUES ($1, $2, $3::text, $3::text = 'complete',
		        CASE WHEN $3::text IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN clock_timestamp() END,
		        $4, $5, $6)`,
		d.Task, e.namedTask, ts.State, []byte(ts.Context), ts.Priority, d.Corr)
	require.NoError(t, err)
	for _, s := range steps {
		if s.State == "" {
			s.State = "pending"
		}
		if s.MaxAttempts == 0 {
			s.MaxAttempts = 3
		}
		processed := s.Processed || s.State == "complete" || s.State == "cancelled" || s.State == "resolved_manually"
		inProcess := s.InProcess || s.State == "in_progress"
		var named uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO tasker.named_steps (named_step_uuid, name) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING named_step_uuid`,
			uuid.Must(uuid.NewV7()), s.Name).Scan(&named))
		id := uuid.Must(uuid.NewV7())
		_, err := e.pool.Exec(ctx, `INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, name, handler,
				state, retryable, max_attempts, attempts, in_process, processed, processed_at,
				next_retry_at, lease_expires_at, results, inputs)
			VALUES ($1, $2, $3, $4::text, $4::text || '_handler', $5, $6, $7, $8, $9, $10::bool, CASE WHEN $10::bool THEN clock_timestamp() END,
				clock_timestamp() + make_interval(secs => $11::float8),
				clock_timestamp() + make_interval(secs => $12::float8), $13, $14)`,
			id, d.Task, named, s.Name, s.State, !s.NotRetryable, s.MaxAttempts, s.Attempts, inProcess, processed,
			secs(s.RetryIn), secs(s.LeaseIn), jsonOrNil(s.Results), jsonOrNil(s.Inputs))
		require.NoError(t, err, "inserting step %s", s.Name)
		for _, p := range s.Parents {
			pid := d.id(t, p)
			_, err := e.pool.Exec(ctx, `INSERT INTO tasker.workflow_step_edges (workflow_step_edge_uuid, from_step_uuid, to_step_uuid)
				VALUES ($1, $2, $3)`, uuid.Must(uuid.NewV7()), pid, id)
			require.NoError(t, err)
		}
		d.Steps[s.Name] = id
	}
	return d
}

// ---------------------------------------------------------------------------
// Row readers.
// ---------------------------------------------------------------------------

type stepRow struct {
	State           string
	Attempts        int
	InProcess       bool
	Processed       bool
	ProcessedAt     *time.Time
	LastFailureAt   *time.Time
	LastAttemptedAt *time.Time
	NextRetryAt     *time.Time
	LeaseExpiresAt  *time.Time
	BackoffMs       *int32
	WorkerID        *string
	Results         []byte
}

func getStep(t *testing.T, q db.Querier, id uuid.UUID) stepRow {
	t.Helper()
	var s stepRow
	require.NoError(t, q.QueryRow(context.Background(), `SELECT state, attempts, in_process, processed, processed_at,
		last_failure_at, last_attempted_at, next_retry_at, lease_expires_at, backoff_request_ms, worker_id, results
		FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`, id).Scan(
		&s.State, &s.Attempts, &s.InProcess, &s.Processed, &s.ProcessedAt, &s.LastFailureAt, &s.LastAttemptedAt,
		&s.NextRetryAt, &s.LeaseExpiresAt, &s.BackoffMs, &s.WorkerID, &s.Results))
	return s
}

type taskRow struct {
	State          string
	Complete       bool
	CompletedAt    *time.Time
	StateChangedAt time.Time
}

func getTask(t *testing.T, q db.Querier, id uuid.UUID) taskRow {
	t.Helper()
	var r taskRow
	require.NoError(t, q.QueryRow(context.Background(),
		`SELECT state, complete, completed_at, state_changed_at FROM tasker.tasks WHERE task_uuid = $1`, id).
		Scan(&r.State, &r.Complete, &r.CompletedAt, &r.StateChangedAt))
	return r
}

type stepTransition struct {
	From     *string
	To       string
	Reason   *string
	Attempt  *int32
	WorkerID *string
	Corr     *uuid.UUID
	Metadata []byte
}

func stepHistory(t *testing.T, q db.Querier, id uuid.UUID) []stepTransition {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT from_state, to_state, reason, attempt, worker_id, correlation_id, metadata
		FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = $1 ORDER BY workflow_step_transition_id`, id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stepTransition, error) {
		var s stepTransition
		err := r.Scan(&s.From, &s.To, &s.Reason, &s.Attempt, &s.WorkerID, &s.Corr, &s.Metadata)
		return s, err
	})
	require.NoError(t, err)
	return out
}

type taskTransition struct {
	From      *string
	To        string
	Reason    *string
	Processor *uuid.UUID
	Corr      *uuid.UUID
	Metadata  []byte
}

func taskHistory(t *testing.T, q db.Querier, id uuid.UUID) []taskTransition {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT from_state, to_state, reason, processor_uuid, correlation_id, metadata
		FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY task_transition_id`, id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (taskTransition, error) {
		var s taskTransition
		err := r.Scan(&s.From, &s.To, &s.Reason, &s.Processor, &s.Corr, &s.Metadata)
		return s, err
	})
	require.NoError(t, err)
	return out
}

func dbNow(t *testing.T, q db.Querier) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, q.QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&now))
	return now
}

func ptr[T any](v T) *T { return &v }

type queuedMsg struct {
	ReadCt  int
	VT      time.Time
	Body    []byte
	Headers []byte
}

// liveMessage returns the message if it is still in queue_messages.
func liveMessage(t *testing.T, q db.Querier, id int64) (queuedMsg, bool) {
	t.Helper()
	var m queuedMsg
	err := q.QueryRow(context.Background(), `SELECT read_ct, vt, message, headers FROM tasker.queue_messages WHERE msg_id = $1`, id).
		Scan(&m.ReadCt, &m.VT, &m.Body, &m.Headers)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false
	}
	require.NoError(t, err)
	return m, true
}

func archived(t *testing.T, q db.Querier, queue string, id int64) bool {
	t.Helper()
	var ok bool
	require.NoError(t, q.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM tasker.queue_archive WHERE msg_id = $1 AND queue_name = $2)`, id, queue).Scan(&ok))
	return ok
}

func queueMessages(t *testing.T, q db.Querier, queue string) []queuedMsg {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT read_ct, vt, message, headers FROM tasker.queue_messages
		WHERE queue_name = $1 ORDER BY msg_id`, queue)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (queuedMsg, error) {
		var m queuedMsg
		err := r.Scan(&m.ReadCt, &m.VT, &m.Body, &m.Headers)
		return m, err
	})
	require.NoError(t, err)
	return out
}

func sendRaw(t *testing.T, q db.Querier, queue string, body map[string]any) int64 {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	var id int64
	require.NoError(t, q.QueryRow(context.Background(), "SELECT tasker.queue_send($1, $2)", queue, raw).Scan(&id))
	return id
}

func readiness(t *testing.T, e *env, d *dag, filter []uuid.UUID) map[string]db.StepReadiness {
	t.Helper()
	rows, err := e.funcs.GetStepReadinessStatus(context.Background(), e.pool, d.Task, filter)
	require.NoError(t, err)
	out := map[string]db.StepReadiness{}
	for _, r := range rows {
		require.Equal(t, d.Task, r.TaskUUID)
		require.Equal(t, d.Steps[r.Name], r.StepUUID, "step %s", r.Name)
		out[r.Name] = r
	}
	return out
}

// ---------------------------------------------------------------------------
// get_step_readiness_status
// ---------------------------------------------------------------------------

func TestStepReadinessStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("diamond with one parent complete", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{},
			stepSpec{Name: "a", State: "complete"},
			stepSpec{Name: "b", State: "complete", Parents: []string{"a"}},
			stepSpec{Name: "c", State: "in_progress", Attempts: 1, Parents: []string{"a"}, LeaseIn: in(time.Minute)},
			stepSpec{Name: "d", Parents: []string{"b", "c"}},
		)
		r := readiness(t, e, d, nil)
		require.Len(t, r, 4)
		child := r["d"]
		require.Equal(t, "pending", child.CurrentState)
		require.False(t, child.DependenciesSatisfied)
		require.Equal(t, 2, child.TotalParents)
		require.Equal(t, 1, child.CompletedParents)
		require.True(t, child.RetryEligible)
		require.False(t, child.ReadyForExecution)
		var named uuid.UUID
		require.NoError(t, e.pool.QueryRow(context.Background(),
			"SELECT named_step_uuid FROM tasker.named_steps WHERE name = 'd'").Scan(&named))
		require.Equal(t, named, child.NamedStepUUID)
		// The root is complete: satisfied but not ready.
		require.True(t, r["a"].DependenciesSatisfied)
		require.Equal(t, 0, r["a"].TotalParents)
		require.False(t, r["a"].ReadyForExecution)
	})

	t.Run("diamond with all parents complete", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{},
			stepSpec{Name: "a", State: "complete"},
			stepSpec{Name: "b", State: "complete", Parents: []string{"a"}},
			stepSpec{Name: "c", State: "complete", Parents: []string{"a"}},
			stepSpec{Name: "d", Parents: []string{"b", "c"}},
		)
		child := readiness(t, e, d, nil)["d"]
		require.True(t, child.DependenciesSatisfied)
		require.Equal(t, 2, child.TotalParents)
		require.Equal(t, 2, child.CompletedParents)
		require.True(t, child.ReadyForExecution)
	})

	t.Run("pending root is ready", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "root"})
		r := readiness(t, e, d, nil)["root"]
		require.True(t, r.DependenciesSatisfied)
		require.Equal(t, 0, r.TotalParents)
		require.Equal(t, 0, r.CompletedParents)
		require.True(t, r.RetryEligible)
		require.True(t, r.ReadyForExecution)
		require.Equal(t, 0, r.Attempts)
		require.Equal(t, 3, r.MaxAttempts)
		require.Nil(t, r.NextRetryAt)
	})

	t.Run("waiting for retry is ready only once its backoff elapsed", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "flaky", State: "waiting_for_retry", Attempts: 1, RetryIn: in(time.Hour)})
		r := readiness(t, e, d, nil)["flaky"]
		require.Equal(t, "waiting_for_retry", r.CurrentState)
		require.True(t, r.DependenciesSatisfied)
		require.True(t, r.RetryEligible)
		require.NotNil(t, r.NextRetryAt)
		require.False(t, r.ReadyForExecution, "backoff has not elapsed")

		_, err := e.pool.Exec(context.Background(), `UPDATE tasker.workflow_steps SET next_retry_at = clock_timestamp() - interval '1 second'
			WHERE workflow_step_uuid = $1`, d.id(t, "flaky"))
		require.NoError(t, err)
		r = readiness(t, e, d, nil)["flaky"]
		require.True(t, r.ReadyForExecution, "backoff elapsed")
	})

	t.Run("retry eligibility", func(t *testing.T) {
		t.Parallel()
		past := in(-time.Second)
		d := e.build(t, taskSpec{},
			stepSpec{Name: "exhausted", State: "waiting_for_retry", Attempts: 3, MaxAttempts: 3, RetryIn: past},
			stepSpec{Name: "exhausted_pending", Attempts: 3, MaxAttempts: 3},
			stepSpec{Name: "not_retryable", State: "waiting_for_retry", Attempts: 1, NotRetryable: true, RetryIn: past},
			stepSpec{Name: "not_retryable_fresh", Attempts: 0, NotRetryable: true},
			stepSpec{Name: "fresh_single", Attempts: 0, MaxAttempts: 1},
			stepSpec{Name: "second_try", State: "waiting_for_retry", Attempts: 2, MaxAttempts: 3, RetryIn: past},
		)
		r := readiness(t, e, d, nil)
		for name, want := range map[string]bool{
			"exhausted":           false,
			"exhausted_pending":   false,
			"not_retryable":       false,
			"not_retryable_fresh": true,
			"fresh_single":        true,
			"second_try":          true,
		} {
			require.Equal(t, want, r[name].RetryEligible, "retry_eligible of %s", name)
			require.Equal(t, want, r[name].ReadyForExecution, "ready_for_execution of %s", name)
			require.True(t, r[name].DependenciesSatisfied, name)
		}
	})

	t.Run("steps in process or processed are never ready", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{},
			stepSpec{Name: "enqueued", State: "enqueued"},
			stepSpec{Name: "in_progress", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)},
			stepSpec{Name: "awaiting", State: "enqueued_for_orchestration", Attempts: 1},
			stepSpec{Name: "complete", State: "complete", Attempts: 1},
			stepSpec{Name: "error", State: "error", Attempts: 3},
			stepSpec{Name: "pending_in_process", InProcess: true},
			stepSpec{Name: "pending_processed", Processed: true},
			stepSpec{Name: "retry_in_process", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second), InProcess: true},
		)
		r := readiness(t, e, d, nil)
		require.Len(t, r, 8)
		for name, s := range r {
			require.False(t, s.ReadyForExecution, "%s must not be ready", name)
			require.True(t, s.DependenciesSatisfied, name)
		}
	})

	t.Run("resolved_manually parent satisfies, error parent does not", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{},
			stepSpec{Name: "manual", State: "resolved_manually"},
			stepSpec{Name: "failed", State: "error", Attempts: 3},
			stepSpec{Name: "after_manual", Parents: []string{"manual"}},
			stepSpec{Name: "after_both", Parents: []string{"manual", "failed"}},
		)
		r := readiness(t, e, d, nil)
		require.True(t, r["after_manual"].DependenciesSatisfied)
		require.Equal(t, 1, r["after_manual"].CompletedParents)
		require.True(t, r["after_manual"].ReadyForExecution)
		require.False(t, r["after_both"].DependenciesSatisfied)
		require.Equal(t, 2, r["after_both"].TotalParents)
		require.Equal(t, 1, r["after_both"].CompletedParents)
		require.False(t, r["after_both"].ReadyForExecution)
	})

	t.Run("step_uuids filter", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "a"}, stepSpec{Name: "b"}, stepSpec{Name: "c"})
		other := e.build(t, taskSpec{}, stepSpec{Name: "a"})
		filter := []uuid.UUID{d.id(t, "c"), d.id(t, "a"), other.id(t, "a")}
		rows, err := e.funcs.GetStepReadinessStatus(context.Background(), e.pool, d.Task, filter)
		require.NoError(t, err)
		require.Len(t, rows, 2, "only the task's own filtered steps")
		want := []uuid.UUID{d.id(t, "a"), d.id(t, "c")}
		sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
		require.Equal(t, want, []uuid.UUID{rows[0].StepUUID, rows[1].StepUUID}, "ordered by step uuid")

		rows, err = e.funcs.GetStepReadinessStatus(context.Background(), e.pool, d.Task, []uuid.UUID{})
		require.NoError(t, err)
		require.Empty(t, rows, "an empty filter selects nothing")

		require.Len(t, readiness(t, e, d, nil), 3, "no filter selects every step")
	})
}

// ---------------------------------------------------------------------------
// get_task_execution_context
// ---------------------------------------------------------------------------

func TestTaskExecutionContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	cases := []struct {
		name   string
		task   taskSpec
		steps  []stepSpec
		want   db.ExecutionContext // counts and statuses; uuids are filled in
		action string
	}{
		{
			name: "has ready steps",
			steps: []stepSpec{
				{Name: "a", State: "complete"},
				{Name: "b", Parents: []string{"a"}},
				{Name: "c", Parents: []string{"b"}},
			},
			want: db.ExecutionContext{TotalSteps: 3, PendingSteps: 2, CompletedSteps: 1, ReadySteps: 1,
				ExecutionStatus: "has_ready_steps", RecommendedAction: "execute_ready_steps",
				CompletionPercentage: 33.33, HealthStatus: "healthy"},
		},
		{
			name: "processing",
			steps: []stepSpec{
				{Name: "a", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)},
				{Name: "b", State: "enqueued"},
				{Name: "c", State: "enqueued_for_orchestration", Attempts: 1},
				{Name: "d", State: "enqueued_as_error_for_orchestration", Attempts: 1},
				{Name: "e", Parents: []string{"a"}},
			},
			want: db.ExecutionContext{TotalSteps: 5, PendingSteps: 1, EnqueuedSteps: 1, InProgressSteps: 1, AwaitingSteps: 2,
				ExecutionStatus: "processing", RecommendedAction: "wait_for_completion", HealthStatus: "healthy"},
		},
		{
			name: "all complete",
			task: taskSpec{State: "evaluating_results"},
			steps: []stepSpec{
				{Name: "a", State: "complete", Attempts: 1},
				{Name: "b", State: "resolved_manually", Parents: []string{"a"}},
			},
			want: db.ExecutionContext{Status: "evaluating_results", TotalSteps: 2, CompletedSteps: 2,
				ExecutionStatus: "all_complete", RecommendedAction: "finalize_task", CompletionPercentage: 100, HealthStatus: "healthy"},
		},
		{
			name: "blocked by failures even with a ready step",
			task: taskSpec{State: "blocked_by_failures"},
			steps: []stepSpec{
				{Name: "a", State: "error", Attempts: 3},
				{Name: "b"},
				{Name: "c", State: "complete", Attempts: 1},
				{Name: "d", State: "complete", Attempts: 1},
			},
			want: db.ExecutionContext{Status: "blocked_by_failures", TotalSteps: 4, PendingSteps: 1, CompletedSteps: 2,
				FailedSteps: 1, ReadySteps: 1, ExecutionStatus: "blocked_by_failures", RecommendedAction: "handle_failures",
				CompletionPercentage: 50, HealthStatus: "blocked"},
		},
		{
			name: "waiting for dependencies with a retry in backoff",
			task: taskSpec{State: "waiting_for_retry"},
			steps: []stepSpec{
				{Name: "a", State: "waiting_for_retry", Attempts: 1, RetryIn: in(time.Hour)},
				{Name: "b", Parents: []string{"a"}},
			},
			want: db.ExecutionContext{Status: "waiting_for_retry", TotalSteps: 2, PendingSteps: 1, WaitingForRetrySteps: 1,
				ExecutionStatus: "waiting_for_dependencies", RecommendedAction: "wait_for_dependencies", HealthStatus: "recovering"},
		},
		{
			name: "no steps",
			want: db.ExecutionContext{ExecutionStatus: "waiting_for_dependencies", RecommendedAction: "wait_for_dependencies",
				HealthStatus: "healthy"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := e.build(t, tc.task, tc.steps...)
			got, ok, err := e.funcs.GetTaskExecutionContext(ctx, e.pool, d.Task)
			require.NoError(t, err)
			require.True(t, ok)
			want := tc.want
			want.TaskUUID, want.NamedTaskUUID = d.Task, e.namedTask
			if want.Status == "" {
				want.Status = "steps_in_process"
			}
			require.InDelta(t, want.CompletionPercentage, got.CompletionPercentage, 0.001)
			got.CompletionPercentage = want.CompletionPercentage
			require.Equal(t, want, got)
		})
	}

	t.Run("unknown task", func(t *testing.T) {
		t.Parallel()
		_, ok, err := e.funcs.GetTaskExecutionContext(ctx, e.pool, uuid.Must(uuid.NewV7()))
		require.NoError(t, err)
		require.False(t, ok)
	})
}

// ---------------------------------------------------------------------------
// get_next_ready_tasks
// ---------------------------------------------------------------------------

func readyTaskUUIDs(rows []db.ReadyTask) []uuid.UUID {
	out := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = r.TaskUUID
	}
	return out
}

func TestNextReadyTasksSelection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	pending := e.build(t, taskSpec{State: "pending"}, stepSpec{Name: "a"})
	retryDue := e.build(t, taskSpec{State: "waiting_for_retry"},
		stepSpec{Name: "a", State: "complete", Attempts: 1},
		stepSpec{Name: "b", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second), Parents: []string{"a"}})
	retryRunningSibling := e.build(t, taskSpec{State: "steps_in_process"},
		stepSpec{Name: "a", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)},
		stepSpec{Name: "b", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second)})
	depsReady := e.build(t, taskSpec{State: "waiting_for_dependencies"},
		stepSpec{Name: "a", State: "complete", Attempts: 1},
		stepSpec{Name: "b", Parents: []string{"a"}})

	// None of these may come back.
	e.build(t, taskSpec{State: "waiting_for_retry"},
		stepSpec{Name: "a", State: "waiting_for_retry", Attempts: 1, RetryIn: in(time.Hour)})
	e.build(t, taskSpec{State: "complete"},
		stepSpec{Name: "a", State: "complete", Attempts: 1})
	e.build(t, taskSpec{State: "steps_in_process"},
		stepSpec{Name: "a", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)},
		stepSpec{Name: "b", Parents: []string{"a"}})
	e.build(t, taskSpec{State: "waiting_for_dependencies"},
		stepSpec{Name: "a", State: "enqueued"},
		stepSpec{Name: "b", Parents: []string{"a"}})
	// A task in error whose step is retry-due is terminal: never returned.
	e.build(t, taskSpec{State: "error"},
		stepSpec{Name: "a", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second)})

	rows, err := e.funcs.GetNextReadyTasks(ctx, e.pool, 100)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{pending.Task, retryDue.Task, retryRunningSibling.Task, depsReady.Task}, readyTaskUUIDs(rows))
	byTask := map[uuid.UUID]db.ReadyTask{}
	for _, r := range rows {
		require.Equal(t, e.taskName, r.TaskName)
		require.Equal(t, e.ns, r.Namespace)
		byTask[r.TaskUUID] = r
	}
	require.Equal(t, "pending", byTask[pending.Task].CurrentState)
	require.Equal(t, int64(1), byTask[pending.Task].ReadyStepsCount)
	require.Equal(t, "waiting_for_retry", byTask[retryDue.Task].CurrentState)
	require.Equal(t, int64(1), byTask[retryDue.Task].ReadyStepsCount)
	require.Equal(t, "steps_in_process", byTask[retryRunningSibling.Task].CurrentState)
	require.Equal(t, "waiting_for_dependencies", byTask[depsReady.Task].CurrentState)
}

func TestNextReadyTasksLimitAndPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	low := e.build(t, taskSpec{State: "pending", Priority: -10}, stepSpec{Name: "a"})
	normal := e.build(t, taskSpec{State: "pending"}, stepSpec{Name: "a"})
	high := e.build(t, taskSpec{State: "pending", Priority: 50}, stepSpec{Name: "a"})
	urgent := e.build(t, taskSpec{State: "waiting_for_retry", Priority: 90},
		stepSpec{Name: "a", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second)})

	rows, err := e.funcs.GetNextReadyTasks(ctx, e.pool, 10)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{urgent.Task, high.Task, normal.Task, low.Task}, readyTaskUUIDs(rows))
	for i := 1; i < len(rows); i++ {
		require.GreaterOrEqual(t, rows[i-1].ComputedPriority, rows[i].ComputedPriority)
	}
	require.Equal(t, 90, rows[0].Priority)

	rows, err = e.funcs.GetNextReadyTasks(ctx, e.pool, 2)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{urgent.Task, high.Task}, readyTaskUUIDs(rows))

	rows, err = e.funcs.GetNextReadyTasks(ctx, e.pool, 1)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{urgent.Task}, readyTaskUUIDs(rows))
}

// ---------------------------------------------------------------------------
// transition_task_state_atomic / transition_step_state_atomic
// ---------------------------------------------------------------------------

func TestTransitionTaskStateAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	processor := uuid.Must(uuid.NewV7())

	t.Run("compare and swap writes the row and its history", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{State: "steps_in_process"})
		before := getTask(t, e.pool, d.Task)
		ok, err := e.funcs.TransitionTaskStateAtomic(ctx, e.pool, d.Task, "steps_in_process", "evaluating_results", processor,
			map[string]any{"reason": "step_result", "step": "a"})
		require.NoError(t, err)
		require.True(t, ok)
		after := getTask(t, e.pool, d.Task)
		require.Equal(t, "evaluating_results", after.State)
		require.False(t, after.Complete)
		require.Nil(t, after.CompletedAt)
		require.True(t, after.StateChangedAt.After(before.StateChangedAt))

		h := taskHistory(t, e.pool, d.Task)
		require.Len(t, h, 1)
		require.Equal(t, ptr("steps_in_process"), h[0].From)
		require.Equal(t, "evaluating_results", h[0].To)
		require.Equal(t, ptr("step_result"), h[0].Reason)
		require.Equal(t, &processor, h[0].Processor)
		require.Equal(t, &d.Corr, h[0].Corr)
		require.JSONEq(t, `{"reason": "step_result", "step": "a"}`, string(h[0].Metadata))
	})

	t.Run("wrong from state writes nothing", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{State: "evaluating_results"})
		before := getTask(t, e.pool, d.Task)
		ok, err := e.funcs.TransitionTaskStateAtomic(ctx, e.pool, d.Task, "steps_in_process", "evaluating_results", processor, nil)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, before, getTask(t, e.pool, d.Task))
		require.Empty(t, taskHistory(t, e.pool, d.Task))

		ok, err = e.funcs.TransitionTaskStateAtomic(ctx, e.pool, uuid.Must(uuid.NewV7()), "pending", "initializing", processor, nil)
		require.NoError(t, err)
		require.False(t, ok, "unknown task")
	})

	t.Run("complete sets complete and completed_at", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{State: "evaluating_results"})
		ok, err := e.funcs.TransitionTaskStateAtomic(ctx, e.pool, d.Task, "evaluating_results", "complete", processor, nil)
		require.NoError(t, err)
		require.True(t, ok)
		row := getTask(t, e.pool, d.Task)
		require.Equal(t, "complete", row.State)
		require.True(t, row.Complete)
		require.NotNil(t, row.CompletedAt)
		h := taskHistory(t, e.pool, d.Task)
		require.Len(t, h, 1)
		require.Nil(t, h[0].Reason, "no reason in metadata")
		require.JSONEq(t, `{}`, string(h[0].Metadata))
	})

	t.Run("error is terminal but not complete", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{State: "blocked_by_failures"})
		ok, err := e.funcs.TransitionTaskStateAtomic(ctx, e.pool, d.Task, "blocked_by_failures", "error", processor, nil)
		require.NoError(t, err)
		require.True(t, ok)
		row := getTask(t, e.pool, d.Task)
		require.Equal(t, "error", row.State)
		require.False(t, row.Complete)
		require.NotNil(t, row.CompletedAt)
	})
}

func TestTransitionStepStateAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	t.Run("complete marks the step processed", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "a", State: "enqueued_for_orchestration", Attempts: 2})
		id := d.id(t, "a")
		start := dbNow(t, e.pool)
		ok, err := e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "enqueued_for_orchestration", "complete",
			map[string]any{"reason": "result_processed"}, 0)
		require.NoError(t, err)
		require.True(t, ok)
		s := getStep(t, e.pool, id)
		require.Equal(t, "complete", s.State)
		require.True(t, s.Processed)
		require.False(t, s.InProcess)
		require.NotNil(t, s.ProcessedAt)
		require.False(t, s.ProcessedAt.Before(start))
		require.Nil(t, s.NextRetryAt)
		require.Nil(t, s.LastFailureAt)
		require.Equal(t, 2, s.Attempts)

		h := stepHistory(t, e.pool, id)
		require.Len(t, h, 1)
		require.Equal(t, ptr("enqueued_for_orchestration"), h[0].From)
		require.Equal(t, "complete", h[0].To)
		require.Equal(t, ptr("result_processed"), h[0].Reason)
		require.Equal(t, ptr(int32(2)), h[0].Attempt)
		require.Equal(t, &d.Corr, h[0].Corr)
	})

	t.Run("waiting_for_retry schedules the retry", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "a", State: "enqueued_as_error_for_orchestration", Attempts: 1})
		id := d.id(t, "a")
		const backoff = 5 * time.Second
		before := dbNow(t, e.pool)
		ok, err := e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "enqueued_as_error_for_orchestration", "waiting_for_retry",
			map[string]any{"reason": "retryable_failure"}, backoff)
		require.NoError(t, err)
		require.True(t, ok)
		after := dbNow(t, e.pool)
		s := getStep(t, e.pool, id)
		require.Equal(t, "waiting_for_retry", s.State)
		require.False(t, s.Processed)
		require.False(t, s.InProcess)
		require.Nil(t, s.ProcessedAt)
		require.NotNil(t, s.NextRetryAt)
		require.False(t, s.NextRetryAt.Before(before.Add(backoff)), "next_retry_at %v before %v", s.NextRetryAt, before.Add(backoff))
		require.False(t, s.NextRetryAt.After(after.Add(backoff)), "next_retry_at %v after %v", s.NextRetryAt, after.Add(backoff))
		require.NotNil(t, s.LastFailureAt)
		require.False(t, s.LastFailureAt.Before(before))
		require.False(t, s.LastFailureAt.After(after))
		require.Equal(t, ptr(int32(5000)), s.BackoffMs)

		h := stepHistory(t, e.pool, id)
		require.Len(t, h, 1)
		require.Equal(t, "waiting_for_retry", h[0].To)
		require.Equal(t, ptr(int32(1)), h[0].Attempt)
		require.Equal(t, ptr("retryable_failure"), h[0].Reason)

		// waiting_for_retry → pending keeps the schedule.
		ok, err = e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "waiting_for_retry", "pending", nil, 0)
		require.NoError(t, err)
		require.True(t, ok)
		s2 := getStep(t, e.pool, id)
		require.Equal(t, "pending", s2.State)
		require.NotNil(t, s2.NextRetryAt)
		require.True(t, s.NextRetryAt.Equal(*s2.NextRetryAt), "next_retry_at kept")
		require.Len(t, stepHistory(t, e.pool, id), 2)
	})

	t.Run("error records the failure", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "a", State: "enqueued_as_error_for_orchestration", Attempts: 3})
		id := d.id(t, "a")
		ok, err := e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "enqueued_as_error_for_orchestration", "error", nil, 0)
		require.NoError(t, err)
		require.True(t, ok)
		s := getStep(t, e.pool, id)
		require.Equal(t, "error", s.State)
		require.NotNil(t, s.LastFailureAt)
		require.Nil(t, s.NextRetryAt)
		require.False(t, s.Processed)

		// An operator reset starts the attempts over.
		ok, err = e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "error", "pending", map[string]any{"reason": "reset_for_retry"}, 0)
		require.NoError(t, err)
		require.True(t, ok)
		s = getStep(t, e.pool, id)
		require.Equal(t, "pending", s.State)
		require.Equal(t, 0, s.Attempts)
		h := stepHistory(t, e.pool, id)
		require.Len(t, h, 2)
		require.Equal(t, ptr(int32(0)), h[1].Attempt)
	})

	t.Run("wrong from state writes nothing", func(t *testing.T) {
		t.Parallel()
		d := e.build(t, taskSpec{}, stepSpec{Name: "a", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)})
		id := d.id(t, "a")
		before := getStep(t, e.pool, id)
		ok, err := e.funcs.TransitionStepStateAtomic(ctx, e.pool, id, "enqueued", "complete", nil, 0)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, before, getStep(t, e.pool, id))
		require.Empty(t, stepHistory(t, e.pool, id))
	})
}

// ---------------------------------------------------------------------------
// get_step_transitive_dependencies
// ---------------------------------------------------------------------------

func TestStepTransitiveDependencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	//   r1   r2
	//     \ /
	//      a    c
	//      |    |
	//      b    |
	//       \  /
	//       leaf --- after        u (unrelated)
	d := e.build(t, taskSpec{},
		stepSpec{Name: "r1", State: "complete", Attempts: 1, Results: `{"result": 1}`},
		stepSpec{Name: "r2", State: "complete", Attempts: 1, Results: `{"result": 2}`},
		stepSpec{Name: "a", State: "complete", Attempts: 1, Parents: []string{"r1", "r2"}, Results: `{"result": "a"}`},
		stepSpec{Name: "b", State: "in_progress", Attempts: 1, Parents: []string{"a"}, LeaseIn: in(time.Minute)},
		stepSpec{Name: "c", State: "resolved_manually"},
		stepSpec{Name: "leaf", Parents: []string{"b", "c"}},
		stepSpec{Name: "after", Parents: []string{"leaf"}},
		stepSpec{Name: "u", State: "complete"},
	)
	deps, err := e.funcs.GetStepTransitiveDependencies(ctx, e.pool, d.id(t, "leaf"))
	require.NoError(t, err)
	type dep struct {
		name, state string
		distance    int
		processed   bool
	}
	got := make([]dep, len(deps))
	for i, x := range deps {
		require.Equal(t, d.Task, x.TaskUUID)
		require.Equal(t, d.Steps[x.Name], x.StepUUID)
		got[i] = dep{x.Name, x.State, x.Distance, x.Processed}
	}
	require.Equal(t, []dep{
		{"b", "in_progress", 1, false},
		{"c", "resolved_manually", 1, true},
		{"a", "complete", 2, true},
		{"r1", "complete", 3, true},
		{"r2", "complete", 3, true},
	}, got)
	require.JSONEq(t, `{"result": "a"}`, string(deps[2].Results))
	require.Nil(t, deps[0].Results)

	// The shortest path wins when an ancestor is reachable twice.
	d2 := e.build(t, taskSpec{},
		stepSpec{Name: "root", State: "complete"},
		stepSpec{Name: "mid", State: "complete", Parents: []string{"root"}},
		stepSpec{Name: "end", Parents: []string{"mid", "root"}},
	)
	deps, err = e.funcs.GetStepTransitiveDependencies(ctx, e.pool, d2.id(t, "end"))
	require.NoError(t, err)
	require.Len(t, deps, 2)
	for _, x := range deps {
		require.Equal(t, 1, x.Distance, x.Name)
	}

	deps, err = e.funcs.GetStepTransitiveDependencies(ctx, e.pool, d.id(t, "r1"))
	require.NoError(t, err)
	require.Empty(t, deps, "a root has no ancestors")
}

// ---------------------------------------------------------------------------
// can_finalize_task / claim_task_for_finalization
// ---------------------------------------------------------------------------

func TestCanFinalizeTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	processor := uuid.Must(uuid.NewV7())

	cases := []struct {
		name  string
		task  string
		steps []stepSpec
		want  db.Finalization
	}{
		{
			name:  "all complete",
			task:  "evaluating_results",
			steps: []stepSpec{{Name: "a", State: "complete"}, {Name: "b", State: "resolved_manually", Parents: []string{"a"}}},
			want:  db.Finalization{Claimed: true, CurrentState: "evaluating_results", TargetState: "complete", ExecutionStatus: "all_complete"},
		},
		{
			name:  "error with a step still in progress",
			task:  "steps_in_process",
			steps: []stepSpec{{Name: "a", State: "error", Attempts: 3}, {Name: "b", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)}},
			want:  db.Finalization{Claimed: false, CurrentState: "steps_in_process", TargetState: "error", ExecutionStatus: "blocked_by_failures"},
		},
		{
			name:  "error with a step awaiting orchestration",
			task:  "evaluating_results",
			steps: []stepSpec{{Name: "a", State: "error", Attempts: 3}, {Name: "b", State: "enqueued_for_orchestration", Attempts: 1}},
			want:  db.Finalization{Claimed: false, CurrentState: "evaluating_results", TargetState: "error", ExecutionStatus: "blocked_by_failures"},
		},
		{
			name: "error and nothing in flight",
			task: "blocked_by_failures",
			steps: []stepSpec{{Name: "a", State: "complete"}, {Name: "b", State: "error", Attempts: 3, Parents: []string{"a"}},
				{Name: "c", Parents: []string{"b"}}},
			want: db.Finalization{Claimed: true, CurrentState: "blocked_by_failures", TargetState: "error", ExecutionStatus: "blocked_by_failures"},
		},
		{
			name:  "still running",
			task:  "steps_in_process",
			steps: []stepSpec{{Name: "a", State: "complete"}, {Name: "b", State: "enqueued", Parents: []string{"a"}}},
			want:  db.Finalization{Claimed: false, CurrentState: "steps_in_process", ExecutionStatus: "processing"},
		},
		{
			name:  "terminal task",
			task:  "complete",
			steps: []stepSpec{{Name: "a", State: "complete"}},
			want:  db.Finalization{Claimed: false, CurrentState: "complete", TargetState: "complete", ExecutionStatus: "all_complete"},
		},
		{
			name:  "terminal error task",
			task:  "error",
			steps: []stepSpec{{Name: "a", State: "error", Attempts: 3}},
			want:  db.Finalization{Claimed: false, CurrentState: "error", TargetState: "error", ExecutionStatus: "blocked_by_failures"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := e.build(t, taskSpec{State: tc.task}, tc.steps...)
			got, err := e.funcs.CanFinalizeTask(ctx, e.pool, d.Task)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)

			tx, err := e.pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			claimed, err := e.funcs.ClaimTaskForFinalization(ctx, tx, d.Task, processor)
			require.NoError(t, err)
			require.Equal(t, tc.want, claimed)
		})
	}

	t.Run("unknown task", func(t *testing.T) {
		t.Parallel()
		unknown := uuid.Must(uuid.NewV7())
		got, err := e.funcs.CanFinalizeTask(ctx, e.pool, unknown)
		require.NoError(t, err)
		require.Equal(t, db.Finalization{}, got)
		claimed, err := e.funcs.ClaimTaskForFinalization(ctx, e.pool, unknown, processor)
		require.NoError(t, err)
		require.Equal(t, db.Finalization{}, claimed)
	})
}

func TestClaimTaskForFinalizationLocksTheTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d := e.build(t, taskSpec{State: "evaluating_results"}, stepSpec{Name: "a", State: "complete"})

	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	got, err := e.funcs.ClaimTaskForFinalization(ctx, tx, d.Task, uuid.Must(uuid.NewV7()))
	require.NoError(t, err)
	require.True(t, got.Claimed)
	require.Equal(t, "complete", got.TargetState)

	// A second connection cannot lock the row while the claim's transaction is open.
	lockRow := func() error {
		c, err := e.pool.Acquire(ctx)
		require.NoError(t, err)
		defer c.Release()
		_, err = c.Exec(ctx, "SELECT 1 FROM tasker.tasks WHERE task_uuid = $1 FOR UPDATE NOWAIT", d.Task)
		return err
	}
	err = lockRow()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "55P03", pgErr.Code, "lock_not_available")

	// Other tasks are not locked.
	other := e.build(t, taskSpec{State: "evaluating_results"})
	_, err = e.pool.Exec(ctx, "SELECT 1 FROM tasker.tasks WHERE task_uuid = $1 FOR UPDATE NOWAIT", other.Task)
	require.NoError(t, err)

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, lockRow(), "the lock ends with the claiming transaction")
}

// ---------------------------------------------------------------------------
// enqueue_steps
// ---------------------------------------------------------------------------

func TestEnqueueSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	d := e.build(t, taskSpec{},
		stepSpec{Name: "p1"},
		stepSpec{Name: "p2"},
		stepSpec{Name: "w", State: "waiting_for_retry", Attempts: 1, RetryIn: in(-time.Second)},
		stepSpec{Name: "ip", State: "in_progress", Attempts: 1, LeaseIn: in(time.Minute)},
		stepSpec{Name: "c", State: "complete", Attempts: 1},
		stepSpec{Name: "untouched"},
	)
	foreign := e.build(t, taskSpec{}, stepSpec{Name: "p1"})
	headers := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

	ids := []uuid.UUID{d.id(t, "p1"), d.id(t, "p2"), d.id(t, "w"), d.id(t, "ip"), d.id(t, "c"), foreign.id(t, "p1")}
	out, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, ids, q, headers)
	require.NoError(t, err)
	require.Len(t, out, 3)
	sent := map[string]db.EnqueuedStep{}
	for _, s := range out {
		require.Equal(t, d.Steps[s.StepName], s.StepUUID)
		require.Positive(t, s.MsgID)
		sent[s.StepName] = s
	}
	require.ElementsMatch(t, []string{"p1", "p2", "w"}, []string{out[0].StepName, out[1].StepName, out[2].StepName})

	for name, want := range map[string]string{"p1": "enqueued", "p2": "enqueued", "w": "enqueued", "ip": "in_progress", "c": "complete", "untouched": "pending"} {
		require.Equal(t, want, getStep(t, e.pool, d.id(t, name)).State, name)
	}
	require.Equal(t, "pending", getStep(t, e.pool, foreign.id(t, "p1")).State, "another task's step")

	// History: one row for a pending step, two for a retried one, none for skipped steps.
	h := stepHistory(t, e.pool, d.id(t, "p1"))
	require.Len(t, h, 1)
	require.Equal(t, stepTransition{From: ptr("pending"), To: "enqueued", Reason: ptr("enqueue"), Attempt: ptr(int32(0)),
		Corr: &d.Corr, Metadata: []byte("{}")}, h[0])
	h = stepHistory(t, e.pool, d.id(t, "w"))
	require.Len(t, h, 2)
	require.Equal(t, ptr("waiting_for_retry"), h[0].From)
	require.Equal(t, "pending", h[0].To)
	require.Equal(t, ptr("retry_ready"), h[0].Reason)
	require.Equal(t, ptr(int32(1)), h[0].Attempt)
	require.Equal(t, ptr("pending"), h[1].From)
	require.Equal(t, "enqueued", h[1].To)
	require.Equal(t, &d.Corr, h[1].Corr)
	require.Empty(t, stepHistory(t, e.pool, d.id(t, "ip")))
	require.Empty(t, stepHistory(t, e.pool, d.id(t, "c")))

	// One message per enqueued step.
	require.Len(t, queueMessages(t, e.pool, q), 3)
	for name, s := range sent {
		m, ok := liveMessage(t, e.pool, s.MsgID)
		require.True(t, ok, name)
		var body map[string]any
		require.NoError(t, json.Unmarshal(m.Body, &body))
		require.Equal(t, d.Task.String(), body["task_uuid"], name)
		require.Equal(t, s.StepUUID.String(), body["step_uuid"], name)
		require.Equal(t, d.Corr.String(), body["correlation_id"], name)
		require.Equal(t, e.ns, body["namespace"], name)
		require.Equal(t, name, body["step_name"], name)
		var hdr map[string]string
		require.NoError(t, json.Unmarshal(m.Headers, &hdr))
		require.Equal(t, headers, hdr, name)
		require.Equal(t, 0, m.ReadCt)
	}
	var attempt float64
	require.NoError(t, json.Unmarshal([]byte(mustField(t, e.pool, sent["w"].MsgID, "attempt")), &attempt))
	require.Equal(t, float64(2), attempt, "the retry's message announces attempt 2")

	// Enqueuing again sends nothing: every listed step has moved on.
	again, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, ids, q, nil)
	require.NoError(t, err)
	require.Empty(t, again)
	require.Len(t, queueMessages(t, e.pool, q), 3)
}

func mustField(t *testing.T, q db.Querier, msgID int64, field string) string {
	t.Helper()
	var v string
	require.NoError(t, q.QueryRow(context.Background(), "SELECT (message -> $2::text)::text FROM tasker.queue_messages WHERE msg_id = $1",
		msgID, field).Scan(&v))
	return v
}

// ---------------------------------------------------------------------------
// claim_step / claim_steps / submit_step_result / extend_step_leases
// ---------------------------------------------------------------------------

// claimFixture is a task whose step "s" has completed ancestors with results
// and has just been enqueued.
type claimFixture struct {
	*dag
	queue string
	msgID int64
}

func (e *env) enqueuedStep(t *testing.T, q string, extra ...stepSpec) *claimFixture {
	t.Helper()
	steps := append([]stepSpec{
		{Name: "r", State: "complete", Attempts: 1, Results: `{"result": 42, "metadata": {"execution_time_ms": 3}}`},
		{Name: "a", State: "complete", Attempts: 1, Parents: []string{"r"}, Results: `{"result": {"v": 1}}`},
		{Name: "b", State: "resolved_manually", Results: `{"result": "B"}`},
		{Name: "x", State: "complete", Attempts: 1},
		{Name: "z", State: "complete", Attempts: 1, Results: `{"result": "not an ancestor"}`},
		{Name: "s", Parents: []string{"a", "b", "x"}, Inputs: `{"amount": 10}`},
	}, extra...)
	d := e.build(t, taskSpec{Context: `{"order_id": 7}`}, steps...)
	out, err := e.funcs.EnqueueSteps(context.Background(), e.pool, d.Task, []uuid.UUID{d.id(t, "s")}, q,
		map[string]string{"traceparent": "tp-1"})
	require.NoError(t, err)
	require.Len(t, out, 1)
	return &claimFixture{dag: d, queue: q, msgID: out[0].MsgID}
}

// expire makes a step's lease and its message's visibility lapse, as if the
// worker holding it had stopped.
func expire(t *testing.T, q db.Querier, step uuid.UUID, msgID int64) {
	t.Helper()
	_, err := q.Exec(context.Background(), `UPDATE tasker.workflow_steps SET lease_expires_at = clock_timestamp() - interval '1 second'
		WHERE workflow_step_uuid = $1`, step)
	require.NoError(t, err)
	_, err = q.Exec(context.Background(), `UPDATE tasker.queue_messages SET vt = clock_timestamp() - interval '1 second'
		WHERE msg_id = $1`, msgID)
	require.NoError(t, err)
}

func TestClaimStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	f := e.enqueuedStep(t, q)
	step := f.id(t, "s")
	const lease = 30 * time.Second

	before := dbNow(t, e.pool)
	claims, err := e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, lease, "worker-1")
	require.NoError(t, err)
	after := dbNow(t, e.pool)
	require.Len(t, claims, 1)
	c := claims[0]
	require.Equal(t, db.ClaimClaimed, c.Outcome)
	require.Equal(t, f.msgID, c.MsgID)
	require.Equal(t, 1, c.ReadCount)
	require.JSONEq(t, `{"traceparent": "tp-1"}`, string(c.Headers))
	require.Equal(t, f.Task, c.TaskUUID)
	require.Equal(t, step, c.StepUUID)
	require.Equal(t, "s", c.StepName)
	require.Equal(t, "s_handler", c.Handler)
	require.Equal(t, 1, c.Attempt)
	require.Equal(t, 3, c.MaxAttempts)
	require.Equal(t, 30*time.Second, c.Timeout)
	require.JSONEq(t, `{"amount": 10}`, string(c.Inputs))
	require.JSONEq(t, `{"order_id": 7}`, string(c.TaskContext))
	require.Equal(t, f.Corr, c.CorrelationID)
	require.Nil(t, c.ParentCorrelationID)
	require.Equal(t, e.ns, c.Namespace)
	require.Equal(t, e.taskName, c.TaskName)
	require.Equal(t, e.version, c.TaskVersion)
	require.JSONEq(t, `{"r": 42, "a": {"v": 1}, "b": "B"}`, string(c.DependencyResults))

	s := getStep(t, e.pool, step)
	require.Equal(t, "in_progress", s.State)
	require.Equal(t, 1, s.Attempts)
	require.True(t, s.InProcess)
	require.Equal(t, ptr("worker-1"), s.WorkerID)
	require.NotNil(t, s.LastAttemptedAt)
	require.NotNil(t, s.LeaseExpiresAt)
	require.False(t, s.LeaseExpiresAt.Before(before.Add(lease)))
	require.False(t, s.LeaseExpiresAt.After(after.Add(lease)))
	h := stepHistory(t, e.pool, step)
	require.Len(t, h, 2) // enqueue + claim
	require.Equal(t, stepTransition{From: ptr("enqueued"), To: "in_progress", Reason: ptr("claimed"), Attempt: ptr(int32(1)),
		WorkerID: ptr("worker-1"), Corr: &f.Corr, Metadata: []byte("{}")}, h[1])

	// While the message is hidden nobody else gets it, by id or by polling.
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, lease, "worker-2")
	require.NoError(t, err)
	require.Empty(t, claims)
	claims, err = e.funcs.ClaimSteps(ctx, e.pool, q, 10, lease, "worker-2", 0)
	require.NoError(t, err)
	require.Empty(t, claims)
	require.Equal(t, 1, getStep(t, e.pool, step).Attempts)
	m, ok := liveMessage(t, e.pool, f.msgID)
	require.True(t, ok)
	require.Equal(t, 1, m.ReadCt)

	// After the lease lapses another worker reclaims the step.
	expire(t, e.pool, step, f.msgID)
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, lease, "worker-2")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimReclaimed, claims[0].Outcome)
	require.Equal(t, 2, claims[0].Attempt)
	require.Equal(t, 2, claims[0].ReadCount)
	require.JSONEq(t, `{"r": 42, "a": {"v": 1}, "b": "B"}`, string(claims[0].DependencyResults))
	s = getStep(t, e.pool, step)
	require.Equal(t, "in_progress", s.State)
	require.Equal(t, 2, s.Attempts)
	require.Equal(t, ptr("worker-2"), s.WorkerID)
	h = stepHistory(t, e.pool, step)
	require.Len(t, h, 3)
	require.Equal(t, ptr("in_progress"), h[2].From)
	require.Equal(t, ptr("lease_expired_reclaim"), h[2].Reason)
	require.Equal(t, ptr(int32(2)), h[2].Attempt)
	require.Equal(t, ptr("worker-2"), h[2].WorkerID)

	// Lapsing on the last attempt: exhausted, attempts unchanged, no handler input.
	expire(t, e.pool, step, f.msgID)
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, lease, "worker-3")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimReclaimed, claims[0].Outcome, "attempt 3 of 3 is still allowed")
	require.Equal(t, 3, claims[0].Attempt)
	expire(t, e.pool, step, f.msgID)
	before = dbNow(t, e.pool)
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, lease, "worker-4")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimExhausted, claims[0].Outcome)
	require.Equal(t, 3, claims[0].Attempt)
	require.Nil(t, claims[0].DependencyResults)
	s = getStep(t, e.pool, step)
	require.Equal(t, "in_progress", s.State)
	require.Equal(t, 3, s.Attempts)
	require.Equal(t, ptr("worker-4"), s.WorkerID)
	require.True(t, s.LeaseExpiresAt.After(before.Add(lease/2)), "the exhausted claim holds a fresh lease")
	require.Len(t, stepHistory(t, e.pool, step), 4, "no transition for an exhausted claim")

	// The exhausted worker reports the failure with the attempt it was given.
	rq := "orchestration_step_results"
	e.createQueue(t, rq)
	_, ok, err = e.funcs.SubmitStepResult(ctx, e.pool, db.StepResultSubmission{StepUUID: step, Attempt: 3, Success: false,
		Results: json.RawMessage(`{"error": {"type": "lease_expired"}}`), WorkerID: "worker-4", Queue: q, MsgID: f.msgID, ResultQueue: rq})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "enqueued_as_error_for_orchestration", getStep(t, e.pool, step).State)
}

func TestClaimStepBusyAndStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	d := e.build(t, taskSpec{},
		stepSpec{Name: "done", State: "complete", Attempts: 1},
		stepSpec{Name: "running", State: "in_progress", Attempts: 1, LeaseIn: in(time.Hour)},
	)

	// A message for a step already complete is stale and acknowledged.
	staleMsg := sendRaw(t, e.pool, q, map[string]any{"task_uuid": d.Task, "step_uuid": d.id(t, "done"), "correlation_id": d.Corr})
	claims, err := e.funcs.ClaimStep(ctx, e.pool, q, staleMsg, time.Minute, "w")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimStale, claims[0].Outcome)
	require.Equal(t, d.id(t, "done"), claims[0].StepUUID)
	require.Nil(t, claims[0].DependencyResults)
	_, live := liveMessage(t, e.pool, staleMsg)
	require.False(t, live)
	require.True(t, archived(t, e.pool, q, staleMsg))
	require.Equal(t, "complete", getStep(t, e.pool, d.id(t, "done")).State)
	require.Empty(t, stepHistory(t, e.pool, d.id(t, "done")))

	// A message for a step that no longer exists is stale too.
	gone := uuid.Must(uuid.NewV7())
	goneMsg := sendRaw(t, e.pool, q, map[string]any{"step_uuid": gone})
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, goneMsg, time.Minute, "w")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimStale, claims[0].Outcome)
	require.Equal(t, gone, claims[0].StepUUID)
	require.True(t, archived(t, e.pool, q, goneMsg))

	// A duplicate message for a step another worker holds is left alone.
	busyMsg := sendRaw(t, e.pool, q, map[string]any{"step_uuid": d.id(t, "running")})
	claims, err = e.funcs.ClaimStep(ctx, e.pool, q, busyMsg, time.Minute, "w")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimBusy, claims[0].Outcome)
	m, live := liveMessage(t, e.pool, busyMsg)
	require.True(t, live, "a busy message stays queued")
	require.Equal(t, 1, m.ReadCt)
	s := getStep(t, e.pool, d.id(t, "running"))
	require.Equal(t, 1, s.Attempts)
	require.Nil(t, s.WorkerID)
	// It becomes visible again when the holder's lease ends, not a whole lease later.
	var vt, lease time.Time
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT q.vt, s.lease_expires_at FROM tasker.queue_messages q, tasker.workflow_steps s
		WHERE q.msg_id = $1 AND s.workflow_step_uuid = $2`, busyMsg, d.id(t, "running")).Scan(&vt, &lease))
	require.True(t, vt.Equal(lease), "vt %s, lease %s", vt, lease)

	// A malformed message is archived as stale rather than failing every claim of the queue.
	badMsg := sendRaw(t, e.pool, q, map[string]any{"step_uuid": "not-a-uuid"})
	claims, err = e.funcs.ClaimSteps(ctx, e.pool, q, 10, time.Minute, "w", 0)
	require.NoError(t, err)
	require.NotEmpty(t, claims)
	require.True(t, archived(t, e.pool, q, badMsg))
}

func TestClaimStepMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	d := e.build(t, taskSpec{},
		stepSpec{Name: "a", State: "complete", Attempts: 1, Results: `{"result": "A"}`},
		stepSpec{Name: "b", Parents: []string{"a"}},
		stepSpec{Name: "c", Parents: []string{"a"}},
		stepSpec{Name: "d"},
		stepSpec{Name: "e"},
		stepSpec{Name: "done", State: "complete", Attempts: 1},
		stepSpec{Name: "running", State: "in_progress", Attempts: 1, LeaseIn: in(time.Hour)},
		stepSpec{Name: "lapsed", State: "in_progress", Attempts: 1, LeaseIn: in(-time.Second)},
	)
	out, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, []uuid.UUID{d.id(t, "b"), d.id(t, "c"), d.id(t, "d"), d.id(t, "e")}, q,
		map[string]string{"traceparent": "tp"})
	require.NoError(t, err)
	require.Len(t, out, 4)
	msg := map[string]int64{}
	for _, o := range out {
		msg[o.StepName] = o.MsgID
	}
	dup := sendRaw(t, e.pool, q, map[string]any{"step_uuid": d.id(t, "b")})
	stale := sendRaw(t, e.pool, q, map[string]any{"step_uuid": d.id(t, "done")})
	busy := sendRaw(t, e.pool, q, map[string]any{"step_uuid": d.id(t, "running")})
	lapsed := sendRaw(t, e.pool, q, map[string]any{"step_uuid": d.id(t, "lapsed")})
	bad := sendRaw(t, e.pool, q, map[string]any{"step_uuid": "nope"})

	// Another transaction holds step e (say, a cancel): its message is
	// handed back at once rather than waited for.
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, "SELECT 1 FROM tasker.workflow_steps WHERE workflow_step_uuid = $1 FOR UPDATE", d.id(t, "e"))
	require.NoError(t, err)
	// Step d's message is being claimed by another worker: skipped.
	_, err = tx.Exec(ctx, "SELECT 1 FROM tasker.queue_messages WHERE msg_id = $1 FOR UPDATE", msg["d"])
	require.NoError(t, err)

	ids := []int64{bad, lapsed, busy, stale, dup, msg["e"], msg["d"], msg["c"], msg["b"], 999999999}
	claims, err := e.funcs.ClaimStepMessages(ctx, e.pool, q, ids, time.Minute, "w1")
	require.NoError(t, err)
	got := map[int64]db.ClaimedStep{}
	for _, c := range claims {
		require.NotContains(t, got, c.MsgID, "one row per message")
		got[c.MsgID] = c
	}
	require.Len(t, got, 7, "every visible message but d's and e's")
	for _, name := range []string{"b", "c"} {
		c := got[msg[name]]
		require.Equal(t, db.ClaimClaimed, c.Outcome, name)
		require.Equal(t, d.id(t, name), c.StepUUID)
		require.Equal(t, name, c.StepName)
		require.Equal(t, name+"_handler", c.Handler)
		require.Equal(t, 1, c.Attempt)
		require.Equal(t, 3, c.MaxAttempts)
		require.Equal(t, 1, c.ReadCount)
		require.Equal(t, d.Corr, c.CorrelationID)
		require.Equal(t, e.ns, c.Namespace)
		require.Equal(t, e.taskName, c.TaskName)
		require.JSONEq(t, `{"traceparent": "tp"}`, string(c.Headers))
		require.JSONEq(t, `{"a": "A"}`, string(c.DependencyResults))
		s := getStep(t, e.pool, c.StepUUID)
		require.Equal(t, "in_progress", s.State)
		require.Equal(t, ptr("w1"), s.WorkerID)
		h := stepHistory(t, e.pool, c.StepUUID)
		require.Equal(t, stepTransition{From: ptr("enqueued"), To: "in_progress", Reason: ptr("claimed"), Attempt: ptr(int32(1)),
			WorkerID: ptr("w1"), Corr: &d.Corr, Metadata: []byte("{}")}, h[len(h)-1])
	}
	require.Equal(t, db.ClaimBusy, got[dup].Outcome, "a second message for a step claimed in the same batch")
	require.Equal(t, db.ClaimStale, got[stale].Outcome)
	require.True(t, archived(t, e.pool, q, stale))
	require.Equal(t, db.ClaimBusy, got[busy].Outcome)
	require.Equal(t, db.ClaimReclaimed, got[lapsed].Outcome)
	require.Equal(t, 2, got[lapsed].Attempt)
	require.Equal(t, db.ClaimStale, got[bad].Outcome)
	require.True(t, archived(t, e.pool, q, bad))
	require.Equal(t, 1, getStep(t, e.pool, d.id(t, "b")).Attempts, "claimed once")

	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, "enqueued", getStep(t, e.pool, d.id(t, "e")).State)
	m, ok := liveMessage(t, e.pool, msg["e"])
	require.True(t, ok)
	require.False(t, m.VT.After(dbNow(t, e.pool)), "the message of a step held elsewhere is visible again")
	require.Equal(t, 0, mustReadCt(t, e, msg["d"]), "a message locked by another claimer is not read")

	// Both are claimed by the next claim.
	claims, err = e.funcs.ClaimStepMessages(ctx, e.pool, q, []int64{msg["d"], msg["e"]}, time.Minute, "w2")
	require.NoError(t, err)
	require.Len(t, claims, 2)
	for _, c := range claims {
		require.Equal(t, db.ClaimClaimed, c.Outcome)
	}
	// Messages already hidden yield nothing.
	claims, err = e.funcs.ClaimStepMessages(ctx, e.pool, q, []int64{msg["b"], msg["d"]}, time.Minute, "w3")
	require.NoError(t, err)
	require.Empty(t, claims)
}

func mustReadCt(t *testing.T, e *env, id int64) int {
	t.Helper()
	m, ok := liveMessage(t, e.pool, id)
	require.True(t, ok)
	return m.ReadCt
}

func TestClaimStepsByPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	var order []uuid.UUID // the claim order expected
	byPriority := map[int][]uuid.UUID{}
	for _, p := range []int{0, 5, -3, 5, 0, 100} {
		d := e.build(t, taskSpec{Priority: p}, stepSpec{Name: "s"})
		_, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, []uuid.UUID{d.id(t, "s")}, q, nil)
		require.NoError(t, err)
		byPriority[p] = append(byPriority[p], d.id(t, "s"))
	}
	for _, p := range []int{100, 5, 0, -3} {
		order = append(order, byPriority[p]...)
	}
	var got []uuid.UUID
	for len(got) < len(order) {
		claims, err := e.funcs.ClaimSteps(ctx, e.pool, q, 2, time.Minute, "w", 0)
		require.NoError(t, err)
		require.NotEmpty(t, claims)
		sort.Slice(claims, func(i, j int) bool { return claims[i].MsgID < claims[j].MsgID })
		// Within one claim, the rows' order is not promised; between claims it is.
		batch := order[len(got):min(len(got)+2, len(order))]
		var ids []uuid.UUID
		for _, c := range claims {
			ids = append(ids, c.StepUUID)
		}
		require.ElementsMatch(t, batch, ids)
		got = append(got, batch...)
	}

}

func TestSendToUnknownQueueFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.pool.Exec(context.Background(), "SELECT tasker.queue_send('never_created', '{}')")
	require.ErrorContains(t, err, "queue never_created does not exist")
}

func TestNotifyPayloadCarriesHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var p1, p2, p3 string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT tasker.queue_notify_payload(7, '{}'),
		tasker.queue_notify_payload(8, '{"traceparent": "00-x"}'), tasker.queue_notify_payload(9, jsonb_build_object('big', repeat('x', 8000)))`).Scan(&p1, &p2, &p3))
	require.Equal(t, "7", p1)
	require.Equal(t, `8 {"traceparent": "00-x"}`, p2)
	require.Equal(t, "9", p3, "oversized headers are left out of the payload")
}

func TestClaimSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	d := e.build(t, taskSpec{},
		stepSpec{Name: "a", State: "complete", Attempts: 1, Results: `{"result": "A"}`},
		stepSpec{Name: "b", Parents: []string{"a"}},
		stepSpec{Name: "c", Parents: []string{"a"}},
		stepSpec{Name: "d", Parents: []string{"a"}},
	)
	out, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, []uuid.UUID{d.id(t, "b"), d.id(t, "c"), d.id(t, "d")}, q, nil)
	require.NoError(t, err)
	require.Len(t, out, 3)

	// Messages younger than minAge are left to the NOTIFY path.
	claims, err := e.funcs.ClaimSteps(ctx, e.pool, q, 10, time.Minute, "w", time.Hour)
	require.NoError(t, err)
	require.Empty(t, claims)

	claims, err = e.funcs.ClaimSteps(ctx, e.pool, q, 2, time.Minute, "w", 0)
	require.NoError(t, err)
	require.Len(t, claims, 2, "qty caps the claim")
	claims2, err := e.funcs.ClaimSteps(ctx, e.pool, q, 10, time.Minute, "w", 0)
	require.NoError(t, err)
	require.Len(t, claims2, 1, "the rest")
	seen := map[uuid.UUID]bool{}
	for _, c := range append(claims, claims2...) {
		require.Equal(t, db.ClaimClaimed, c.Outcome)
		require.Equal(t, 1, c.Attempt)
		require.JSONEq(t, `{"a": "A"}`, string(c.DependencyResults))
		require.Equal(t, "in_progress", getStep(t, e.pool, c.StepUUID).State)
		seen[c.StepUUID] = true
	}
	require.Len(t, seen, 3)
}

func TestSubmitStepResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	rq := "orchestration_step_results"
	e.createQueue(t, rq)
	f := e.enqueuedStep(t, q)
	step := f.id(t, "s")
	claims, err := e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, time.Minute, "worker-1")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, 1, claims[0].Attempt)
	results := json.RawMessage(`{"result": {"charged": true}, "metadata": {"execution_time_ms": 12}}`)
	sub := db.StepResultSubmission{StepUUID: step, Attempt: 2, Success: true, Results: results, WorkerID: "worker-1",
		Queue: q, MsgID: f.msgID, ResultQueue: rq, Headers: map[string]string{"traceparent": "tp-2"}}

	// A stale attempt writes nothing.
	historyBefore := stepHistory(t, e.pool, step)
	rowBefore := getStep(t, e.pool, step)
	_, ok, err := e.funcs.SubmitStepResult(ctx, e.pool, sub)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, rowBefore, getStep(t, e.pool, step))
	require.Equal(t, historyBefore, stepHistory(t, e.pool, step))
	_, live := liveMessage(t, e.pool, f.msgID)
	require.True(t, live)
	require.False(t, archived(t, e.pool, q, f.msgID))
	require.Empty(t, queueMessages(t, e.pool, rq))

	// The current attempt stores the result and hands it to orchestration.
	sub.Attempt = 1
	resultMsg, ok, err := e.funcs.SubmitStepResult(ctx, e.pool, sub)
	require.NoError(t, err)
	require.True(t, ok)
	require.Positive(t, resultMsg)
	s := getStep(t, e.pool, step)
	require.Equal(t, "enqueued_for_orchestration", s.State)
	require.False(t, s.InProcess)
	require.Nil(t, s.LeaseExpiresAt)
	require.JSONEq(t, string(results), string(s.Results))
	_, live = liveMessage(t, e.pool, f.msgID)
	require.False(t, live, "the worker message is acknowledged")
	require.False(t, archived(t, e.pool, q, f.msgID), "deleted, not archived: the history row records it")

	m, live := liveMessage(t, e.pool, resultMsg)
	require.True(t, live)
	require.JSONEq(t, `{"task_uuid": "`+f.Task.String()+`", "step_uuid": "`+step.String()+`", "correlation_id": "`+f.Corr.String()+
		`", "step_name": "s", "attempt": 1, "success": true, "worker_id": "worker-1"}`, string(m.Body))
	require.JSONEq(t, `{"traceparent": "tp-2"}`, string(m.Headers))
	require.Len(t, queueMessages(t, e.pool, rq), 1)

	h := stepHistory(t, e.pool, step)
	require.Len(t, h, len(historyBefore)+1)
	last := h[len(h)-1]
	require.Equal(t, ptr("in_progress"), last.From)
	require.Equal(t, "enqueued_for_orchestration", last.To)
	require.Equal(t, ptr("handler_succeeded"), last.Reason)
	require.Equal(t, ptr(int32(1)), last.Attempt)
	require.Equal(t, ptr("worker-1"), last.WorkerID)
	require.Equal(t, &f.Corr, last.Corr)
	require.JSONEq(t, `{"execution_time_ms": 12}`, string(last.Metadata))

	// A duplicate submission of the same attempt changes nothing.
	_, ok, err = e.funcs.SubmitStepResult(ctx, e.pool, sub)
	require.NoError(t, err)
	require.False(t, ok)
	require.Len(t, queueMessages(t, e.pool, rq), 1)
	require.Len(t, stepHistory(t, e.pool, step), len(h))
}

func TestSubmitStepFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	rq := "orchestration_step_results"
	e.createQueue(t, rq)
	f := e.enqueuedStep(t, q)
	step := f.id(t, "s")
	claims, err := e.funcs.ClaimSteps(ctx, e.pool, q, 1, time.Minute, "worker-1", 0)
	require.NoError(t, err)
	require.Len(t, claims, 1)
	resultMsg, ok, err := e.funcs.SubmitStepResult(ctx, e.pool, db.StepResultSubmission{StepUUID: step, Attempt: 1, Success: false,
		Results: json.RawMessage(`{"error": {"message": "card declined"}}`), WorkerID: "worker-1", Queue: q, MsgID: f.msgID, ResultQueue: rq})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "enqueued_as_error_for_orchestration", getStep(t, e.pool, step).State)
	m, live := liveMessage(t, e.pool, resultMsg)
	require.True(t, live)
	var body map[string]any
	require.NoError(t, json.Unmarshal(m.Body, &body))
	require.Equal(t, false, body["success"])
	h := stepHistory(t, e.pool, step)
	require.Equal(t, ptr("handler_failed"), h[len(h)-1].Reason)
	require.JSONEq(t, `{"execution_time_ms": null}`, string(h[len(h)-1].Metadata))
}

func TestExtendStepLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	held := e.enqueuedStep(t, q)
	lost := e.enqueuedStep(t, q)
	idle := e.enqueuedStep(t, q)
	for _, f := range []*claimFixture{held, lost, idle} {
		claims, err := e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, 2*time.Second, "w")
		require.NoError(t, err)
		require.Len(t, claims, 1)
		require.Equal(t, 1, claims[0].Attempt)
	}
	// lost's lease went to attempt 2 of another worker, whose lease and message
	// visibility are short; idle is no longer in progress.
	_, err := e.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET attempts = 2 WHERE workflow_step_uuid = $1`, lost.id(t, "s"))
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET state = 'enqueued_for_orchestration', in_process = false
		WHERE workflow_step_uuid = $1`, idle.id(t, "s"))
	require.NoError(t, err)

	lostBefore := getStep(t, e.pool, lost.id(t, "s"))
	lostMsgBefore, ok := liveMessage(t, e.pool, lost.msgID)
	require.True(t, ok)
	idleMsgBefore, ok := liveMessage(t, e.pool, idle.msgID)
	require.True(t, ok)

	const lease = time.Hour
	start := dbNow(t, e.pool)
	n, err := e.funcs.ExtendStepLeases(ctx, e.pool, []db.LeaseRef{
		{StepUUID: held.id(t, "s"), Attempt: 1, MsgID: held.msgID},
		{StepUUID: lost.id(t, "s"), Attempt: 1, MsgID: lost.msgID},
		{StepUUID: idle.id(t, "s"), Attempt: 1, MsgID: idle.msgID},
	}, lease)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the attempt holding its lease")

	s := getStep(t, e.pool, held.id(t, "s"))
	require.False(t, s.LeaseExpiresAt.Before(start.Add(lease)))
	m, ok := liveMessage(t, e.pool, held.msgID)
	require.True(t, ok)
	require.False(t, m.VT.Before(start.Add(lease)), "the held step's message stays hidden with its lease")

	require.Equal(t, lostBefore, getStep(t, e.pool, lost.id(t, "s")), "a lost lease is not extended")
	m, ok = liveMessage(t, e.pool, lost.msgID)
	require.True(t, ok)
	require.Equal(t, lostMsgBefore.VT, m.VT, "a lost lease must not keep the new holder's message hidden")
	m, ok = liveMessage(t, e.pool, idle.msgID)
	require.True(t, ok)
	require.Equal(t, idleMsgBefore.VT, m.VT, "a finished step's message is not extended")

	n, err = e.funcs.ExtendStepLeases(ctx, e.pool, nil, lease)
	require.NoError(t, err)
	require.Equal(t, 0, n)
}

// TestClaimStepLeaseLapsesOnItsOwn runs the reclaim path on real time: a short
// lease is claimed and another worker polls until the step comes back.
func TestClaimStepLeaseLapsesOnItsOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	f := e.enqueuedStep(t, q)
	claims, err := e.funcs.ClaimStep(ctx, e.pool, q, f.msgID, 200*time.Millisecond, "w1")
	require.NoError(t, err)
	require.Len(t, claims, 1)
	require.Equal(t, db.ClaimClaimed, claims[0].Outcome)

	deadline := time.Now().Add(15 * time.Second)
	var got *db.ClaimedStep
	for got == nil {
		require.True(t, time.Now().Before(deadline), "the step was not reclaimed before the deadline")
		cs, err := e.funcs.ClaimSteps(ctx, e.pool, q, 1, 200*time.Millisecond, "w2", 0)
		require.NoError(t, err)
		// busy is possible when the message's visibility ends a moment before the lease.
		if len(cs) == 1 && cs[0].Outcome != db.ClaimBusy {
			got = &cs[0]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, db.ClaimReclaimed, got.Outcome)
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, ptr("w2"), getStep(t, e.pool, f.id(t, "s")).WorkerID)
}

// A heartbeat and a result batch of one worker share steps. Listed in
// opposite orders, they would lock the rows in opposite orders and deadlock
// (one of them failing with SQLSTATE 40P01) if each locked as it went; both
// lock in the same fixed order instead. The interleaving is forced: a third
// transaction holds the first step while the batch and then the heartbeat
// queue up behind it.
func TestResultBatchAndHeartbeatDoNotDeadlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	rq := "orchestration_step_results"
	e.createQueue(t, rq)
	d := e.build(t, taskSpec{}, stepSpec{Name: "s1"}, stepSpec{Name: "s2"})
	out, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, []uuid.UUID{d.id(t, "s1"), d.id(t, "s2")}, q, nil)
	require.NoError(t, err)
	claims, err := e.funcs.ClaimStepMessages(ctx, e.pool, q, []int64{out[0].MsgID, out[1].MsgID}, time.Minute, "w")
	require.NoError(t, err)
	require.Len(t, claims, 2)
	sort.Slice(claims, func(i, j int) bool { return claims[i].StepUUID.String() < claims[j].StepUUID.String() })
	lo, hi := claims[0], claims[1]
	// lo gets a later lease and a newer row version, so that a statement
	// locking rows as it scans them (by lease, or in table order) meets hi
	// first.
	_, err = e.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET lease_expires_at = lease_expires_at + interval '1 minute'
		WHERE workflow_step_uuid = $1`, lo.StepUUID)
	require.NoError(t, err)

	blocker, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer blocker.Rollback(ctx) //nolint:errcheck
	_, err = blocker.Exec(ctx, "SELECT 1 FROM tasker.workflow_steps WHERE workflow_step_uuid = $1 FOR UPDATE", lo.StepUUID)
	require.NoError(t, err)
	waiting := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			var got int
			require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got))
			return got == n
		}, 30*time.Second, 10*time.Millisecond, "waiting for %d blocked statements", n)
	}

	sub := func(c db.ClaimedStep) db.StepResultSubmission {
		return db.StepResultSubmission{StepUUID: c.StepUUID, Attempt: c.Attempt, Success: true, Results: json.RawMessage(`{"result": 1}`),
			WorkerID: "w", Queue: q, MsgID: c.MsgID, ResultQueue: rq}
	}
	submitted := make(chan error, 1)
	go func() {
		_, err := e.funcs.SubmitStepResults(ctx, e.pool, "w", rq, []db.StepResultSubmission{sub(lo), sub(hi)})
		submitted <- err
	}()
	waiting(1)
	extended := make(chan error, 1)
	go func() {
		_, err := e.funcs.ExtendStepLeases(ctx, e.pool, []db.LeaseRef{
			{StepUUID: hi.StepUUID, Attempt: hi.Attempt, MsgID: hi.MsgID},
			{StepUUID: lo.StepUUID, Attempt: lo.Attempt, MsgID: lo.MsgID},
		}, time.Minute)
		extended <- err
	}()
	waiting(2)
	require.NoError(t, blocker.Rollback(ctx))
	require.NoError(t, <-submitted)
	require.NoError(t, <-extended)
	require.Equal(t, "enqueued_for_orchestration", getStep(t, e.pool, lo.StepUUID).State)
	require.Equal(t, "enqueued_for_orchestration", getStep(t, e.pool, hi.StepUUID).State)
}

func TestSubmitStepResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	rq := "orchestration_step_results"
	e.createQueue(t, rq)
	d := e.build(t, taskSpec{}, stepSpec{Name: "ok"}, stepSpec{Name: "bad"}, stepSpec{Name: "lost"})
	out, err := e.funcs.EnqueueSteps(ctx, e.pool, d.Task, []uuid.UUID{d.id(t, "ok"), d.id(t, "bad"), d.id(t, "lost")}, q, nil)
	require.NoError(t, err)
	ids := make([]int64, len(out))
	for i, o := range out {
		ids[i] = o.MsgID
	}
	claims, err := e.funcs.ClaimStepMessages(ctx, e.pool, q, ids, time.Minute, "w")
	require.NoError(t, err)
	require.Len(t, claims, 3)
	c := map[string]db.ClaimedStep{}
	for _, cl := range claims {
		c[cl.StepName] = cl
	}
	lostHistory := stepHistory(t, e.pool, d.id(t, "lost"))
	sub := func(name string, attempt int, success bool) db.StepResultSubmission {
		return db.StepResultSubmission{StepUUID: c[name].StepUUID, Attempt: attempt, Success: success,
			Results: json.RawMessage(`{"result": "` + name + `", "metadata": {"execution_time_ms": 5}}`), WorkerID: "w", Queue: q,
			MsgID: c[name].MsgID, ResultQueue: rq, Headers: map[string]string{"traceparent": "tp-" + name}}
	}
	batch := []db.StepResultSubmission{sub("ok", 1, true), sub("lost", 2, true), sub("bad", 1, false)}
	res, err := e.funcs.SubmitStepResults(ctx, e.pool, "w", rq, batch)
	require.NoError(t, err)
	require.Len(t, res, 3)
	for i, r := range res {
		require.Equal(t, batch[i].StepUUID, r.StepUUID, "rows in the batch's order")
	}
	require.Positive(t, res[0].MsgID)
	require.Zero(t, res[1].MsgID, "an attempt that lost its step writes nothing")
	require.Positive(t, res[2].MsgID)

	for _, tc := range []struct {
		name, state, reason string
		msg                 int64
		success             bool
	}{
		{"ok", "enqueued_for_orchestration", "handler_succeeded", res[0].MsgID, true},
		{"bad", "enqueued_as_error_for_orchestration", "handler_failed", res[2].MsgID, false},
	} {
		s := getStep(t, e.pool, c[tc.name].StepUUID)
		require.Equal(t, tc.state, s.State)
		require.False(t, s.InProcess)
		require.Nil(t, s.LeaseExpiresAt)
		require.JSONEq(t, `{"result": "`+tc.name+`", "metadata": {"execution_time_ms": 5}}`, string(s.Results))
		h := stepHistory(t, e.pool, c[tc.name].StepUUID)
		require.Equal(t, stepTransition{From: ptr("in_progress"), To: tc.state, Reason: ptr(tc.reason), Attempt: ptr(int32(1)),
			WorkerID: ptr("w"), Corr: &d.Corr, Metadata: []byte(`{"execution_time_ms": 5}`)}, h[len(h)-1])
		_, live := liveMessage(t, e.pool, c[tc.name].MsgID)
		require.False(t, live)
		require.False(t, archived(t, e.pool, q, c[tc.name].MsgID), "deleted, not archived")
		m, live := liveMessage(t, e.pool, tc.msg)
		require.True(t, live)
		success := "false"
		if tc.success {
			success = "true"
		}
		require.JSONEq(t, `{"task_uuid": "`+d.Task.String()+`", "step_uuid": "`+c[tc.name].StepUUID.String()+`", "correlation_id": "`+
			d.Corr.String()+`", "step_name": "`+tc.name+`", "attempt": 1, "success": `+success+`, "worker_id": "w"}`, string(m.Body))
		require.JSONEq(t, `{"traceparent": "tp-`+tc.name+`"}`, string(m.Headers))
	}
	require.Equal(t, "in_progress", getStep(t, e.pool, c["lost"].StepUUID).State)
	require.Equal(t, lostHistory, stepHistory(t, e.pool, c["lost"].StepUUID))
	_, live := liveMessage(t, e.pool, c["lost"].MsgID)
	require.True(t, live)
	require.Len(t, queueMessages(t, e.pool, rq), 2)

	// The same batch again changes nothing.
	res, err = e.funcs.SubmitStepResults(ctx, e.pool, "w", rq, batch)
	require.NoError(t, err)
	for _, r := range res {
		require.Zero(t, r.MsgID)
	}
	require.Len(t, queueMessages(t, e.pool, rq), 2)

	_, err = e.funcs.SubmitStepResults(ctx, e.pool, "w", "never_created", batch[:1])
	require.ErrorContains(t, err, "queue never_created does not exist")
}
