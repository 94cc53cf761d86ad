package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Funcs calls Tasker's SQL functions. Every call is reported to the Observer
// under the function's SQL name.
type Funcs struct {
	in Instr
}

// NewFuncs returns wrappers reporting to obs (nil: none).
func NewFuncs(obs Observer) *Funcs { return &Funcs{in: NewInstr(obs)} }

// StepReadiness is one row of get_step_readiness_status.
type StepReadiness struct {
	StepUUID              uuid.UUID
	TaskUUID              uuid.UUID
	NamedStepUUID         uuid.UUID
	Name                  string
	CurrentState          string
	DependenciesSatisfied bool
	RetryEligible         bool
	ReadyForExecution     bool
	LastFailureAt         *time.Time
	NextRetryAt           *time.Time
	TotalParents          int
	CompletedParents      int
	Attempts              int
	MaxAttempts           int
	BackoffRequestMs      *int
	LastAttemptedAt       *time.Time
}

// GetStepReadinessStatus returns the readiness of every step of a task (or of stepUUIDs only).
func (f *Funcs) GetStepReadinessStatus(ctx context.Context, q Querier, taskUUID uuid.UUID, stepUUIDs []uuid.UUID) (out []StepReadiness, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "get_step_readiness_status"})
	defer func() { sc.End(err) }()
	var steps any
	if stepUUIDs != nil {
		steps = stepUUIDs
	}
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid, task_uuid, named_step_uuid, name, current_state,
		dependencies_satisfied, retry_eligible, ready_for_execution, last_failure_at, next_retry_at,
		total_parents, completed_parents, attempts, max_attempts, backoff_request_ms, last_attempted_at
		FROM tasker.get_step_readiness_status($1, $2)`, taskUUID, steps)
	if err != nil {
		return nil, fmt.Errorf("get_step_readiness_status: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepReadiness, error) {
		var s StepReadiness
		err := r.Scan(&s.StepUUID, &s.TaskUUID, &s.NamedStepUUID, &s.Name, &s.CurrentState,
			&s.DependenciesSatisfied, &s.RetryEligible, &s.ReadyForExecution, &s.LastFailureAt, &s.NextRetryAt,
			&s.TotalParents, &s.CompletedParents, &s.Attempts, &s.MaxAttempts, &s.BackoffRequestMs, &s.LastAttemptedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("get_step_readiness_status: %w", err)
	}
	return out, nil
}

// ExecutionContext is the row of get_task_execution_context.
type ExecutionContext struct {
	TaskUUID             uuid.UUID
	NamedTaskUUID        uuid.UUID
	Status               string
	TotalSteps           int64
	PendingSteps         int64
	EnqueuedSteps        int64
	InProgressSteps      int64
	AwaitingSteps        int64
	WaitingForRetrySteps int64
	CompletedSteps       int64
	FailedSteps          int64
	ReadySteps           int64
	ExecutionStatus      string
	RecommendedAction    string
	CompletionPercentage float64
	HealthStatus         string
}

// InFlight counts steps a worker or orchestration still owes an action.
func (c *ExecutionContext) InFlight() int64 {
	return c.EnqueuedSteps + c.InProgressSteps + c.AwaitingSteps
}

// GetTaskExecutionContext summarises a task's steps. ok is false when the task does not exist.
func (f *Funcs) GetTaskExecutionContext(ctx context.Context, q Querier, taskUUID uuid.UUID) (c ExecutionContext, ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "get_task_execution_context"})
	defer func() { sc.End(err) }()
	err = q.QueryRow(ctx, `SELECT task_uuid, named_task_uuid, status, total_steps, pending_steps, enqueued_steps,
		in_progress_steps, awaiting_orchestration_steps, waiting_for_retry_steps, completed_steps, failed_steps,
		ready_steps, execution_status, recommended_action, completion_percentage::float8, health_status
		FROM tasker.get_task_execution_context($1)`, taskUUID).Scan(
		&c.TaskUUID, &c.NamedTaskUUID, &c.Status, &c.TotalSteps, &c.PendingSteps, &c.EnqueuedSteps,
		&c.InProgressSteps, &c.AwaitingSteps, &c.WaitingForRetrySteps, &c.CompletedSteps, &c.FailedSteps,
		&c.ReadySteps, &c.ExecutionStatus, &c.RecommendedAction, &c.CompletionPercentage, &c.HealthStatus)
	if err == pgx.ErrNoRows {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("get_task_execution_context: %w", err)
	}
	return c, true, nil
}

// ReadyTask is one row of get_next_ready_tasks.
type ReadyTask struct {
	TaskUUID         uuid.UUID
	TaskName         string
	Priority         int
	Namespace        string
	ReadyStepsCount  int64
	ComputedPriority float64
	CurrentState     string
}

// GetNextReadyTasks returns up to limit tasks the readiness poller should process.
func (f *Funcs) GetNextReadyTasks(ctx context.Context, q Querier, limit int) (out []ReadyTask, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "get_next_ready_tasks"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT task_uuid, task_name, priority, namespace_name, ready_steps_count,
		computed_priority::float8, current_state FROM tasker.get_next_ready_tasks($1)`, limit)
	if err != nil {
		return nil, fmt.Errorf("get_next_ready_tasks: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReadyTask, error) {
		var t ReadyTask
		err := r.Scan(&t.TaskUUID, &t.TaskName, &t.Priority, &t.Namespace, &t.ReadyStepsCount, &t.ComputedPriority, &t.CurrentState)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("get_next_ready_tasks: %w", err)
	}
	return out, nil
}

