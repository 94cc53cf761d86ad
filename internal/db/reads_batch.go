package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Reads of many tasks at once, for answers that list many tasks (a batch
// creation): one statement per kind of row for all of them, instead of one
// per task.

// GetTasks reads the tasks ids names, keyed by UUID; missing ones are left out.
func GetTasks(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID]*TaskRow, error) {
	rows, err := q.Query(ctx, "SELECT "+taskColumns+taskFrom+"WHERE t.task_uuid = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("reading %d tasks: %w", len(ids), err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskRow, error) { return scanTask(r) })
	if err != nil {
		return nil, fmt.Errorf("reading %d tasks: %w", len(ids), err)
	}
	out := make(map[uuid.UUID]*TaskRow, len(list))
	for i := range list {
		out[list[i].TaskUUID] = &list[i]
	}
	return out, nil
}

// GetTaskExecutionContexts is GetTaskExecutionContext for many tasks in one
// statement, keyed by task UUID.
func (f *Funcs) GetTaskExecutionContexts(ctx context.Context, q Querier, ids []uuid.UUID) (out map[uuid.UUID]ExecutionContext, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "get_task_execution_context"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT c.task_uuid, c.named_task_uuid, c.status, c.total_steps, c.pending_steps, c.enqueued_steps,
		c.in_progress_steps, c.awaiting_orchestration_steps, c.waiting_for_retry_steps, c.completed_steps, c.failed_steps,
		c.ready_steps, c.execution_status, c.recommended_action, c.completion_percentage::float8, c.health_status
		FROM unnest($1::uuid[]) AS u(id) CROSS JOIN LATERAL tasker.get_task_execution_context(u.id) c`, ids)
	if err != nil {
		return nil, fmt.Errorf("get_task_execution_context of %d tasks: %w", len(ids), err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExecutionContext, error) {
		var c ExecutionContext
		err := r.Scan(&c.TaskUUID, &c.NamedTaskUUID, &c.Status, &c.TotalSteps, &c.PendingSteps, &c.EnqueuedSteps,
			&c.InProgressSteps, &c.AwaitingSteps, &c.WaitingForRetrySteps, &c.CompletedSteps, &c.FailedSteps,
			&c.ReadySteps, &c.ExecutionStatus, &c.RecommendedAction, &c.CompletionPercentage, &c.HealthStatus)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("get_task_execution_context of %d tasks: %w", len(ids), err)
	}
	out = make(map[uuid.UUID]ExecutionContext, len(list))
	for _, c := range list {
		out[c.TaskUUID] = c
	}
	return out, nil
}

// TasksStepOutcomes is TaskStepOutcomes for many tasks, keyed by task UUID.
func TasksStepOutcomes(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID][]StepOutcome, error) {
	rows, err := q.Query(ctx, `SELECT s.task_uuid, s.name, s.state, s.results,
			NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.from_step_uuid = s.workflow_step_uuid) AS leaf
		FROM tasker.workflow_steps s WHERE s.task_uuid = ANY($1) ORDER BY s.task_uuid, s.updated_at`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading steps of %d tasks: %w", len(ids), err)
	}
	out := map[uuid.UUID][]StepOutcome{}
	var task uuid.UUID
	var s StepOutcome
	_, err = pgx.ForEachRow(rows, []any{&task, &s.Name, &s.State, &s.Results, &s.Leaf}, func() error {
		out[task] = append(out[task], s)
		s = StepOutcome{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading steps of %d tasks: %w", len(ids), err)
	}
	return out, nil
}

// TasksTransitions is TaskTransitions for many tasks, keyed by task UUID.
func TasksTransitions(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID][]Transition, error) {
	rows, err := q.Query(ctx, `SELECT task_uuid, coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at,
			CASE WHEN metadata - 'reason' = '{}' THEN NULL ELSE metadata END
		FROM tasker.task_transitions WHERE task_uuid = ANY($1) ORDER BY task_uuid, task_transition_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading history of %d tasks: %w", len(ids), err)
	}
	out := map[uuid.UUID][]Transition{}
	var task uuid.UUID
	var x Transition
	_, err = pgx.ForEachRow(rows, []any{&task, &x.From, &x.To, &x.Reason, &x.At, &x.Meta}, func() error {
		out[task] = append(out[task], x)
		x = Transition{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading history of %d tasks: %w", len(ids), err)
	}
	return out, nil
}
