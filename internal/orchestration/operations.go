package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// Operator actions on tasks: cancel, retry from failed steps, resolve a
// failed step by hand. Each is one transaction that locks the task row (as
// result processing does, so they serialize with it), writes its state
// changes by compare-and-swap with history rows naming the reason and actor,
// and logs a lifecycle event once it commits.

// Operation describes who asks for an operator action and why.
type Operation struct {
	// Reason is free text recorded in the history (at most 128 characters).
	Reason string
	// Actor names who asked (a user, a service); "api" when empty.
	Actor string
}

func (o Operation) meta(kind string) map[string]any {
	m := map[string]any{"reason": kind, "actor": o.Actor}
	if m["actor"] == "" {
		m["actor"] = "api"
	}
	if o.Reason != "" {
		m["message"] = o.Reason
	}
	return m
}

// CodeStateConflict is the FieldError code of an operation the task's or
// step's state does not allow (cancel a completed task, retry a running one).
const CodeStateConflict = client.CodeStateConflict

func stateConflict(field, format string, args ...any) error {
	return &taskreq.FieldError{Field: field, Code: CodeStateConflict, Kind: taskreq.Conflict, Message: fmt.Sprintf(format, args...)}
}

// maxCancelDepth bounds how deep CancelTask follows child workflows, so a
// correlation cycle (a child naming an ancestor as parent) cannot loop.
const maxCancelDepth = 16

// CancelTask cancels a task that has not finished: its steps that have not
// finished are cancelled, so pending and enqueued ones never run (a worker
// claiming one finds it stale), results that arrive later are ignored, and
// workers running one cancel its handler's context at their next lease
// heartbeat. Steps in error keep their error. With children, tasks whose
// parent correlation ID is this task's are cancelled too, recursively.
// Cancelling a cancelled task changes nothing (cancelled reports false);
// cancelling a finished one is a Conflict FieldError.
func (s *Service) CancelTask(ctx context.Context, taskUUID uuid.UUID, op Operation, children bool) (cancelled bool, err error) {
	if err := validateOperation(op); err != nil {
		return false, err
	}
	ev := s.events()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := s.lockTask(ctx, tx, taskUUID, false)
		if err != nil {
			return err
		}
		if t == nil {
			return fmt.Errorf("task %s: %w", taskUUID, db.ErrNotFound)
		}
		switch {
		case t.state == state.TaskCancelled:
			return nil
		case t.state.Terminal():
			return stateConflict("task_uuid", "task %s is %s: only an unfinished task can be cancelled", taskUUID, t.state)
		}
		cancelled = true
		return s.cancelLocked(ctx, tx, t, op, children, 0, ev)
	})
	if err != nil {
		return false, err
	}
	ev.flush()
	return cancelled, nil
}

func (s *Service) cancelLocked(ctx context.Context, tx pgx.Tx, t *taskRow, op Operation, children bool, depth int, ev *txEvents) error {
	meta := op.meta("cancelled")
	ok, err := s.funcs.TransitionTaskStateAtomic(ctx, tx, t.uuid, string(t.state), string(state.TaskCancelled), s.cfg.ProcessorUUID, meta)
	if err != nil {
		return fmt.Errorf("cancelling task %s: %w", t.uuid, err)
	}
	if !ok {
		return fmt.Errorf("cancelling task %s: state changed concurrently", t.uuid)
	}
	steps, err := s.funcs.CancelTaskSteps(ctx, tx, db.TaskStepsChange{TaskUUID: t.uuid, CorrelationID: t.correlationID,
		Metadata: op.meta("task_cancelled")})
	if err != nil {
		return err
	}
	from := t.state
	t.state = state.TaskCancelled
	s.afterTerminal(ctx, t, ev)
	ev.add(func() {
		s.m.TaskOperation(ctx, t.correlationID, t.namespace, t.name, "cancel")
		s.log.InfoContext(ctx, "task cancelled", "correlation_id", t.correlationID, "task_uuid", t.uuid,
			"namespace", t.namespace, "operation", "cancel_task", "event", "task.cancelled", "from_state", from,
			"steps_cancelled", steps, "actor", meta["actor"], "reason", op.Reason)
	})
	if !children || depth >= maxCancelDepth {
		return nil
	}
	kids, err := s.funcs.UnfinishedChildTasks(ctx, tx, t.correlationID)
	if err != nil {
		return fmt.Errorf("finding children of task %s: %w", t.uuid, err)
	}
	childOp := op
	if childOp.Reason == "" {
		childOp.Reason = "parent task " + t.uuid.String() + " cancelled"
	}
	for _, id := range kids {
		kid, err := s.lockTask(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if kid == nil || kid.state.Terminal() {
			continue
		}
		if err := s.cancelLocked(ctx, tx, kid, childOp, true, depth+1, ev); err != nil {
			return err
		}
	}
	return nil
}

// RetryTask runs a task in error again from its failed steps: each step in
// error goes back to pending with a fresh budget of attempts (its attempt
// count keeps counting, so a late result of an earlier attempt can never be
// taken for the new one), completed steps keep their results, and the steps
// that are ready are enqueued in the same transaction.
func (s *Service) RetryTask(ctx context.Context, taskUUID uuid.UUID, op Operation) error {
	if err := validateOperation(op); err != nil {
		return err
	}
	ev := s.events()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := s.lockTask(ctx, tx, taskUUID, false)
		if err != nil {
			return err
		}
		if t == nil {
			return fmt.Errorf("task %s: %w", taskUUID, db.ErrNotFound)
		}
		if t.state != state.TaskError {
			return stateConflict("task_uuid", "task %s is %s: only a task in error can be retried", taskUUID, t.state)
		}
		steps, err := s.funcs.ResetFailedSteps(ctx, tx, db.TaskStepsChange{TaskUUID: t.uuid, CorrelationID: t.correlationID,
			Metadata: op.meta("operator_retry")})
		if err != nil {
			return err
		}
		if err := s.reopen(ctx, tx, t, op.meta("operator_retry")); err != nil {
			return err
		}
		ev.add(func() {
			s.m.TaskOperation(ctx, t.correlationID, t.namespace, t.name, "retry")
			s.log.InfoContext(ctx, "task retried", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"namespace", t.namespace, "operation", "retry_task", "event", "task.retried", "steps_reset", steps,
				"actor", op.meta("")["actor"], "reason", op.Reason)
		})
		return s.evaluateTask(ctx, tx, t, ev)
	})
	if err != nil {
		return err
	}
	ev.flush()
	s.afterEvaluation(ev)
	return nil
}

