package bench

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/worker"
)

// consistencyChecks each count the rows that break one rule a task's state
// implies for its steps, history and messages.
var consistencyChecks = map[string]string{
	"a started step has an incomplete parent": `
		SELECT count(*) FROM tasker.workflow_steps s
		JOIN tasker.workflow_step_edges e ON e.to_step_uuid = s.workflow_step_uuid
		JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
		WHERE s.state <> 'pending' AND p.state <> 'complete'`,
	"a complete task has an incomplete step": `
		SELECT count(*) FROM tasker.tasks t JOIN tasker.workflow_steps s USING (task_uuid)
		WHERE t.state = 'complete' AND s.state <> 'complete'`,
	"a running task has no step in flight, or a failed one": `
		SELECT count(*) FROM tasker.tasks t WHERE t.state = 'steps_in_process' AND (
			NOT EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid
				AND s.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration'))
			OR EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid
				AND s.state IN ('error', 'waiting_for_retry', 'enqueued_as_error_for_orchestration')))`,
	"a waiting task has no retrying step, or one in flight or failed": `
		SELECT count(*) FROM tasker.tasks t WHERE t.state = 'waiting_for_retry' AND (
			NOT EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid AND s.state = 'waiting_for_retry')
			OR EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid
				AND s.state NOT IN ('waiting_for_retry', 'complete', 'pending')))`,
	"a failed task has no failed step, or one in flight": `
		SELECT count(*) FROM tasker.tasks t WHERE t.state = 'error' AND (
			NOT EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid AND s.state = 'error')
			OR EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid
				AND s.state NOT IN ('error', 'complete', 'pending')))`,
	"a running or waiting task has a ready step nobody enqueued": `
		SELECT count(*) FROM tasker.tasks t JOIN tasker.workflow_steps s USING (task_uuid)
		WHERE t.state IN ('steps_in_process', 'waiting_for_retry') AND s.state = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
			WHERE e.to_step_uuid = s.workflow_step_uuid AND p.state <> 'complete')`,
	"a pending task has a started step": `
		SELECT count(*) FROM tasker.tasks t JOIN tasker.workflow_steps s USING (task_uuid)
		WHERE t.state = 'pending' AND (s.state <> 'pending' OR s.attempts <> 0)`,
	"a step in flight lacks its one message (worker queue, or results queue once submitted)": `
		SELECT count(*) FROM tasker.workflow_steps s
		WHERE s.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration')
		  AND (SELECT count(*) FROM tasker.queue_messages q
			WHERE (q.message ->> 'step_uuid')::uuid = s.workflow_step_uuid
			  AND (q.queue_name = 'orchestration_step_results') = (s.state = 'enqueued_for_orchestration')) <> 1`,
	"a message belongs to no step in flight": `
		SELECT count(*) FROM tasker.queue_messages q
		WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = (q.message ->> 'step_uuid')::uuid
			AND s.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration'))`,
	"a running step's message is visible before its lease ends": `
		SELECT count(*) FROM tasker.workflow_steps s JOIN tasker.queue_messages q ON (q.message ->> 'step_uuid')::uuid = s.workflow_step_uuid
		WHERE s.state = 'in_progress' AND (q.vt <> s.lease_expires_at OR q.read_ct <> 1)`,
	"a task's history does not end in its state or does not chain": `
		SELECT count(*) FROM (
			SELECT t.state, h.to_state, h.from_state,
				lag(h.to_state) OVER (PARTITION BY h.task_uuid ORDER BY h.created_at, h.task_transition_id) AS prev,
				row_number() OVER (PARTITION BY h.task_uuid ORDER BY h.created_at DESC, h.task_transition_id DESC) AS rn
			FROM tasker.task_transitions h JOIN tasker.tasks t USING (task_uuid)) x
		WHERE (x.rn = 1 AND x.to_state <> x.state) OR x.from_state IS DISTINCT FROM x.prev`,
	"a step's history does not end in its state or does not chain": `
		SELECT count(*) FROM (
			SELECT s.state, h.to_state, h.from_state,
				lag(h.to_state) OVER (PARTITION BY h.workflow_step_uuid ORDER BY h.created_at, h.workflow_step_transition_id) AS prev,
				row_number() OVER (PARTITION BY h.workflow_step_uuid ORDER BY h.created_at DESC, h.workflow_step_transition_id DESC) AS rn
			FROM tasker.workflow_step_transitions h JOIN tasker.workflow_steps s USING (workflow_step_uuid)) x
		WHERE (x.rn = 1 AND x.to_state <> x.state) OR x.from_state IS DISTINCT FROM x.prev`,
	"a step's attempts disagree with its claims": `
		SELECT count(*) FROM tasker.workflow_steps s
		WHERE s.attempts <> (SELECT count(*) FROM tasker.workflow_step_transitions h
			WHERE h.workflow_step_uuid = s.workflow_step_uuid AND h.to_state = 'in_progress')`,
}

func checkConsistency(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for name, sql := range consistencyChecks {
		var n int64
		require.NoError(t, pool.QueryRow(t.Context(), sql).Scan(&n), name)
		require.Zero(t, n, "%s: %d rows", name, n)
	}
}

