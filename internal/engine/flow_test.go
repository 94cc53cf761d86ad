package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/worker"
)

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	created, task := runTask(t, e, "retry_workflow/retry_mechanics", 6)
	require.Equal(t, "complete", task.State)
	steps, err := be.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, 3, steps[0].Attempts)
	require.JSONEq(t, `{"attempts_before_success": 3}`, string(steps[0].Result))
	var retries, claims int
	for _, tr := range steps[0].Transitions {
		if tr.To == "waiting_for_retry" {
			retries++
		}
		if tr.To == "in_progress" {
			claims++
		}
	}
	require.Equal(t, 2, retries)
	require.Equal(t, 3, claims)
	// The task waited visibly for the retry.
	var waited bool
	for _, tr := range task.Transitions {
		waited = waited || tr.To == "waiting_for_retry"
	}
	require.True(t, waited, "task transitions: %+v", task.Transitions)
}

func TestPermanentFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	created, task := runTask(t, e, "retry_workflow/retry_exhaustion", 6)
	require.Equal(t, "error", task.State)
	require.Equal(t, "blocked_by_failures", task.ExecutionStatus)
	require.NotNil(t, task.Error)
	require.Equal(t, "always_fail", task.Error.Step)
	require.Equal(t, 3, task.Error.Attempt)
	require.NotEmpty(t, task.Error.Message)
	require.NotNil(t, task.CompletedAt)
	steps, err := be.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "error", steps[0].State)
	require.Equal(t, 3, steps[0].Attempts)
	var path []string
	for _, tr := range task.Transitions {
		path = append(path, tr.To)
	}
	require.Contains(t, path, "blocked_by_failures")
	require.Equal(t, "error", path[len(path)-1])
}

func TestNonRetryableFailureStopsDescendants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The diamond's start step fails permanently: nothing downstream runs.
	b.replaceHandler(t, "diamond.square", handler.Func(func(_ context.Context, s *handler.StepContext) (any, error) {
		return nil, handler.Permanent(errors.New("bad input"))
	}))
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	created, task := runTask(t, e, "diamond_workflow/diamond_pattern", 6)
	require.Equal(t, "error", task.State)
	steps, err := be.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	states := map[string]string{}
	for _, s := range steps {
		states[s.Name] = s.State
		if s.Name == "diamond_start" {
			require.Equal(t, 1, s.Attempts, "a permanent failure is not retried")
		}
	}
	require.Equal(t, map[string]string{"diamond_start": "error", "diamond_branch_b": "pending",
		"diamond_branch_c": "pending", "diamond_end": "pending"}, states)
}

func TestPanicAndTimeoutAreRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	b.replaceHandler(t, "single.square", handler.Func(func(ctx context.Context, s *handler.StepContext) (any, error) {
		switch calls.Add(1) {
		case 1:
			panic("boom")
		case 2:
			<-ctx.Done() // exceeds the step timeout below
			return "too late", nil
		}
		return "ok", nil
	}))
	// Shorten the single step's timeout and backoff through a template of our own.
	tpl := *b.templates["single_workflow/single_step"]
	tpl.Name = "single_fast_timeout"
	tpl.Steps = append(tpl.Steps[:0:0], tpl.Steps...)
	tpl.Steps[0].Timeout = 300 * time.Millisecond
	tpl.Steps[0].Retry.BackoffBase = 10 * time.Millisecond
	tpl.Steps[0].Retry.BackoffCap = 20 * time.Millisecond
	registerTemplate(t, b, &tpl)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	created, task := runTask(t, e, "single_workflow/single_fast_timeout", 6)
	require.Equal(t, "complete", task.State)
	require.EqualValues(t, 3, calls.Load())
	steps, err := be.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, 3, steps[0].Attempts)
}

// countingDispatcher records how often each step's handler ran.
type countingDispatcher struct {
	inner worker.Dispatcher
	mu    sync.Mutex
	runs  map[uuid.UUID]int
}

