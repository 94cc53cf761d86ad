package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/worker"
)

// step2 replaces linear.square so that linear_step_2 does what the test
// says; the other steps square as usual.
func step2(t *testing.T, b *testBundle, do func(ctx context.Context, step *handler.StepContext) (any, error)) {
	t.Helper()
	square := examples.Handlers()["linear.square"]
	b.replaceHandler(t, "linear.square", handler.Func(func(ctx context.Context, step *handler.StepContext) (any, error) {
		if step.StepName == "linear_step_2" {
			return do(ctx, step)
		}
		return square.Handle(ctx, step)
	}))
}

func stepByName(t *testing.T, steps []client.Step, name string) client.Step {
	t.Helper()
	for _, s := range steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s", name)
	return client.Step{}
}

func requireStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, status, apiErr.Status, apiErr.Message)
	require.Equal(t, code, apiErr.Code)
}

// TestCancelWhileAStepRuns cancels a task whose second step is running: the
// handler's context is cancelled through the worker's lease heartbeat, the
// steps after it never run, and the attempt's late result is refused.
func TestCancelWhileAStepRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	running := make(chan struct{})
	stopped := make(chan error, 1)
	step2(t, b, func(ctx context.Context, _ *handler.StepContext) (any, error) {
		close(running)
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, ctx.Err()
	})
	_, c := apiFor(t, b, engineOpts{work: true, lease: 900 * time.Millisecond})
	ctx := context.Background()
	task, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	select {
	case <-running:
	case <-time.After(20 * time.Second):
		t.Fatal("step 2 never started")
	}

	cancelled, err := c.CancelTask(ctx, task.TaskUUID, client.CancelRequest{Reason: "wrong input", Actor: "alice"})
	require.NoError(t, err)
	require.Equal(t, "cancelled", cancelled.State)
	require.NotNil(t, cancelled.CompletedAt)
	last := cancelled.Transitions[len(cancelled.Transitions)-1]
	require.Equal(t, "cancelled", last.To)
	require.JSONEq(t, `{"reason":"cancelled","actor":"alice","message":"wrong input"}`, string(last.Meta))

	select {
	case cause := <-stopped:
		require.ErrorIs(t, cause, worker.ErrTaskCancelled)
	case <-time.After(20 * time.Second):
		t.Fatal("the running handler was not asked to stop")
	}

	steps, err := c.ListSteps(ctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", stepByName(t, steps, "linear_step_1").State)
	for _, name := range []string{"linear_step_2", "linear_step_3", "linear_step_4"} {
		s := stepByName(t, steps, name)
		require.Equal(t, "cancelled", s.State, name)
		if name != "linear_step_2" {
			require.Zero(t, s.Attempts, "%s never ran", name)
		}
	}
	// A result of the cancelled attempt is refused.
	s2 := stepByName(t, steps, "linear_step_2")
	_, ok, err := db.NewFuncs(nil).SubmitStepResult(ctx, b.pool, db.StepResultSubmission{StepUUID: s2.StepUUID, Attempt: s2.Attempts,
		Success: true, Results: json.RawMessage(`{"result":"16"}`), WorkerID: "late", Queue: "worker_linear_workflow_queue",
		ResultQueue: "orchestration_step_results"})
	require.NoError(t, err)
	require.False(t, ok, "a late result of a cancelled step is ignored")

	// Idempotent; and the state stays.
	again, err := c.CancelTask(ctx, task.TaskUUID, client.CancelRequest{})
	require.NoError(t, err)
	require.Equal(t, "cancelled", again.State)
	require.Len(t, again.Transitions, len(cancelled.Transitions), "a repeat writes nothing")
}

func TestCancelRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()

	t.Run("FinishedTaskIs409", func(t *testing.T) {
		task, err := c.CreateTask(ctx, newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", final.State)
		_, err = c.CancelTask(ctx, task.TaskUUID, client.CancelRequest{})
		requireStatus(t, err, http.StatusConflict, client.CodeStateConflict)
		_, err = c.RetryTask(ctx, task.TaskUUID, client.RetryRequest{})
		requireStatus(t, err, http.StatusConflict, client.CodeStateConflict)
	})

	t.Run("UnknownTaskIs404", func(t *testing.T) {
		_, err := c.CancelTask(ctx, uuid.New(), client.CancelRequest{})
		requireStatus(t, err, http.StatusNotFound, client.CodeNotFound)
	})
}

// TestCancelChildren cancels a parent with children: true; its child tasks,
// created under its correlation ID, are cancelled with it.
func TestCancelChildren(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, c := apiFor(t, b, engineOpts{}) // no worker: nothing runs, everything stays unfinished
	ctx := context.Background()
	parent, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	var kids []uuid.UUID
	for range 2 {
		req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2}).WithParentCorrelationID(parent.CorrelationID)
		kid, err := c.CreateTask(ctx, req)
		require.NoError(t, err)
		kids = append(kids, kid.TaskUUID)
	}
	other, err := c.CreateTask(ctx, newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2}))
	require.NoError(t, err)

	_, err = c.CancelTask(ctx, parent.TaskUUID, client.CancelRequest{Children: true})
	require.NoError(t, err)
	for _, id := range kids {
		kid, err := c.GetTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "cancelled", kid.State)
	}
	o, err := c.GetTask(ctx, other.TaskUUID)
	require.NoError(t, err)
	require.NotEqual(t, "cancelled", o.State)
}