// ResolveStep marks a failed step (state error) of a task resolved manually
// with result as its result, so that the steps depending on it may run: the
// task is reopened when it had failed and evaluated at once. step is the
// step's name or UUID.
func (s *Service) ResolveStep(ctx context.Context, taskUUID uuid.UUID, step string, result json.RawMessage, op Operation) error {
	if err := validateOperation(op); err != nil {
		return err
	}
	if len(result) == 0 || !json.Valid(result) {
		return &taskreq.FieldError{Field: "result", Code: client.CodeMissingField, Kind: taskreq.Missing, Message: "result is required: the JSON value the step produces"}
	}
	ev := s.events()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := s.lockTask(ctx, tx, taskUUID, false)
		if err != nil {
			return err
		}
		if t == nil {
			return fmt.Errorf("task %s: %w", taskUUID, db.ErrNotFound)
		}
		st, err := s.funcs.LockStep(ctx, tx, db.StepLookup{TaskUUID: t.uuid, Step: step})
		if errors.Is(err, db.ErrNotFound) {
			return &taskreq.FieldError{Field: "step", Code: client.CodeNotFound, Kind: taskreq.NotFound,
				Message: fmt.Sprintf("task %s has no step %q", taskUUID, step)}
		}
		if err != nil {
			return err
		}
		if st.State != state.StepError {
			return stateConflict("step", "step %s is %s: only a step in error can be resolved", st.Name, st.State)
		}
		if t.state.Terminal() && t.state != state.TaskError {
			return stateConflict("task_uuid", "task %s is %s", taskUUID, t.state)
		}
		meta := op.meta("resolved_manually")
		stored, err := json.Marshal(map[string]any{"step_uuid": st.UUID, "success": true, "status": "resolved_manually",
			"result": result, "metadata": map[string]any{"attempt": st.Attempts, "resolved_by": meta["actor"], "reason": op.Reason}})
		if err != nil {
			return fmt.Errorf("resolving step %s of task %s: encoding its result: %w", st.Name, taskUUID, err)
		}
		ok, err := s.funcs.ResolveStep(ctx, tx, db.ResolveStepParams{TaskUUID: t.uuid, StepUUID: st.UUID,
			CorrelationID: t.correlationID, Attempt: st.Attempts, Results: stored, Metadata: meta})
		if err != nil {
			return fmt.Errorf("resolving step %s of task %s: %w", st.Name, taskUUID, err)
		}
		if !ok {
			return fmt.Errorf("resolving step %s of task %s: state changed concurrently", st.Name, taskUUID)
		}
		switch t.state {
		case state.TaskError:
			if err := s.reopen(ctx, tx, t, op.meta("step_resolved")); err != nil {
				return err
			}
		case state.TaskBlockedByFailures:
			if err := s.moveTask(ctx, tx, t, "step_resolved", state.TaskEvaluatingResults); err != nil {
				return err
			}
		}
		ev.add(func() {
			s.m.TaskOperation(ctx, t.correlationID, t.namespace, t.name, "resolve")
			s.log.InfoContext(ctx, "step resolved manually", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"step_uuid", st.UUID, "step_name", st.Name, "namespace", t.namespace, "operation", "resolve_step",
				"event", "step.resolved_manually", "actor", meta["actor"], "reason", op.Reason)
		})
		return s.evaluateTask(ctx, tx, t, ev)
	})
	if err != nil {
		return err
	}
	ev.flush()
	s.afterEvaluation(ev)
	return nil
}

// reopen takes a task in error back to waiting_for_dependencies, whence
// evaluateTask moves it on.
func (s *Service) reopen(ctx context.Context, tx pgx.Tx, t *taskRow, meta map[string]any) error {
	if t.state != state.TaskError {
		return nil
	}
	to := state.TaskWaitingForDependencies
	if err := state.CheckTask(t.state, to); err != nil {
		return err
	}
	ok, err := s.funcs.TransitionTaskStateAtomic(ctx, tx, t.uuid, string(t.state), string(to), s.cfg.ProcessorUUID, meta)
	if err != nil {
		return fmt.Errorf("reopening task %s: %w", t.uuid, err)
	}
	if !ok {
		return fmt.Errorf("reopening task %s: state changed concurrently", t.uuid)
	}
	t.state = to
	return nil
}

// afterEvaluation does what a result processor does once its transaction
// committed: wake the readiness poller at the earliest retry time.
func (s *Service) afterEvaluation(ev *txEvents) {
	if ev.retryIn > 0 {
		s.wakeAt(ev.retryIn)
	}
}

func validateOperation(op Operation) error {
	for _, f := range []struct{ name, value string }{{"reason", op.Reason}, {"actor", op.Actor}} {
		if err := taskreq.CheckText(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}
