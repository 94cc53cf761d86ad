package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Backend serves the REST API from the database.
type Backend struct {
	s *Service
}

// Backend returns the API backend of this orchestrator.
func (s *Service) Backend() *Backend { return &Backend{s: s} }

var _ api.Backend = (*Backend)(nil)

// CreateTask implements api.Backend.
func (b *Backend) CreateTask(ctx context.Context, req client.TaskRequest) (*client.Task, error) {
	c, err := b.s.CreateTask(ctx, req)
	if err != nil {
		return nil, err
	}
	return b.GetTask(tracing.WithCorrelationID(ctx, c.CorrelationID), c.TaskUUID)
}

// Ping implements api.Backend.
func (b *Backend) Ping(ctx context.Context) error { return b.s.pool.Ping(ctx) }

const taskColumns = `t.task_uuid, ns.name, nt.name, nt.version, t.state, t.correlation_id, t.parent_correlation_id,
	t.context, coalesce(t.initiator, ''), coalesce(t.source_system, ''), coalesce(t.reason, ''), t.tags, t.priority,
	t.created_at, t.updated_at, t.completed_at, t.trace_context`

const taskFrom = ` FROM tasker.tasks t
	JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
	JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid `

func scanTask(r pgx.Row) (*client.Task, error) {
	var t client.Task
	var tags, traceCtx []byte
	if err := r.Scan(&t.TaskUUID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.CorrelationID, &t.ParentCorrelationID,
		&t.Context, &t.Initiator, &t.SourceSystem, &t.Reason, &tags, &t.Priority, &t.CreatedAt, &t.UpdatedAt, &t.CompletedAt, &traceCtx); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(tags, &t.Tags)
	var headers map[string]string
	if queue.DecodeHeaders(traceCtx, &headers) == nil {
		t.TraceID = tracing.Noop().TraceID(headers)
	}
	return &t, nil
}