// TestRetryFromFailedStep fails step 2 permanently once, then retries the
// task: step 1 keeps its result and attempt, step 2 runs again, the task
// completes with the right result, and a late result of the first attempt
// cannot land on the new one.
func TestRetryFromFailedStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var fail atomic.Bool
	fail.Store(true)
	square := examples.Handlers()["linear.square"]
	step2(t, b, func(ctx context.Context, step *handler.StepContext) (any, error) {
		if fail.Load() {
			return nil, handler.Permanent(errors.New("the upstream service said no"))
		}
		return square.Handle(ctx, step)
	})
	_, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()
	task, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	failed, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "error", failed.State)
	before, err := c.ListSteps(ctx, task.TaskUUID)
	require.NoError(t, err)
	s1, s2 := stepByName(t, before, "linear_step_1"), stepByName(t, before, "linear_step_2")

	fail.Store(false)
	retried, err := c.RetryTask(ctx, task.TaskUUID, client.RetryRequest{Reason: "upstream fixed", Actor: "bob"})
	require.NoError(t, err)
	require.False(t, retried.Terminal(), retried.State)
	final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "complete", final.State)
	require.JSONEq(t, `"65536"`, string(final.Result["linear_step_4"]))

	after, err := c.ListSteps(ctx, task.TaskUUID)
	require.NoError(t, err)
	a1, a2 := stepByName(t, after, "linear_step_1"), stepByName(t, after, "linear_step_2")
	require.Equal(t, s1.Attempts, a1.Attempts, "a completed step is not run again")
	require.Equal(t, s1.Result, a1.Result)
	require.Equal(t, s2.Attempts+1, a2.Attempts, "attempts keep counting")
	require.Equal(t, s2.MaxAttempts+s2.Attempts, a2.MaxAttempts, "with a fresh budget")

	// The first attempt's result, arriving now, is refused.
	_, ok, err := db.NewFuncs(nil).SubmitStepResult(ctx, b.pool, db.StepResultSubmission{StepUUID: s2.StepUUID, Attempt: s2.Attempts,
		Success: true, Results: json.RawMessage(`{"result":"1"}`), WorkerID: "late", Queue: "worker_linear_workflow_queue",
		ResultQueue: "orchestration_step_results"})
	require.NoError(t, err)
	require.False(t, ok)

	// Many retries later the budget still grows past the template limit.
	_, err = b.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET state = 'error', attempts = 100, max_attempts = 100
		WHERE workflow_step_uuid = $1`, s2.StepUUID)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tasker.tasks SET state = 'error' WHERE task_uuid = $1`, task.TaskUUID)
	require.NoError(t, err)
	_, err = c.RetryTask(ctx, task.TaskUUID, client.RetryRequest{})
	require.NoError(t, err)
	again, err := c.WaitTask(ctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", again.State)
	s2 = stepByName(t, mustSteps(t, c, task.TaskUUID), "linear_step_2")
	require.Equal(t, 200, s2.MaxAttempts)

	var retries int
	for _, tr := range final.Transitions {
		if tr.Reason == "operator_retry" {
			retries++
			require.JSONEq(t, `{"reason":"operator_retry","actor":"bob","message":"upstream fixed"}`, string(tr.Meta))
		}
	}
	require.Equal(t, 1, retries)
}

// TestResolveFailedStep resolves a failed step by hand: the steps after it
// run on the given result and the task completes.
func TestResolveFailedStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	step2(t, b, func(context.Context, *handler.StepContext) (any, error) {
		return nil, handler.Permanent(errors.New("cannot compute"))
	})
	_, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()
	task, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	failed, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "error", failed.State)

	_, err = c.ResolveStep(ctx, task.TaskUUID, "linear_step_1", client.ResolveRequest{Result: json.RawMessage(`"4"`)})
	requireStatus(t, err, http.StatusConflict, client.CodeStateConflict)
	_, err = c.ResolveStep(ctx, task.TaskUUID, "no_such_step", client.ResolveRequest{Result: json.RawMessage(`"4"`)})
	requireStatus(t, err, http.StatusNotFound, client.CodeNotFound)

	_, err = c.ResolveStep(ctx, task.TaskUUID, "linear_step_2", client.ResolveRequest{Result: json.RawMessage(`"3"`), Reason: "computed by hand"})
	require.NoError(t, err)
	final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "complete", final.State)
	require.JSONEq(t, `"81"`, string(final.Result["linear_step_4"]), "(3²)² from the resolved result")
	steps, err := c.ListSteps(ctx, task.TaskUUID)
	require.NoError(t, err)
	s2 := stepByName(t, steps, "linear_step_2")
	require.Equal(t, "resolved_manually", s2.State)
	require.JSONEq(t, `"3"`, string(s2.Result))
}

func mustSteps(t *testing.T, c *client.Client, id uuid.UUID) []client.Step {
	t.Helper()
	steps, err := c.ListSteps(context.Background(), id)
	require.NoError(t, err)
	return steps
}
