package orchestration

import (
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/state"
)

// The pure decisions of result processing and task evaluation: what a
// result does to its step, and what a task's step states ask of it. They
// are table-tested in decide_test.go; the service applies them.

// Result outcomes, as reported by tasker_step_results_processed_total.
const (
	outcomeSuccess   = "success"
	outcomeRetry     = "retry"
	outcomeFailure   = "failure"
	outcomeDuplicate = "duplicate"
)

// resultDecision is what a worker's result does to its step.
type resultDecision struct {
	outcome string
	to      state.Step
	reason  string
	// retry is set when the step waits for a retry (the caller computes
	// the backoff: it is random).
	retry bool
}

// decideResult decides a stored result's effect on a step in state from. A
// step not waiting for orchestration has had its result applied already (a
// duplicate delivery) or was superseded: nothing to do.
func decideResult(st db.ResultStep, res *messages.StepExecutionResult) resultDecision {
	switch st.State {
	case state.StepEnqueuedForOrchestration:
		if !res.Success {
			return resultDecision{outcome: outcomeFailure, to: state.StepError, reason: "result_reported_failure"}
		}
		return resultDecision{outcome: outcomeSuccess, to: state.StepComplete, reason: "result_success"}
	case state.StepEnqueuedAsErrorForOrchestration:
		retryable := res.Error != nil && res.Error.Retryable && res.Metadata.Retryable
		switch {
		case !retryable:
			return resultDecision{outcome: outcomeFailure, to: state.StepError, reason: "non_retryable_failure"}
		case !st.Retryable:
			return resultDecision{outcome: outcomeFailure, to: state.StepError, reason: "step_not_retryable"}
		case st.Attempts >= st.MaxAttempts:
			return resultDecision{outcome: outcomeFailure, to: state.StepError, reason: "retries_exhausted"}
		default:
			return resultDecision{outcome: outcomeRetry, to: state.StepWaitingForRetry, reason: "retryable_failure", retry: true}
		}
	default:
		return resultDecision{outcome: outcomeDuplicate}
	}
}

// taskAction is what evaluation does with a task.
type taskAction int

const (
	// actNone leaves the task as it is.
	actNone taskAction = iota
	// actEnqueue enqueues the ready steps and moves the task to steps_in_process.
	actEnqueue
	// actFinalize moves the task to its final state.
	actFinalize
	// actMove moves the task to a waiting or evaluating state.
	actMove
)

// taskDecision is what a task's step states ask of it.
type taskDecision struct {
	action taskAction
	// status is get_task_execution_context's execution status.
	status string
	// path and reason are the move (for actEnqueue, actFinalize and actMove).
	path   []state.Task
	reason string
	ready  []uuid.UUID
	// retryAt is the earliest retry due, when the task waits for one.
	retryAt *time.Time
}

// decideTask decides, for a task in state from whose steps are rows, what
// to do next. The task is locked by the caller, so the decision to finalize
// needs no second look (claim_task_for_finalization's check).
func decideTask(from state.Task, rows []db.StepReadiness) taskDecision {
	status, ready, inFlight, retrying := summarize(rows)
	d := taskDecision{status: status}
	switch status {
	case "has_ready_steps":
		d.action, d.ready, d.reason = actEnqueue, ready, "ready_steps_found"
		d.path = append(state.TaskPath(from, state.TaskEnqueuingSteps), state.TaskStepsInProcess)
	case "all_complete":
		d.action, d.reason, d.path = actFinalize, "all_steps_complete", state.TaskPath(from, state.TaskComplete)
	case "blocked_by_failures":
		if inFlight == 0 {
			d.action, d.reason, d.path = actFinalize, "step_failed_permanently", state.TaskPath(from, state.TaskError)
		} else {
			d.action, d.reason, d.path = actMove, "step_failed_permanently", state.TaskPath(from, state.TaskBlockedByFailures)
		}
	case "processing":
		if from == state.TaskStepsInProcess || from.Waiting() {
			d.action, d.reason, d.path = actMove, "step_result_received", []state.Task{state.TaskEvaluatingResults}
		}
	default: // waiting_for_dependencies
		if retrying > 0 {
			d.action, d.reason, d.path = actMove, "awaiting_retry_backoff", state.TaskPath(from, state.TaskWaitingForRetry)
			for _, r := range rows {
				if r.NextRetryAt != nil && r.CurrentState == string(state.StepWaitingForRetry) &&
					(d.retryAt == nil || r.NextRetryAt.Before(*d.retryAt)) {
					d.retryAt = r.NextRetryAt
				}
			}
		} else {
			d.action, d.reason, d.path = actMove, "no_ready_steps", state.TaskPath(from, state.TaskWaitingForDependencies)
		}
	}
	if d.action == actMove && len(taskHops(uuid.Nil, from, d.reason, d.path)) == 0 {
		d.action = actNone
	}
	return d
}

// summarize computes get_task_execution_context's execution status from
// readiness rows, so the hot path reads the steps once.
func summarize(rows []db.StepReadiness) (status string, ready []uuid.UUID, inFlight, retrying int) {
	var failed, completed int
	for _, r := range rows {
		switch state.Step(r.CurrentState) {
		case state.StepError:
			failed++
		case state.StepComplete, state.StepResolvedManually:
			completed++
		case state.StepWaitingForRetry:
			retrying++
		}
		if state.Step(r.CurrentState).InFlight() {
			inFlight++
		}
		if r.ReadyForExecution {
			ready = append(ready, r.StepUUID)
		}
	}
	switch {
	case failed > 0:
		status = "blocked_by_failures"
	case len(ready) > 0:
		status = "has_ready_steps"
	case inFlight > 0:
		status = "processing"
	case len(rows) > 0 && completed == len(rows):
		status = "all_complete"
	default:
		status = "waiting_for_dependencies"
	}
	return status, ready, inFlight, retrying
}

// taskHops turns a path into its hops from state from, skipping states the
// task is already in. Hops through states that only pass on name their own
// reason; the others carry reason.
func taskHops(task uuid.UUID, from state.Task, reason string, path []state.Task) []db.TaskHop {
	var hops []db.TaskHop
	cur := from
	for _, to := range path {
		if to == cur {
			continue
		}
		why := reason
		switch {
		case to == state.TaskInitializing:
			why = "initialize"
		case to == state.TaskEvaluatingResults && cur == state.TaskStepsInProcess:
			why = "step_result_received"
		case to == state.TaskStepsInProcess && cur == state.TaskEnqueuingSteps:
			why = "steps_enqueued"
		}
		hops = append(hops, db.TaskHop{TaskUUID: task, From: cur, To: to, Reason: why})
		cur = to
	}
	return hops
}

// checkHops verifies every hop is an allowed transition.
func checkHops(hops []db.TaskHop) error {
	for _, h := range hops {
		if err := state.CheckTask(h.From, h.To); err != nil {
			return err
		}
	}
	return nil
}
