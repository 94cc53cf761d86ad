package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/taskreq"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// TaskCreator creates tasks (orchestration's initializer), running read in
// the creating transaction before it commits.
type TaskCreator interface {
	CreateTaskAndRead(ctx context.Context, req client.TaskRequest, read orchestration.ReadInTx) (*orchestration.Created, error)
}

// TaskOperator carries out operator actions on tasks (orchestration).
type TaskOperator interface {
	CancelTask(ctx context.Context, taskUUID uuid.UUID, op orchestration.Operation, children bool) (bool, error)
	RetryTask(ctx context.Context, taskUUID uuid.UUID, op orchestration.Operation) error
	ResolveStep(ctx context.Context, taskUUID uuid.UUID, step string, result json.RawMessage, op orchestration.Operation) error
}

// Store is the Backend over PostgreSQL: the API's read model (tasks, steps,
// histories and results shaped as the client package's types) and task
// creation through the initializer.
type Store struct {
	pool    *pgxpool.Pool
	funcs   *db.Funcs
	creator TaskCreator
	batch   BatchCreator
	ops     TaskOperator
	signals *TaskSignals
}

var _ Backend = (*Store)(nil)

// NewStore returns the Backend over pool; creator creates tasks (and, when
// it is also a TaskOperator, cancels, retries and resolves them) and funcs
// reports the SQL functions the reads call (nil: unobserved).
func NewStore(pool *pgxpool.Pool, creator TaskCreator, funcs *db.Funcs) *Store {
	if funcs == nil {
		funcs = db.NewFuncs(nil)
	}
	s := &Store{pool: pool, funcs: funcs, creator: creator}
	// The orchestrator that creates tasks also operates on them.
	s.ops, _ = creator.(TaskOperator)
	s.batch, _ = creator.(BatchCreator)
	return s
}