// GetTask implements api.Backend.
func (b *Backend) GetTask(ctx context.Context, id uuid.UUID) (*client.Task, error) {
	t, err := scanTask(b.s.pool.QueryRow(ctx, "SELECT "+taskColumns+taskFrom+"WHERE t.task_uuid = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading task %s: %w", id, err)
	}
	if err := b.fillTask(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// fillTask adds the execution summary, leaf results, error and history.
func (b *Backend) fillTask(ctx context.Context, t *client.Task) error {
	ec, ok, err := b.s.funcs.GetTaskExecutionContext(ctx, b.s.pool, t.TaskUUID)
	if err != nil {
		return err
	}
	if ok {
		t.ExecutionStatus = ec.ExecutionStatus
		t.TotalSteps, t.PendingSteps = int(ec.TotalSteps), int(ec.PendingSteps)
		// Enqueued is told apart from in progress: a step nobody claims
		// (no worker serves its namespace) must not look as if it ran.
		t.EnqueuedSteps = int(ec.EnqueuedSteps)
		t.InProgressSteps = int(ec.InProgressSteps + ec.AwaitingSteps)
		t.CompletedSteps, t.FailedSteps, t.ReadySteps = int(ec.CompletedSteps), int(ec.FailedSteps), int(ec.ReadySteps)
	}
	// Leaf steps (no dependents) carry the task's result; the latest failed
	// step carries its error.
	rows, err := b.s.pool.Query(ctx, `SELECT s.name, s.state, s.results,
			NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.from_step_uuid = s.workflow_step_uuid) AS leaf
		FROM tasker.workflow_steps s WHERE s.task_uuid = $1 ORDER BY s.updated_at`, t.TaskUUID)
	if err != nil {
		return fmt.Errorf("reading steps of task %s: %w", t.TaskUUID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, st string
		var results []byte
		var leaf bool
		if err := rows.Scan(&name, &st, &results, &leaf); err != nil {
			return fmt.Errorf("reading steps of task %s: %w", t.TaskUUID, err)
		}
		r := decodeStoredResult(results)
		if leaf && st == "complete" && t.State == "complete" {
			if t.Result == nil {
				t.Result = map[string]json.RawMessage{}
			}
			t.Result[name] = r.Result
		}
		if st == "error" && r.Error != nil {
			t.Error = r.stepError(name)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading steps of task %s: %w", t.TaskUUID, err)
	}
	tr, err := b.s.pool.Query(ctx, `SELECT coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at
		FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY task_transition_id`, t.TaskUUID)
	if err != nil {
		return fmt.Errorf("reading history of task %s: %w", t.TaskUUID, err)
	}
	t.Transitions, err = pgx.CollectRows(tr, func(r pgx.CollectableRow) (client.Transition, error) {
		var x client.Transition
		err := r.Scan(&x.From, &x.To, &x.Reason, &x.At)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("reading history of task %s: %w", t.TaskUUID, err)
	}
	return nil
}

// ListSteps implements api.Backend.
func (b *Backend) ListSteps(ctx context.Context, id uuid.UUID) ([]client.Step, error) {
	var exists bool
	if err := b.s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = $1)", id).Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading task %s: %w", id, err)
	}
	if !exists {
		return nil, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
	}
	rows, err := b.s.pool.Query(ctx, `SELECT s.workflow_step_uuid, s.task_uuid, s.name, s.handler, s.state, s.attempts,
			s.max_attempts, s.retryable, s.results, s.next_retry_at, s.lease_expires_at, s.created_at, s.updated_at, s.processed_at,
			coalesce((SELECT array_agg(p.name ORDER BY p.name) FROM tasker.workflow_step_edges e
				JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
				WHERE e.to_step_uuid = s.workflow_step_uuid), '{}')
		FROM tasker.workflow_steps s WHERE s.task_uuid = $1 ORDER BY s.workflow_step_uuid`, id)
	if err != nil {
		return nil, fmt.Errorf("reading steps of task %s: %w", id, err)
	}
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (client.Step, error) {
		var s client.Step
		var results []byte
		var processedAt *time.Time
		err := r.Scan(&s.StepUUID, &s.TaskUUID, &s.Name, &s.Handler, &s.State, &s.Attempts, &s.MaxAttempts, &s.Retryable,
			&results, &s.NextRetryAt, &s.LeaseExpiresAt, &s.CreatedAt, &s.UpdatedAt, &processedAt, &s.DependsOn)
		if err != nil {
			return s, err
		}
		if s.State == "complete" || s.State == "resolved_manually" {
			s.CompletedAt = processedAt
		}
		if s.State != "waiting_for_retry" {
			s.NextRetryAt = nil
		}
		if len(results) > 0 {
			if res := decodeStoredResult(results); res.Error != nil {
				s.Error = res.stepError(s.Name)
			} else {
				s.Result = res.Result
			}
		}
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading steps of task %s: %w", id, err)
	}
	idx := make(map[uuid.UUID]int, len(steps))
	for i := range steps {
		idx[steps[i].StepUUID] = i
		steps[i].Transitions = []client.Transition{}
	}
	tr, err := b.s.pool.Query(ctx, `SELECT workflow_step_uuid, coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at
		FROM tasker.workflow_step_transitions WHERE task_uuid = $1 ORDER BY workflow_step_transition_id`, id)
	if err != nil {
		return nil, fmt.Errorf("reading step history of task %s: %w", id, err)
	}
	defer tr.Close()
	for tr.Next() {
		var sid uuid.UUID
		var x client.Transition
		if err := tr.Scan(&sid, &x.From, &x.To, &x.Reason, &x.At); err != nil {
			return nil, fmt.Errorf("reading step history of task %s: %w", id, err)
		}
		if i, ok := idx[sid]; ok {
			steps[i].Transitions = append(steps[i].Transitions, x)
		}
	}
	if err := tr.Err(); err != nil {
		return nil, fmt.Errorf("reading step history of task %s: %w", id, err)
	}
	return steps, nil
}

// ListTasksByCorrelation implements api.Backend.
func (b *Backend) ListTasksByCorrelation(ctx context.Context, corr uuid.UUID) ([]client.Task, error) {
	tasks, err := b.listTasks(ctx, "t.correlation_id = $1", corr)
	if err != nil {
		return nil, fmt.Errorf("listing tasks of correlation id %s: %w", corr, err)
	}
	return tasks, nil
}

// ListChildTasks implements api.Backend.
func (b *Backend) ListChildTasks(ctx context.Context, parent uuid.UUID) ([]client.Task, error) {
	tasks, err := b.listTasks(ctx, "t.parent_correlation_id = $1", parent)
	if err != nil {
		return nil, fmt.Errorf("listing child tasks of %s: %w", parent, err)
	}
	return tasks, nil
}

// listTasks returns the tasks matching where (a constant condition on $1), oldest first, filled in.
func (b *Backend) listTasks(ctx context.Context, where string, arg uuid.UUID) ([]client.Task, error) {
	rows, err := b.s.pool.Query(ctx, "SELECT "+taskColumns+taskFrom+"WHERE "+where+" ORDER BY t.created_at", arg)
	if err != nil {
		return nil, err
	}
	tasks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (client.Task, error) {
		t, err := scanTask(r)
		if err != nil {
			return client.Task{}, err
		}
		return *t, nil
	})
	if err != nil {
		return nil, err
	}
	for i := range tasks {
		if err := b.fillTask(ctx, &tasks[i]); err != nil {
			return nil, err
		}
	}
	return tasks, nil
}

// Templates implements api.Backend.
func (b *Backend) Templates(ctx context.Context) ([]client.Template, error) {
	tpls, err := templatestore.List(ctx, b.s.pool)
	if err != nil {
		return nil, err
	}
	out := make([]client.Template, 0, len(tpls))
	for _, t := range tpls {
		ct := client.Template{Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description}
		for _, s := range t.Steps {
			ct.Steps = append(ct.Steps, client.TemplateStep{Name: s.Name, Handler: s.Handler, DependsOn: s.DependsOn,
				MaxAttempts: s.Retry.MaxAttempts, TimeoutSeconds: s.Timeout.Seconds()})
		}
		out = append(out, ct)
	}
	return out, nil
}

// Funcs exposes the SQL function wrappers (tests, benchmarks).
func (s *Service) Funcs() *db.Funcs { return s.funcs }

// storedResult is the part of a step's stored result (the worker's
// messages.StepExecutionResult) the API shows; Result stays raw JSON.
type storedResult struct {
	Result   json.RawMessage       `json:"result"`
	Error    *messages.ResultError `json:"error"`
	Metadata struct {
		Attempt int `json:"attempt"`
	} `json:"metadata"`
}

// decodeStoredResult reads workflow_steps.results; empty or unreadable gives the zero value.
func decodeStoredResult(raw []byte) storedResult {
	var r storedResult
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r)
	}
	return r
}

func (r storedResult) stepError(step string) *client.StepError {
	return &client.StepError{Step: step, Message: r.Error.Message, Type: r.Error.ErrorType,
		Code: r.Error.ErrorCode, Retryable: r.Error.Retryable, Attempt: r.Metadata.Attempt}
}