// TransitionTaskStateAtomic moves a task from one state to another if it is in
// from; false when it was not.
func (f *Funcs) TransitionTaskStateAtomic(ctx context.Context, q Querier, taskUUID uuid.UUID, from, to string, processor uuid.UUID, metadata map[string]any) (ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "transition_task_state_atomic"})
	defer func() { sc.End(err) }()
	meta, err := json.Marshal(orEmpty(metadata))
	if err != nil {
		return false, fmt.Errorf("transition_task_state_atomic: encoding metadata: %w", err)
	}
	if err = q.QueryRow(ctx, "SELECT tasker.transition_task_state_atomic($1, $2, $3, $4, $5)",
		taskUUID, from, to, processor, meta).Scan(&ok); err != nil {
		return false, fmt.Errorf("transition_task_state_atomic %s→%s: %w", from, to, err)
	}
	return ok, nil
}

// TransitionTaskStatePath moves a task from one state through each of
// states, writing one history row per hop with reasons[i]; false when it
// was not in from.
func (f *Funcs) TransitionTaskStatePath(ctx context.Context, q Querier, taskUUID uuid.UUID, from string, states, reasons []string, processor uuid.UUID) (ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "transition_task_state_path"})
	defer func() { sc.End(err) }()
	if err = q.QueryRow(ctx, "SELECT tasker.transition_task_state_path($1, $2, $3, $4, $5)",
		taskUUID, from, states, processor, reasons).Scan(&ok); err != nil {
		return false, fmt.Errorf("transition_task_state_path %s→%v: %w", from, states, err)
	}
	return ok, nil
}

// TransitionStepStateAtomic moves a step from one state to another if it is
// in from. backoff applies to waiting_for_retry.
func (f *Funcs) TransitionStepStateAtomic(ctx context.Context, q Querier, stepUUID uuid.UUID, from, to string, metadata map[string]any, backoff time.Duration) (ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "transition_step_state_atomic"})
	defer func() { sc.End(err) }()
	meta, err := json.Marshal(orEmpty(metadata))
	if err != nil {
		return false, fmt.Errorf("transition_step_state_atomic: encoding metadata: %w", err)
	}
	var backoffMs any
	if to == "waiting_for_retry" {
		backoffMs = int32(backoff / time.Millisecond)
	}
	if err = q.QueryRow(ctx, "SELECT tasker.transition_step_state_atomic($1, $2, $3, $4, $5)",
		stepUUID, from, to, meta, backoffMs).Scan(&ok); err != nil {
		return false, fmt.Errorf("transition_step_state_atomic %s→%s: %w", from, to, err)
	}
	return ok, nil
}

// Dependency is one row of get_step_transitive_dependencies.
type Dependency struct {
	StepUUID  uuid.UUID
	TaskUUID  uuid.UUID
	Name      string
	State     string
	Results   json.RawMessage
	Processed bool
	Distance  int
}