// CreateTask implements Backend. The answer is read inside the creating
// transaction (for an idempotent repeat, the transaction that found the
// key's task): once it commits nothing is left that could fail, so a
// committed task is never reported as an error.
func (s *Store) CreateTask(ctx context.Context, req client.TaskRequest) (*client.Task, bool, error) {
	var task *client.Task
	c, err := s.creator.CreateTaskAndRead(ctx, req, func(ctx context.Context, tx pgx.Tx, c *orchestration.Created) error {
		var err error
		task, err = s.getTask(tracing.WithCorrelationID(ctx, c.CorrelationID), tx, c.TaskUUID)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return task, c.Existing, nil
}

// Ping implements Backend.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func taskFromRow(r *db.TaskRow) *client.Task {
	t := &client.Task{TaskUUID: r.TaskUUID, Namespace: r.Namespace, Name: r.Name, Version: r.Version, State: r.State,
		CorrelationID: r.CorrelationID, ParentCorrelationID: r.ParentCorrelationID, Context: r.Context,
		Initiator: r.Initiator, SourceSystem: r.SourceSystem, Reason: r.Reason, Priority: r.Priority,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt}
	_ = json.Unmarshal(r.Tags, &t.Tags)
	var headers map[string]string
	if queue.DecodeHeaders(r.TraceContext, &headers) == nil {
		t.TraceID = tracing.Noop().TraceID(headers)
	}
	return t
}

// GetTask implements Backend.
func (s *Store) GetTask(ctx context.Context, id uuid.UUID) (*client.Task, error) {
	return s.getTask(ctx, s.pool, id)
}

func (s *Store) getTask(ctx context.Context, q db.Querier, id uuid.UUID) (*client.Task, error) {
	row, err := db.GetTask(ctx, q, id)
	if err != nil {
		return nil, err
	}
	t := taskFromRow(row)
	ctx = tracing.ForTask(ctx, t.CorrelationID, t.TaskUUID)
	if err := s.fillTask(ctx, q, t, true); err != nil {
		return nil, err
	}
	return t, nil
}

// fillTask adds the execution summary, leaf results, error and, with
// history, the task's transitions.
func (s *Store) fillTask(ctx context.Context, q db.Querier, t *client.Task, history bool) error {
	ec, ok, err := s.funcs.GetTaskExecutionContext(ctx, q, t.TaskUUID)
	if err != nil {
		return err
	}
	outcomes, err := db.TaskStepOutcomes(ctx, q, t.TaskUUID)
	if err != nil {
		return err
	}
	assembleTask(t, ec, ok, outcomes)
	if !history {
		return nil
	}
	transitions, err := db.TaskTransitions(ctx, q, t.TaskUUID)
	if err != nil {
		return err
	}
	addHistory(t, transitions)
	return nil
}

// assembleTask adds the execution summary (when found), the leaf results and
// the error to t.
func assembleTask(t *client.Task, ec db.ExecutionContext, found bool, outcomes []db.StepOutcome) {
	if found {
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
	for _, o := range outcomes {
		r := decodeStoredResult(o.Results)
		if o.Leaf && o.State == "complete" && t.State == "complete" {
			if t.Result == nil {
				t.Result = map[string]json.RawMessage{}
			}
			t.Result[o.Name] = r.Result
		}
		if o.State == "error" && r.Error != nil {
			t.Error = r.stepError(o.Name)
		}
	}
}

func addHistory(t *client.Task, transitions []db.Transition) {
	t.Transitions = make([]client.Transition, len(transitions))
	for i, h := range transitions {
		t.Transitions[i] = client.Transition{From: h.From, To: h.To, Reason: h.Reason, At: h.At, Meta: h.Meta}
	}
}

// ListSteps implements Backend.
func (s *Store) ListSteps(ctx context.Context, id uuid.UUID) ([]client.Step, error) {
	corr, rows, err := db.ListSteps(ctx, s.pool, id)
	if err != nil {
		return nil, err
	}
	ctx = tracing.ForTask(ctx, corr, id)
	steps := make([]client.Step, len(rows))
	idx := make(map[uuid.UUID]int, len(rows))
	for i, r := range rows {
		st := client.Step{StepUUID: r.StepUUID, TaskUUID: r.TaskUUID, Name: r.Name, Handler: r.Handler, State: r.State,
			Attempts: r.Attempts, MaxAttempts: r.MaxAttempts, Retryable: r.Retryable, NextRetryAt: r.NextRetryAt,
			LeaseExpiresAt: r.LeaseExpiresAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DependsOn: r.DependsOn,
			Transitions: []client.Transition{}}
		if st.State == "complete" || st.State == "resolved_manually" {
			st.CompletedAt = r.ProcessedAt
		}
		if st.State != "waiting_for_retry" {
			st.NextRetryAt = nil
		}
		if len(r.Results) > 0 {
			if res := decodeStoredResult(r.Results); res.Error != nil {
				st.Error = res.stepError(st.Name)
			} else {
				st.Result = res.Result
			}
		}
		steps[i] = st
		idx[r.StepUUID] = i
	}
	history, err := db.StepTransitions(ctx, s.pool, id)
	if err != nil {
		return nil, err
	}
	for _, h := range history {
		if i, ok := idx[h.StepUUID]; ok {
			steps[i].Transitions = append(steps[i].Transitions, client.Transition{From: h.From, To: h.To, Reason: h.Reason, At: h.At, Meta: h.Meta})
		}
	}
	return steps, nil
}

// ListTasks implements Backend. Listed tasks carry everything GetTask shows
// but their history, which would make a page of them heavy.
func (s *Store) ListTasks(ctx context.Context, f client.TaskFilter) (*client.TaskList, error) {
	if err := taskreq.ValidateFilter(&f); err != nil {
		return nil, err
	}
	if f.CorrelationID != nil {
		ctx = tracing.ForTask(ctx, *f.CorrelationID, uuid.Nil)
	}
	p := db.ListTasksParams{States: f.States, Namespace: f.Namespace, Name: f.Name, CreatedAfter: f.CreatedAfter,
		CreatedBefore: f.CreatedBefore, CorrelationID: f.CorrelationID, ParentCorrelationID: f.ParentCorrelationID,
		Limit: cmp.Or(f.Limit, client.DefaultTaskListLimit) + 1}
	if f.Cursor != "" {
		after, err := DecodeCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		p.After = after
	}
	rows, err := db.ListTasks(ctx, s.pool, p)
	if err != nil {
		return nil, err
	}
	list := &client.TaskList{Tasks: make([]client.Task, 0, len(rows))}
	if len(rows) == p.Limit {
		rows = rows[:len(rows)-1]
		last := rows[len(rows)-1]
		list.NextCursor = EncodeCursor(db.TaskKey{CreatedAt: last.CreatedAt, TaskUUID: last.TaskUUID})
	}
	for i := range rows {
		t := taskFromRow(&rows[i])
		if err := s.fillTask(ctx, s.pool, t, false); err != nil {
			return nil, err
		}
		list.Tasks = append(list.Tasks, *t)
	}
	return list, nil
}

// ListTasksByCorrelation returns every task carrying a correlation ID, newest first.
func (s *Store) ListTasksByCorrelation(ctx context.Context, corr uuid.UUID) ([]client.Task, error) {
	list, err := s.ListTasks(ctx, client.TaskFilter{CorrelationID: &corr, Limit: client.MaxTaskListLimit})
	if err != nil {
		return nil, fmt.Errorf("listing tasks of correlation id %s: %w", corr, err)
	}
	return list.Tasks, nil
}

// Templates implements Backend.
func (s *Store) Templates(ctx context.Context) ([]client.Template, error) {
	tpls, err := templatestore.List(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	out := make([]client.Template, 0, len(tpls))
	for _, t := range tpls {
		ct := client.Template{Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description}
		for _, st := range t.Steps {
			ct.Steps = append(ct.Steps, client.TemplateStep{Name: st.Name, Handler: st.Handler, DependsOn: st.DependsOn,
				MaxAttempts: st.Retry.MaxAttempts, TimeoutSeconds: st.Timeout.Seconds()})
		}
		out = append(out, ct)
	}
	return out, nil
}

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
