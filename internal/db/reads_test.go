package db_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
)

// seedTasks inserts n tasks spread over the env's named task and nine more
// of other namespaces, over the last n seconds, mostly complete.
func seedTasks(t *testing.T, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `
		WITH ns AS (
			INSERT INTO tasker.task_namespaces (task_namespace_uuid, name)
			SELECT gen_random_uuid(), 'ns_' || i FROM generate_series(1, 9) i RETURNING task_namespace_uuid)
		INSERT INTO tasker.named_tasks (named_task_uuid, task_namespace_uuid, name, version, configuration)
		SELECT gen_random_uuid(), task_namespace_uuid, 'flow', '1.0.0', '{}' FROM ns`)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `
		WITH nt AS (SELECT array_agg(named_task_uuid ORDER BY named_task_uuid) a FROM tasker.named_tasks)
		INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, complete, correlation_id, parent_correlation_id, created_at)
		SELECT gen_random_uuid(), nt.a[1 + i % array_length(nt.a, 1)],
			CASE WHEN i % 100 = 0 THEN 'error' WHEN i % 50 = 1 THEN 'steps_in_process' ELSE 'complete' END,
			i % 50 <> 1, gen_random_uuid(), CASE WHEN i % 10 = 0 THEN gen_random_uuid() END,
			now() - make_interval(secs => $1 - i)
		FROM generate_series(1, $1) i, nt`, n)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `ANALYZE tasker.tasks`)
	require.NoError(t, err)
}

// TestListTasksPlans checks that every filter of the task listing is served
// by an index at a table size where a sequential scan would be the planner's
// choice without one, and that a deep page is as cheap as the first.
func TestListTasksPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 100_000
	seedTasks(t, e, n)
	ctx := context.Background()

	var someCorr, someParent uuid.UUID
	var midAt time.Time
	var midUUID uuid.UUID
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT correlation_id FROM tasker.tasks LIMIT 1`).Scan(&someCorr))
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT parent_correlation_id FROM tasker.tasks WHERE parent_correlation_id IS NOT NULL LIMIT 1`).Scan(&someParent))
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT created_at, task_uuid FROM tasker.tasks ORDER BY created_at OFFSET $1 LIMIT 1`, n/2).
		Scan(&midAt, &midUUID))
	windowStart := midAt.Add(-2 * time.Hour)

	cases := []struct {
		name string
		p    db.ListTasksParams
		want int // rows expected (limit 51)
	}{
		{"everything", db.ListTasksParams{}, 51},
		{"deep page", db.ListTasksParams{After: &db.TaskKey{CreatedAt: midAt, TaskUUID: midUUID}}, 51},
		{"rare state", db.ListTasksParams{States: []string{"error"}}, 51},
		{"rare state deep page", db.ListTasksParams{States: []string{"error"}, After: &db.TaskKey{CreatedAt: midAt, TaskUUID: midUUID}}, 51},
		{"namespace", db.ListTasksParams{Namespace: e.ns}, 51},
		{"namespace and name", db.ListTasksParams{Namespace: "ns_3", Name: "flow"}, 51},
		{"namespace and state", db.ListTasksParams{Namespace: e.ns, States: []string{"error", "steps_in_process"}}, 51},
		{"several states", db.ListTasksParams{States: []string{"error", "steps_in_process"}}, 51},
		{"name in several namespaces", db.ListTasksParams{Name: "flow"}, 51},
		{"correlation id", db.ListTasksParams{CorrelationID: &someCorr}, 1},
		{"parent correlation id", db.ListTasksParams{ParentCorrelationID: &someParent}, 1},
		{"time window", db.ListTasksParams{CreatedAfter: &windowStart, CreatedBefore: &midAt}, 51},
	}
	for _, c := range cases {
		c.p.Limit = 51
		sql, args, err := db.ListTasksQuery(ctx, e.pool, c.p)
		require.NoError(t, err, c.name)
		var raw []byte
		require.NoError(t, e.pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args).Scan(&raw), c.name)
		var plans []struct {
			Plan planNode `json:"Plan"`
		}
		require.NoError(t, json.Unmarshal(raw, &plans), c.name)
		root := plans[0].Plan
		var scanned int
		root.walk(func(p planNode) {
			require.False(t, p.NodeType == "Seq Scan" && p.Relation == "tasks", "%s: sequential scan of tasks:\n%s", c.name, raw)
			if p.Relation == "tasks" {
				scanned += p.ActualRows*max(p.ActualLoops, 1) + p.RowsRemovedByFilter
			}
		})
		require.Equal(t, c.want, root.ActualRows, c.name)
		// An index that serves the order reads about a page; one that does
		// not would read every match of the filter (thousands here).
		require.Less(t, scanned, 2_000, "%s: %d task rows read for one page:\n%s", c.name, scanned, raw)
		rows, err := db.ListTasks(ctx, e.pool, c.p)
		require.NoError(t, err, c.name)
		require.Len(t, rows, c.want, c.name)
		for i := 1; i < len(rows); i++ {
			require.False(t, rows[i].CreatedAt.After(rows[i-1].CreatedAt), "%s: newest first", c.name)
		}
	}
}

type planNode struct {
	NodeType            string     `json:"Node Type"`
	Relation            string     `json:"Relation Name"`
	ActualRows          int        `json:"Actual Rows"`
	ActualLoops         int        `json:"Actual Loops"`
	RowsRemovedByFilter int        `json:"Rows Removed by Filter"`
	Plans               []planNode `json:"Plans"`
}

func (p planNode) walk(f func(planNode)) {
	f(p)
	for _, c := range p.Plans {
		c.walk(f)
	}
}