// GetStepTransitiveDependencies lists every ancestor of a step, nearest first.
func (f *Funcs) GetStepTransitiveDependencies(ctx context.Context, q Querier, stepUUID uuid.UUID) (out []Dependency, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "get_step_transitive_dependencies"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid, task_uuid, step_name, current_state, results, processed, distance
		FROM tasker.get_step_transitive_dependencies($1)`, stepUUID)
	if err != nil {
		return nil, fmt.Errorf("get_step_transitive_dependencies: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Dependency, error) {
		var d Dependency
		err := r.Scan(&d.StepUUID, &d.TaskUUID, &d.Name, &d.State, &d.Results, &d.Processed, &d.Distance)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("get_step_transitive_dependencies: %w", err)
	}
	return out, nil
}

// Finalization is the answer of can_finalize_task / claim_task_for_finalization.
type Finalization struct {
	Claimed         bool
	CurrentState    string
	TargetState     string
	ExecutionStatus string
}

// CanFinalizeTask reports whether the task can reach a terminal state now, and which.
func (f *Funcs) CanFinalizeTask(ctx context.Context, q Querier, taskUUID uuid.UUID) (out Finalization, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "can_finalize_task"})
	defer func() { sc.End(err) }()
	var target *string
	err = q.QueryRow(ctx, "SELECT can_finalize, execution_status, target_state, current_state FROM tasker.can_finalize_task($1)", taskUUID).
		Scan(&out.Claimed, &out.ExecutionStatus, &target, &out.CurrentState)
	if err == pgx.ErrNoRows {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("can_finalize_task: %w", err)
	}
	if target != nil {
		out.TargetState = *target
	}
	return out, nil
}

// ClaimTaskForFinalization locks the task row for the caller's transaction and
// reports whether it can be finalized.
func (f *Funcs) ClaimTaskForFinalization(ctx context.Context, q Querier, taskUUID, processor uuid.UUID) (out Finalization, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "claim_task_for_finalization"})
	defer func() { sc.End(err) }()
	var cur, target, status *string
	err = q.QueryRow(ctx, "SELECT claimed, current_state, target_state, execution_status FROM tasker.claim_task_for_finalization($1, $2)",
		taskUUID, processor).Scan(&out.Claimed, &cur, &target, &status)
	if err != nil {
		return out, fmt.Errorf("claim_task_for_finalization: %w", err)
	}
	out.CurrentState, out.TargetState, out.ExecutionStatus = deref(cur), deref(target), deref(status)
	return out, nil
}

// EnqueuedStep is one step enqueue_steps sent.
type EnqueuedStep struct {
	// TaskUUID is set by EnqueueReadySteps (steps of many tasks).
	TaskUUID uuid.UUID
	StepUUID uuid.UUID
	StepName string
	MsgID    int64
}

// EnqueueSteps moves ready steps to enqueued and sends their messages to
// queue, notifying consumers when the transaction commits.
func (f *Funcs) EnqueueSteps(ctx context.Context, q Querier, taskUUID uuid.UUID, steps []uuid.UUID, queue string, headers map[string]string) ([]EnqueuedStep, error) {
	return f.enqueueSteps(ctx, q, taskUUID, steps, queue, headers, true)
}

// EnqueueStepsQuiet is EnqueueSteps without the NOTIFY: the caller notifies
// after commit (queue.Client.Notify), so notifying commits do not serialise.
func (f *Funcs) EnqueueStepsQuiet(ctx context.Context, q Querier, taskUUID uuid.UUID, steps []uuid.UUID, queue string, headers map[string]string) ([]EnqueuedStep, error) {
	return f.enqueueSteps(ctx, q, taskUUID, steps, queue, headers, false)
}

func (f *Funcs) enqueueSteps(ctx context.Context, q Querier, taskUUID uuid.UUID, steps []uuid.UUID, queue string, headers map[string]string, notify bool) (out []EnqueuedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "enqueue_steps", Queue: queue, Messaging: "send"})
	defer func() { sc.End(err) }()
	h, err := json.Marshal(orEmptyS(headers))
	if err != nil {
		return nil, fmt.Errorf("enqueue_steps: encoding headers: %w", err)
	}
	rows, err := q.Query(ctx, "SELECT step_uuid, step_name, msg_id FROM tasker.enqueue_steps($1, $2, $3, $4, $5)", taskUUID, steps, queue, h, notify)
	if err != nil {
		return nil, fmt.Errorf("enqueue_steps: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (EnqueuedStep, error) {
		var e EnqueuedStep
		err := r.Scan(&e.StepUUID, &e.StepName, &e.MsgID)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue_steps: %w", err)
	}
	return out, nil
}

// Claim outcomes.
const (
	ClaimClaimed   = "claimed"
	ClaimReclaimed = "reclaimed"
	ClaimExhausted = "exhausted"
	ClaimBusy      = "busy"
	ClaimStale     = "stale"
)

// ClaimedStep is what a worker gets when it takes a step message.
type ClaimedStep struct {
	MsgID     int64
	ReadCount int
	Headers   json.RawMessage
	// QueueWait is how long the message waited in its queue before this
	// read, measured on the database's clock.
	QueueWait           time.Duration
	Outcome             string
	TaskUUID            uuid.UUID
	StepUUID            uuid.UUID
	StepName            string
	Handler             string
	Attempt             int
	MaxAttempts         int
	Timeout             time.Duration
	Inputs              json.RawMessage
	TaskContext         json.RawMessage
	CorrelationID       uuid.UUID
	ParentCorrelationID *uuid.UUID
	Namespace           string
	TaskName            string
	TaskVersion         string
	DependencyResults   json.RawMessage
	// PriorTraceparent is the W3C traceparent the previous attempt recorded, if any.
	PriorTraceparent string
}

const claimColumns = `msg_id, read_ct, headers, queue_wait_ms, outcome, task_uuid, step_uuid, step_name, handler, attempt, max_attempts,
	timeout_ms, inputs, task_context, correlation_id, parent_correlation_id, namespace, task_name, task_version, dependency_results, prior_traceparent`

func scanClaim(r pgx.CollectableRow) (ClaimedStep, error) {
	var c ClaimedStep
	var taskUUID, corr *uuid.UUID
	var name, handler, ns, tname, tver, prior *string
	var attempt, maxAttempts, timeoutMs *int32
	var waitedMs float64
	err := r.Scan(&c.MsgID, &c.ReadCount, &c.Headers, &waitedMs, &c.Outcome, &taskUUID, &c.StepUUID, &name, &handler, &attempt, &maxAttempts,
		&timeoutMs, &c.Inputs, &c.TaskContext, &corr, &c.ParentCorrelationID, &ns, &tname, &tver, &c.DependencyResults, &prior)
	if err != nil {
		return c, err
	}
	c.QueueWait = time.Duration(waitedMs * float64(time.Millisecond))
	if taskUUID != nil {
		c.TaskUUID = *taskUUID
	}
	if corr != nil {
		c.CorrelationID = *corr
	}
	c.StepName, c.Handler, c.Namespace, c.TaskName, c.TaskVersion = deref(name), deref(handler), deref(ns), deref(tname), deref(tver)
	c.PriorTraceparent = deref(prior)
	if attempt != nil {
		c.Attempt = int(*attempt)
	}
	if maxAttempts != nil {
		c.MaxAttempts = int(*maxAttempts)
	}
	if timeoutMs != nil {
		c.Timeout = time.Duration(*timeoutMs) * time.Millisecond
	}
	return c, nil
}

// ClaimStep takes the step behind message msgID (the NOTIFY path). Empty when
// the message is not visible (another worker has it).
func (f *Funcs) ClaimStep(ctx context.Context, q Querier, queue string, msgID int64, lease time.Duration, workerID string) (out []ClaimedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "claim_step", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT "+claimColumns+" FROM tasker.claim_step($1, $2, $3, $4)",
		queue, msgID, int32(lease/time.Millisecond), workerID)
	if err != nil {
		return nil, fmt.Errorf("claim_step: %w", err)
	}
	out, err = pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return nil, fmt.Errorf("claim_step: %w", err)
	}
	return out, nil
}

// ClaimStepMessages takes the steps behind messages msgIDs in one statement
// (the NOTIFY path, for every wake-up a worker has a free slot for). A
// message that is not visible (another worker has it) yields no row.
func (f *Funcs) ClaimStepMessages(ctx context.Context, q Querier, queue string, msgIDs []int64, lease time.Duration, workerID string) (out []ClaimedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "claim_step_messages", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT "+claimColumns+" FROM tasker.claim_step_messages($1, $2, $3, $4)",
		queue, msgIDs, int32(lease/time.Millisecond), workerID)
	if err != nil {
		return nil, fmt.Errorf("claim_step_messages: %w", err)
	}
	out, err = pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return nil, fmt.Errorf("claim_step_messages: %w", err)
	}
	return out, nil
}

// ClaimSteps takes up to qty visible step messages at least minAge old (the
// polling path), highest priority first and oldest first within a priority.
func (f *Funcs) ClaimSteps(ctx context.Context, q Querier, queue string, qty int, lease time.Duration, workerID string, minAge time.Duration) (out []ClaimedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "claim_steps", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT "+claimColumns+" FROM tasker.claim_steps($1, $2, $3, $4, $5)",
		queue, qty, int32(lease/time.Millisecond), workerID, int32(minAge/time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("claim_steps: %w", err)
	}
	out, err = pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return nil, fmt.Errorf("claim_steps: %w", err)
	}
	return out, nil
}

// LeaseRef identifies one held step lease.
type LeaseRef struct {
	StepUUID uuid.UUID
	Attempt  int
	MsgID    int64
}

// ExtendStepLeases pushes the leases of live steps lease into the future.
func (f *Funcs) ExtendStepLeases(ctx context.Context, q Querier, refs []LeaseRef, lease time.Duration) (n int, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "extend_step_leases"})
	defer func() { sc.End(err) }()
	steps := make([]uuid.UUID, len(refs))
	attempts := make([]int32, len(refs))
	msgs := make([]int64, len(refs))
	for i, r := range refs {
		steps[i], attempts[i], msgs[i] = r.StepUUID, int32(r.Attempt), r.MsgID
	}
	if err = q.QueryRow(ctx, "SELECT tasker.extend_step_leases($1, $2, $3, $4)", steps, attempts, msgs, int32(lease/time.Millisecond)).Scan(&n); err != nil {
		return 0, fmt.Errorf("extend_step_leases: %w", err)
	}
	return n, nil
}

// StepResultSubmission is one worker result.
type StepResultSubmission struct {
	StepUUID    uuid.UUID
	Attempt     int
	Success     bool
	Results     json.RawMessage
	WorkerID    string
	Queue       string
	MsgID       int64
	ResultQueue string
	Headers     map[string]string
	// DeferNotify leaves the NOTIFY to the caller, after the statement commits.
	DeferNotify bool
}

// SubmitStepResult stores a result, archives the worker message and sends the
// result to orchestration. ok is false when the attempt no longer holds the step.
func (f *Funcs) SubmitStepResult(ctx context.Context, q Querier, s StepResultSubmission) (msgID int64, ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "submit_step_result", Queue: s.ResultQueue, Messaging: "send"})
	defer func() { sc.End(err) }()
	h, err := json.Marshal(orEmptyS(s.Headers))
	if err != nil {
		return 0, false, fmt.Errorf("submit_step_result: encoding headers: %w", err)
	}
	var id *int64
	if err = q.QueryRow(ctx, "SELECT tasker.submit_step_result($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		s.StepUUID, s.Attempt, s.Success, s.Results, s.WorkerID, s.Queue, s.MsgID, s.ResultQueue, h, !s.DeferNotify).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("submit_step_result: %w", err)
	}
	if id == nil {
		return 0, false, nil
	}
	return *id, true, nil
}

// SubmittedResult is one element's outcome of SubmitStepResults.
type SubmittedResult struct {
	StepUUID uuid.UUID
	// MsgID is the result message sent; zero when the step was no longer
	// this attempt's (its lease was lost) and nothing was written.
	MsgID int64
}

// SubmitStepResults stores a batch of results of one worker in one
// statement (submit_step_results); every element's ResultQueue must be the
// same and no NOTIFY is sent (the caller sends one per batch).
func (f *Funcs) SubmitStepResults(ctx context.Context, q Querier, workerID, resultQueue string, subs []StepResultSubmission) (out []SubmittedResult, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "submit_step_results", Queue: resultQueue, Messaging: "send"})
	defer func() { sc.End(err) }()
	n := len(subs)
	steps, attempts, success := make([]uuid.UUID, n), make([]int32, n), make([]bool, n)
	results, headers := make([][]byte, n), make([][]byte, n)
	queues, msgIDs := make([]string, n), make([]int64, n)
	for i, s := range subs {
		steps[i], attempts[i], success[i], results[i] = s.StepUUID, int32(s.Attempt), s.Success, s.Results
		queues[i], msgIDs[i] = s.Queue, s.MsgID
		if headers[i], err = json.Marshal(orEmptyS(s.Headers)); err != nil {
			return nil, fmt.Errorf("submit_step_results: encoding headers: %w", err)
		}
	}
	rows, err := q.Query(ctx, "SELECT step_uuid, msg_id FROM tasker.submit_step_results($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		steps, attempts, success, results, workerID, queues, msgIDs, resultQueue, headers)
	if err != nil {
		return nil, fmt.Errorf("submit_step_results: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SubmittedResult, error) {
		var sr SubmittedResult
		var id *int64
		err := r.Scan(&sr.StepUUID, &id)
		if id != nil {
			sr.MsgID = *id
		}
		return sr, err
	})
	if err != nil {
		return nil, fmt.Errorf("submit_step_results: %w", err)
	}
	return out, nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orEmptyS(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
