package orchestration

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/state"
)

func TestDecideResult(t *testing.T) {
	t.Parallel()
	retryable := &messages.ResultError{Message: "boom", Retryable: true}
	permanent := &messages.ResultError{Message: "boom", Retryable: false}
	failed := func(e *messages.ResultError, metaRetryable bool) *messages.StepExecutionResult {
		r := &messages.StepExecutionResult{Success: false, Error: e}
		r.Metadata.Retryable = metaRetryable
		return r
	}
	step := func(s state.Step, attempts, maxAttempts int, retryableStep bool) db.ResultStep {
		return db.ResultStep{State: s, Attempts: attempts, MaxAttempts: maxAttempts, Retryable: retryableStep}
	}
	for _, tc := range []struct {
		name    string
		step    db.ResultStep
		res     *messages.StepExecutionResult
		outcome string
		to      state.Step
		reason  string
		retry   bool
	}{
		{"success", step(state.StepEnqueuedForOrchestration, 1, 3, true), &messages.StepExecutionResult{Success: true},
			outcomeSuccess, state.StepComplete, "result_success", false},
		{"success queue but result says failure", step(state.StepEnqueuedForOrchestration, 1, 3, true), failed(retryable, true),
			outcomeFailure, state.StepError, "result_reported_failure", false},
		{"retryable failure with attempts left", step(state.StepEnqueuedAsErrorForOrchestration, 1, 3, true), failed(retryable, true),
			outcomeRetry, state.StepWaitingForRetry, "retryable_failure", true},
		{"retryable failure on the last attempt", step(state.StepEnqueuedAsErrorForOrchestration, 3, 3, true), failed(retryable, true),
			outcomeFailure, state.StepError, "retries_exhausted", false},
		{"permanent failure", step(state.StepEnqueuedAsErrorForOrchestration, 1, 3, true), failed(permanent, true),
			outcomeFailure, state.StepError, "non_retryable_failure", false},
		{"retryable error but metadata says not", step(state.StepEnqueuedAsErrorForOrchestration, 1, 3, true), failed(retryable, false),
			outcomeFailure, state.StepError, "non_retryable_failure", false},
		{"failure without an error", step(state.StepEnqueuedAsErrorForOrchestration, 1, 3, true), failed(nil, true),
			outcomeFailure, state.StepError, "non_retryable_failure", false},
		{"step not retryable", step(state.StepEnqueuedAsErrorForOrchestration, 1, 3, false), failed(retryable, true),
			outcomeFailure, state.StepError, "step_not_retryable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decideResult(tc.step, tc.res)
			require.Equal(t, tc.outcome, d.outcome)
			require.Equal(t, tc.to, d.to)
			require.Equal(t, tc.reason, d.reason)
			require.Equal(t, tc.retry, d.retry)
			require.NoError(t, state.CheckStep(tc.step.State, d.to), "the decided transition is allowed")
		})
	}
	// Every step state other than the two a result can find is a duplicate delivery.
	for _, s := range state.StepStates {
		if s == state.StepEnqueuedForOrchestration || s == state.StepEnqueuedAsErrorForOrchestration {
			continue
		}
		d := decideResult(step(s, 1, 3, true), &messages.StepExecutionResult{Success: true})
		require.Equal(t, outcomeDuplicate, d.outcome, "state %s", s)
	}
}