func (d *countingDispatcher) Dispatch(ctx context.Context, s *handler.StepContext, name string) (any, error) {
	d.mu.Lock()
	d.runs[s.StepUUID]++
	d.mu.Unlock()
	return d.inner.Dispatch(ctx, s, name)
}

func (d *countingDispatcher) Has(name string) bool { return d.inner.Has(name) }

func TestTwoServersTwoWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.recordSent(t)
	counter := &countingDispatcher{inner: worker.RegistryDispatcher{Registry: b.registry}, runs: map[uuid.UUID]int{}}
	s1 := b.start(t, engineOpts{orchestrate: true})
	s2 := b.start(t, engineOpts{orchestrate: true})
	b.start(t, engineOpts{work: true, dispatcher: counter})
	b.start(t, engineOpts{work: true, dispatcher: counter})

	refs := []string{"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern",
		"tree_workflow/hierarchical_tree", "mixed_dag_workflow/complex_dag"}
	const n = 200
	ids := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			srv := s1
			if i%2 == 1 {
				srv = s2
			}
			c, err := srv.Orchestrator.CreateTask(context.Background(), newRequest(t, refs[i%len(refs)], map[string]any{"even_number": 2 + 2*(i%10)}))
			if err != nil {
				errs <- err
				return
			}
			ids[i] = c.TaskUUID
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	be := s1.Backend()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var open int
		require.NoError(t, b.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM tasker.tasks WHERE task_uuid = ANY($1) AND state NOT IN ('complete','error')`, ids).Scan(&open))
		if open == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d tasks still open", open)
		time.Sleep(50 * time.Millisecond)
	}
	var steps int
	for i, id := range ids {
		task, err := be.GetTask(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, "complete", task.State, "task %d", i)
		steps += task.TotalSteps
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	require.Len(t, counter.runs, steps, "every step ran")
	for id, n := range counter.runs {
		require.Equal(t, 1, n, "step %s ran %d times", id, n)
	}
	// Nothing is left in the queues.
	var depth int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM tasker.queue_messages`).Scan(&depth))
	require.Zero(t, depth)

	// Every result was applied once: one completion per step in history.
	var completions, repeated int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*), count(*) - count(DISTINCT workflow_step_uuid)
		FROM tasker.workflow_step_transitions WHERE task_uuid = ANY($1) AND to_state = 'complete'`, ids).Scan(&completions, &repeated))
	require.Equal(t, steps, completions)
	require.Zero(t, repeated)

	// Every result delivered twice more, in one batch, changes nothing.
	before := map[uuid.UUID]string{}
	for _, id := range ids[:20] {
		before[id] = historyCounts(t, b, id)
	}
	rows, err := b.pool.Query(context.Background(), `INSERT INTO tasker.queue_messages (queue_name, message, headers)
		SELECT a.queue_name, a.message, a.headers FROM public.sent_messages a CROSS JOIN generate_series(1, 2)
		WHERE a.queue_name = 'orchestration_step_results' AND (a.message->>'task_uuid')::uuid = ANY($1) RETURNING msg_id`, ids[:20])
	require.NoError(t, err)
	replay, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.NotEmpty(t, replay)
	require.NoError(t, s1.Orchestrator.ProcessResultMessages(context.Background(), replay))
	for _, id := range ids[:20] {
		require.Equal(t, before[id], historyCounts(t, b, id), "task %s", id)
	}
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM tasker.queue_messages`).Scan(&depth))
	require.Zero(t, depth, "the duplicates are acknowledged")
}

// blockingDispatcher blocks the first attempt of every step until its
// context ends (a worker that dies mid-step), and runs later attempts normally.
type blockingDispatcher struct {
	inner   worker.Dispatcher
	started chan uuid.UUID
}

