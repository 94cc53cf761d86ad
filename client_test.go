package tasker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskerhq/tasker"
	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/template"
)

// etlTemplate is a user's own workflow, built as Go values: fetch → transform → store.
func etlTemplate(version string) *template.Template {
	return &template.Template{
		Namespace: "etl", Name: "pipeline", Version: version,
		Steps: []template.Step{
			template.NewStep("fetch", "etl.fetch"),
			template.NewStep("transform", "etl.transform", "fetch"),
			template.NewStep("store", "etl.store", "transform"),
		},
	}
}

type row struct {
	ID    int    `json:"id"`
	Value string `json:"value"`
}

func etlHandlers(t *testing.T) *handler.Registry {
	t.Helper()
	reg := handler.NewRegistry()
	reg.MustRegister("etl.fetch", handler.Typed(func(_ context.Context, _ *handler.StepContext, in struct {
		Count int `json:"count"`
	}) ([]row, error) {
		if in.Count < 1 {
			return nil, handler.Permanent(errors.New("count must be positive"))
		}
		rows := make([]row, in.Count)
		for i := range rows {
			rows[i] = row{ID: i + 1, Value: strings.Repeat("x", i+1)}
		}
		return rows, nil
	}))
	reg.MustRegister("etl.transform", handler.Func(func(_ context.Context, s *handler.StepContext) (any, error) {
		rows, err := handler.DependencyResult[[]row](s, "fetch")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		total := 0
		for _, r := range rows {
			total += len(r.Value)
		}
		return map[string]int{"rows": len(rows), "chars": total}, nil
	}))
	reg.MustRegister("etl.store", handler.Func(func(_ context.Context, s *handler.StepContext) (any, error) {
		sum, err := handler.DependencyResult[map[string]int](s, "transform")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		return handler.Output{Value: sum["chars"], Metadata: map[string]any{"stored_rows": sum["rows"]}}, nil
	}))
	return reg
}

type testBundle struct {
	pool *pgxpool.Pool
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{pool: dbtest.NewPool(t)}
}

func startClient(t *testing.T, pool *pgxpool.Pool, cfg *tasker.Config) *tasker.Client {
	t.Helper()
	c, err := tasker.NewClient(pool, cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	return c
}

func etlRequest(t *testing.T, count int) client.TaskRequest {
	t.Helper()
	req, err := client.NewTaskRequest("etl", "pipeline", "", map[string]int{"count": count})
	require.NoError(t, err)
	return req
}

// waitTerminal polls until the task is terminal or the deadline passes.
func waitTerminal(t *testing.T, c *tasker.Client, id uuid.UUID) *client.Task {
	t.Helper()
	var task *client.Task
	require.Eventually(t, func() bool {
		var err error
		task, err = c.GetTask(context.Background(), id)
		require.NoError(t, err)
		return task.Terminal()
	}, 30*time.Second, 20*time.Millisecond, "task never finished")
	return task
}

func TestOwnWorkflowRunsToCompletion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := startClient(t, b.pool, &tasker.Config{
		Templates: []*template.Template{etlTemplate("1.0.0")}, Handlers: etlHandlers(t),
		Worker: &tasker.WorkerConfig{Concurrency: 4}, Orchestration: &tasker.OrchestrationConfig{},
	})
	created, err := c.CreateTask(context.Background(), etlRequest(t, 3))
	require.NoError(t, err)
	task := waitTerminal(t, c, created.TaskUUID)
	require.Equal(t, "complete", task.State)
	require.Equal(t, created.CorrelationID, task.CorrelationID)
	require.JSONEq(t, `6`, string(task.Result["store"]), "1+2+3 characters")

	steps, err := c.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	require.Len(t, steps, 3)

	// A bad input fails permanently: the task ends in error with the handler's message.
	created, err = c.CreateTask(context.Background(), etlRequest(t, 0))
	require.NoError(t, err)
	task = waitTerminal(t, c, created.TaskUUID)
	require.Equal(t, "error", task.State)
	require.NotNil(t, task.Error)
	require.Contains(t, task.Error.Message, "count must be positive")
}

func TestCreateTasksInOneBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := startClient(t, b.pool, &tasker.Config{
		Templates: []*template.Template{etlTemplate("1.0.0")}, Handlers: etlHandlers(t),
		Worker: &tasker.WorkerConfig{Concurrency: 4}, Orchestration: &tasker.OrchestrationConfig{},
	})
	ctx := context.Background()
	reqs := []client.TaskRequest{etlRequest(t, 1), etlRequest(t, 2), etlRequest(t, 3)}
	created, err := c.CreateTasks(ctx, reqs)
	require.NoError(t, err)
	require.Len(t, created, 3)
	for i, cr := range created {
		require.Equal(t, *reqs[i].CorrelationID, cr.CorrelationID, "request order")
		task := waitTerminal(t, c, cr.TaskUUID)
		require.Equal(t, "complete", task.State)
	}

	// A refused request refuses the batch, naming it; nothing is created.
	reqs = []client.TaskRequest{etlRequest(t, 1), etlRequest(t, 2)}
	reqs[1].Name = "nope"
	_, err = c.CreateTasks(ctx, reqs)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, client.CodeInvalidItems, apiErr.Code)
	require.Equal(t, 1, apiErr.Items[0].Index)
	require.Equal(t, "tasks[1].name", apiErr.Items[0].Field)
	list, err := c.ListTasks(ctx, client.TaskFilter{CorrelationID: reqs[0].CorrelationID})
	require.NoError(t, err)
	require.Empty(t, list.Tasks, "nothing was created")
}

func TestCreateTaskTxFollowsTheCallersTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c := startClient(t, b.pool, &tasker.Config{
		Templates: []*template.Template{etlTemplate("1.0.0")}, Handlers: etlHandlers(t),
		Worker: &tasker.WorkerConfig{}, Orchestration: &tasker.OrchestrationConfig{},
	})
	_, err := b.pool.Exec(ctx, `CREATE TABLE public.orders (id int PRIMARY KEY)`)
	require.NoError(t, err)

	// Rolled back: neither the order nor the task exists.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO public.orders VALUES (1)`)
	require.NoError(t, err)
	lost, err := c.CreateTaskTx(ctx, tx, etlRequest(t, 2))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	_, err = c.GetTask(ctx, lost.TaskUUID)
	require.ErrorIs(t, err, tasker.ErrNotFound)

	// A bad request inside the transaction leaves it usable.
	tx, err = b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO public.orders VALUES (2)`)
	require.NoError(t, err)
	bad := etlRequest(t, 2)
	bad.Name = "no_such_template"
	_, err = c.CreateTaskTx(ctx, tx, bad)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "name", apiErr.Field)
	created, err := c.CreateTaskTx(ctx, tx, etlRequest(t, 2))
	require.NoError(t, err)
	// Not visible to anyone before the commit, so no worker runs it yet.
	_, err = c.GetTask(ctx, created.TaskUUID)
	require.ErrorIs(t, err, tasker.ErrNotFound)
	require.NoError(t, tx.Commit(ctx))

	task := waitTerminal(t, c, created.TaskUUID)
	require.Equal(t, "complete", task.State)
	var orders int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM public.orders`).Scan(&orders))
	require.Equal(t, 1, orders)
}

func TestBadConfigurationWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	countTemplates := func() int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.named_tasks`).Scan(&n))
		return n
	}

	// A step whose handler is not registered: Start names it and registers nothing.
	partial := handler.NewRegistry()
	partial.MustRegister("etl.fetch", handler.Func(func(context.Context, *handler.StepContext) (any, error) { return nil, nil }))
	c, err := tasker.NewClient(b.pool, &tasker.Config{Templates: []*template.Template{etlTemplate("1.0.0")},
		Handlers: partial, Worker: &tasker.WorkerConfig{}})
	require.NoError(t, err)
	err = c.Start(ctx)
	require.ErrorIs(t, err, tasker.ErrMissingHandlers)
	require.ErrorContains(t, err, `"etl.transform" (step transform of etl/pipeline@1.0.0)`)
	require.ErrorContains(t, err, `"etl.store"`)
	require.Zero(t, countTemplates())

	// A cycle and a missing dependency are refused by NewClient, naming the steps.
	cyclic := etlTemplate("1.0.0")
	cyclic.Steps[0].DependsOn = []string{"store"}
	_, err = tasker.NewClient(b.pool, &tasker.Config{Templates: []*template.Template{cyclic}})
	require.ErrorContains(t, err, "cycle")
	missing := etlTemplate("1.0.0")
	missing.Steps[2].DependsOn = []string{"load"}
	_, err = tasker.NewClient(b.pool, &tasker.Config{Templates: []*template.Template{missing}})
	require.ErrorContains(t, err, `unknown step "load"`)

	// A worker needs handlers, and namespaces when it has no templates.
	_, err = tasker.NewClient(b.pool, &tasker.Config{Worker: &tasker.WorkerConfig{}})
	require.ErrorContains(t, err, "Handlers is required")
	_, err = tasker.NewClient(b.pool, &tasker.Config{Worker: &tasker.WorkerConfig{}, Handlers: handler.NewRegistry()})
	require.ErrorContains(t, err, "Worker.Namespaces is required")
	require.Zero(t, countTemplates())

	// The same version with other content is refused; identical content is a no-op.
	c, err = tasker.NewClient(b.pool, nil)
	require.NoError(t, err)
	require.NoError(t, c.RegisterTemplates(ctx, etlTemplate("1.0.0")))
	require.NoError(t, c.RegisterTemplates(ctx, etlTemplate("1.0.0")))
	changed := etlTemplate("1.0.0")
	changed.Steps[1].Retry.MaxAttempts = 7
	err = c.RegisterTemplates(ctx, changed)
	require.ErrorIs(t, err, tasker.ErrTemplateConflict)
	require.ErrorContains(t, err, "etl/pipeline@1.0.0")
	require.NoError(t, c.RegisterTemplates(ctx, etlTemplate("1.1.0")), "a new version is accepted")
	require.Equal(t, 2, countTemplates())
}

// Not parallel: goleak must see only this test's goroutines.
func TestStopWaitsForRunningSteps(t *testing.T) {
	b := setup(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	reg := handler.NewRegistry()
	reg.MustRegister("slow.step", handler.Func(func(ctx context.Context, _ *handler.StepContext) (any, error) {
		close(started)
		<-release
		finished.Store(true)
		return "done", nil
	}))
	tpl := &template.Template{Namespace: "slow", Name: "one", Version: "1.0.0",
		Steps: []template.Step{template.NewStep("only", "slow.step")}}
	c, err := tasker.NewClient(b.pool, &tasker.Config{Templates: []*template.Template{tpl}, Handlers: reg,
		Worker: &tasker.WorkerConfig{ShutdownGrace: time.Minute}, Orchestration: &tasker.OrchestrationConfig{}})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	req, err := client.NewTaskRequest("slow", "one", "", map[string]any{})
	require.NoError(t, err)
	_, err = c.CreateTask(ctx, req)
	require.NoError(t, err)
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(ctx) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a step was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-stopped)
	require.True(t, finished.Load(), "the running step finished before Stop returned")
}