// The generator hits the state mix, leaves every task consistent with its
// steps, history and messages, builds the same dataset from the same seed,
// and a running engine finishes every generated task that is not final.
func TestGenerate(t *testing.T) {
	ctx := t.Context()
	const tasks = 300
	cfg := GenerateConfig{Tasks: tasks, Seed: 7, Lease: -time.Second, RetryDue: 1, RetryDueSet: true, ChunkTasks: 70}
	cfg.DatabaseURL = dbtest.NewDatabase(t)
	var reports []ProgressReport
	cfg.Progress = func(p ProgressReport) { reports = append(reports, p) }
	res, err := Generate(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, ProgressReport{Phase: "load", Done: tasks, Total: tasks}, reports[len(reports)-3])

	// The state mix, to within the rounding of a low-discrepancy sequence.
	byState := map[string]int64{}
	for _, st := range []string{"complete", "steps_in_process", "waiting_for_retry", "error", "pending"} {
		byState[st] = res.Stats.TasksByState[st]
	}
	want := map[string]float64{"complete": 0.60, "steps_in_process": 0.20, "waiting_for_retry": 0.10, "error": 0.05, "pending": 0.05}
	for st, frac := range want {
		require.InDelta(t, frac*tasks, float64(byState[st]), 3, "tasks in state %s: %v", st, res.Stats.TasksByState)
	}
	require.EqualValues(t, tasks, res.Stats.Tasks)
	for _, shape := range AllShapes {
		require.InDelta(t, tasks/4, float64(res.Stats.TasksByShape[shape]), 3, "tasks of shape %s", shape)
	}
	require.Positive(t, res.Stats.StepsByState["enqueued"])
	require.Positive(t, res.Stats.StepsByState["in_progress"])
	require.Positive(t, res.Stats.StepsByState["enqueued_for_orchestration"])
	tables := map[string]TableSize{}
	for _, tb := range res.Stats.Tables {
		tables[tb.Table] = tb
	}
	require.EqualValues(t, res.Stats.Steps, tables["workflow_steps"].Rows)
	require.Positive(t, tables["queue_messages"].Rows)
	require.Positive(t, tables["workflow_step_transitions"].TableBytes)

	pool, err := db.NewPool(ctx, cfg.DatabaseURL, 20)
	require.NoError(t, err)
	defer pool.Close()
	checkConsistency(t, pool)

	// What the SQL functions make of each generated state.
	funcs := db.NewFuncs(nil)
	rows, err := pool.Query(ctx, `SELECT task_uuid, state FROM tasker.tasks`)
	require.NoError(t, err)
	type ts struct {
		id    [16]byte
		state string
	}
	var all []ts
	for rows.Next() {
		var x ts
		require.NoError(t, rows.Scan(&x.id, &x.state))
		all = append(all, x)
	}
	require.NoError(t, rows.Err())
	wantStatus := map[string]string{"complete": "all_complete", "steps_in_process": "processing",
		"waiting_for_retry": "has_ready_steps", "error": "blocked_by_failures", "pending": "has_ready_steps"}
	for _, x := range all {
		ec, ok, err := funcs.GetTaskExecutionContext(ctx, pool, x.id)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, wantStatus[x.state], ec.ExecutionStatus, "task in state %s", x.state)
	}

	// Same seed, same dataset.
	cfg2 := cfg
	cfg2.DatabaseURL, cfg2.Progress, cfg2.ChunkTasks = dbtest.NewDatabase(t), nil, 1000
	_, err = Generate(ctx, cfg2)
	require.NoError(t, err)
	pool2, err := db.NewPool(ctx, cfg2.DatabaseURL, 2)
	require.NoError(t, err)
	defer pool2.Close()
	const digest = `SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
		SELECT t.task_uuid::text || t.state || s.workflow_step_uuid::text || s.name || s.state || s.attempts AS x
		FROM tasker.tasks t JOIN tasker.workflow_steps s USING (task_uuid)) d`
	var d1, d2 string
	require.NoError(t, pool.QueryRow(ctx, digest).Scan(&d1))
	require.NoError(t, pool2.QueryRow(ctx, digest).Scan(&d2))
	require.Equal(t, d1, d2, "two runs with one seed differ")

	// A running engine finishes every task that is not final yet.
	reg := handler.NewRegistry()
	require.NoError(t, RegisterGenerated(reg))
	var namespaces []string
	for k := range res.Namespaces {
		namespaces = append(namespaces, GenNamespace(k))
	}
	svc, err := orchestration.New(pool, orchestration.Config{})
	require.NoError(t, err)
	e, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{ReadinessInterval: 100 * time.Millisecond, FallbackInterval: 100 * time.Millisecond,
			FallbackMinAge: 10 * time.Millisecond},
		Worker: &worker.Config{Namespaces: namespaces, Dispatcher: worker.RegistryDispatcher{Registry: reg},
			PollInterval: 100 * time.Millisecond, PollMinAge: 10 * time.Millisecond, Submitter: svc},
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Stop()) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var open int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE state NOT IN ('complete', 'error')`).Scan(&open))
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			var states []string
			rows, _ := pool.Query(context.Background(), `SELECT state || ':' || count(*) FROM tasker.tasks GROUP BY state`)
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				states = append(states, s)
			}
			t.Fatalf("%d generated tasks not finished after 90s: %v", open, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var complete, failed int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'complete'), count(*) FILTER (WHERE state = 'error')
		FROM tasker.tasks`).Scan(&complete, &failed))
	require.Equal(t, byState["error"], failed, "only the generated failures end in error")
	require.Equal(t, int64(tasks)-byState["error"], complete)
	checkConsistency(t, pool)
}