func (d *blockingDispatcher) Dispatch(ctx context.Context, s *handler.StepContext, name string) (any, error) {
	if s.Attempt == 1 {
		d.started <- s.StepUUID
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return d.inner.Dispatch(ctx, s, name)
}

func (d *blockingDispatcher) Has(name string) bool { return d.inner.Has(name) }

func TestWorkerStoppedMidStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t, engineOpts{orchestrate: true})
	blocker := &blockingDispatcher{inner: worker.RegistryDispatcher{Registry: b.registry}, started: make(chan uuid.UUID, 1)}
	lease := 500 * time.Millisecond
	doomed := b.start(t, engineOpts{work: true, dispatcher: blocker, lease: lease, grace: -1,
		namespaces: []string{"linear_workflow"}})
	created, err := b.start(t, engineOpts{orchestrate: true}).Orchestrator.CreateTask(context.Background(),
		newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err)
	var stepUUID uuid.UUID
	select {
	case stepUUID = <-blocker.started:
	case <-time.After(10 * time.Second):
		t.Fatal("first step never started")
	}
	// The worker goes away with the step in progress and never reports it.
	require.NoError(t, doomed.Stop())
	var st string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`, stepUUID).Scan(&st))
	require.Equal(t, "in_progress", st)

	rescuer := b.start(t, engineOpts{work: true, lease: lease, namespaces: []string{"linear_workflow"}})
	_ = rescuer
	be := b.start(t, engineOpts{orchestrate: true}).Backend()
	task := waitTerminal(t, be, created.TaskUUID, 30*time.Second)
	require.Equal(t, "complete", task.State)
	steps, err := be.ListSteps(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	for _, s := range steps {
		if s.StepUUID == stepUUID {
			require.Equal(t, 2, s.Attempts)
			var reasons []string
			for _, tr := range s.Transitions {
				reasons = append(reasons, tr.Reason)
			}
			require.Contains(t, reasons, "lease_expired_reclaim")
		}
	}
	var res string
	require.NoError(t, json.Unmarshal(task.Result["linear_step_4"], &res))
	require.Equal(t, "2821109907456", res)
}

func TestDuplicateResultChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.recordSent(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	created, task := runTask(t, e, "single_workflow/single_step", 4)
	require.Equal(t, "complete", task.State)
	before := historyCounts(t, b, created.TaskUUID)
	// Replay the archived result message as if it were delivered again.
	var msgID int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO tasker.queue_messages (queue_name, message, headers)
		SELECT queue_name, message, headers FROM public.sent_messages
		WHERE queue_name = 'orchestration_step_results' AND message->>'task_uuid' = $1 RETURNING msg_id`,
		created.TaskUUID.String()).Scan(&msgID))
	require.NoError(t, e.Orchestrator.ProcessResultMessage(context.Background(), msgID))
	require.Equal(t, before, historyCounts(t, b, created.TaskUUID))
	task2, err := be.GetTask(context.Background(), created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", task2.State)
	var left int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM tasker.queue_messages WHERE msg_id = $1`, msgID).Scan(&left))
	require.Zero(t, left, "the duplicate is acknowledged")
}

func historyCounts(t *testing.T, b *testBundle, id uuid.UUID) string {
	var tt, st int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = $1),
		(SELECT count(*) FROM tasker.workflow_step_transitions WHERE task_uuid = $1)`, id).Scan(&tt, &st))
	return fmt.Sprintf("%d/%d", tt, st)
}

var _ = client.Task{}

func TestWorkerUnknownNamespace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := engine.Start(context.Background(), engine.Config{Pool: b.pool, Worker: &worker.Config{
		Namespaces: []string{"no_such_namespace"}, Dispatcher: worker.RegistryDispatcher{Registry: b.registry}}})
	require.ErrorIs(t, err, worker.ErrUnknownNamespace)
	require.ErrorContains(t, err, "no_such_namespace")
	_, err = engine.Start(context.Background(), engine.Config{Pool: b.pool, Worker: &worker.Config{
		Namespaces: []string{"Bad Name"}, Dispatcher: worker.RegistryDispatcher{Registry: b.registry}}})
	require.ErrorContains(t, err, "worker.namespaces")
}