func TestDecideTask(t *testing.T) {
	t.Parallel()
	soon := time.Now().Add(time.Second)
	later := soon.Add(time.Minute)
	row := func(s state.Step, ready bool) db.StepReadiness {
		return db.StepReadiness{StepUUID: uuid.New(), CurrentState: string(s), ReadyForExecution: ready}
	}
	retrying := func(at time.Time) db.StepReadiness {
		r := row(state.StepWaitingForRetry, false)
		r.NextRetryAt = &at
		return r
	}
	for _, tc := range []struct {
		name   string
		from   state.Task
		rows   []db.StepReadiness
		action taskAction
		status string
		final  state.Task
		reason string
	}{
		{"new task enqueues its roots", state.TaskPending,
			[]db.StepReadiness{row(state.StepPending, true), row(state.StepPending, false)},
			actEnqueue, "has_ready_steps", state.TaskStepsInProcess, "ready_steps_found"},
		{"a completed parent readies the next step", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepComplete, false), row(state.StepPending, true)},
			actEnqueue, "has_ready_steps", state.TaskStepsInProcess, "ready_steps_found"},
		{"all steps complete", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepComplete, false), row(state.StepResolvedManually, false)},
			actFinalize, "all_complete", state.TaskComplete, "all_steps_complete"},
		{"a failure with nothing in flight ends the task", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepComplete, false), row(state.StepError, false)},
			actFinalize, "blocked_by_failures", state.TaskError, "step_failed_permanently"},
		{"a failure while a sibling still runs blocks it", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepError, false), row(state.StepInProgress, false)},
			actMove, "blocked_by_failures", state.TaskBlockedByFailures, "step_failed_permanently"},
		{"a sibling still running", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepComplete, false), row(state.StepInProgress, false)},
			actMove, "processing", state.TaskEvaluatingResults, "step_result_received"},
		{"already evaluating and a sibling runs", state.TaskEvaluatingResults,
			[]db.StepReadiness{row(state.StepInProgress, false)},
			actNone, "processing", "", ""},
		{"waiting for a retry", state.TaskStepsInProcess,
			[]db.StepReadiness{retrying(later), retrying(soon), row(state.StepPending, false)},
			actMove, "waiting_for_dependencies", state.TaskWaitingForRetry, "awaiting_retry_backoff"},
		{"waiting for dependencies", state.TaskStepsInProcess,
			[]db.StepReadiness{row(state.StepPending, false)},
			actMove, "waiting_for_dependencies", state.TaskWaitingForDependencies, "no_ready_steps"},
		{"already waiting for dependencies", state.TaskWaitingForDependencies,
			[]db.StepReadiness{row(state.StepPending, false)},
			actNone, "waiting_for_dependencies", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decideTask(tc.from, tc.rows)
			require.Equal(t, tc.action, d.action)
			require.Equal(t, tc.status, d.status)
			if tc.action == actNone {
				return
			}
			require.Equal(t, tc.reason, d.reason)
			require.Equal(t, tc.final, d.path[len(d.path)-1])
			hops := taskHops(uuid.Nil, tc.from, d.reason, d.path)
			require.NotEmpty(t, hops)
			require.NoError(t, checkHops(hops), "every hop of the path is allowed")
			require.Equal(t, tc.from, hops[0].From)
			for i := 1; i < len(hops); i++ {
				require.Equal(t, hops[i-1].To, hops[i].From, "hops chain")
			}
			if tc.action == actEnqueue {
				require.NotEmpty(t, d.ready)
			}
			if tc.final == state.TaskWaitingForRetry {
				require.Equal(t, soon, *d.retryAt, "the earliest retry wakes the poller")
			}
		})
	}
}

func TestTaskHopsNameThePassThroughStates(t *testing.T) {
	t.Parallel()
	hops := taskHops(uuid.Nil, state.TaskPending, "ready_steps_found",
		[]state.Task{state.TaskInitializing, state.TaskEnqueuingSteps, state.TaskStepsInProcess})
	var reasons []string
	for _, h := range hops {
		reasons = append(reasons, h.Reason)
	}
	require.Equal(t, []string{"initialize", "ready_steps_found", "steps_enqueued"}, reasons)
	require.Empty(t, taskHops(uuid.Nil, state.TaskComplete, "x", []state.Task{state.TaskComplete}), "no hop to where it is")
}

func TestGatherTakesWhatIsWaitingWithoutWaiting(t *testing.T) {
	t.Parallel()
	ch := make(chan int64, 10)
	require.Equal(t, []int64{1}, gather(1, ch, 5), "idle: the first alone, at once")
	for i := int64(2); i <= 8; i++ {
		ch <- i
	}
	require.Equal(t, []int64{1, 2, 3, 4}, gather(1, ch, 4), "up to the limit")
	require.Equal(t, []int64{9, 5, 6, 7, 8}, gather(9, ch, 10), "then the rest")
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	const s = time.Second
	for _, tc := range []struct {
		name         string
		base, cap    time.Duration
		attempt      int
		jitter, draw float64
		want         time.Duration
	}{
		{"first attempt waits base", s, 30 * s, 1, 0, 0.5, s},
		{"doubles per attempt", s, 30 * s, 3, 0, 0.5, 4 * s},
		{"capped", s, 30 * s, 10, 0, 0.5, 30 * s},
		{"attempt 0 counts as the first", s, 30 * s, 0, 0, 0.5, s},
		{"jitter at its low end", s, 30 * s, 2, 0.15, 0, 1700 * time.Millisecond},
		{"jitter at its high end", s, 30 * s, 2, 0.15, 1, 2300 * time.Millisecond},
		{"jitter in the middle changes nothing", s, 30 * s, 2, 0.15, 0.5, 2 * s},
		{"jitter applies after the cap", s, 4 * s, 5, 0.25, 1, 5 * s},
		{"never negative", s, 30 * s, 1, 2, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, backoffDelay(tc.base, tc.cap, tc.attempt, tc.jitter, tc.draw))
		})
	}
}
