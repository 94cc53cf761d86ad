package client

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// TaskRequest asks for one task of a registered template. It is the body of
// POST /v1/tasks.
type TaskRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Version is the template version; empty means the newest registered one.
	Version string `json:"version,omitempty"`
	// Context is the task input: a JSON object.
	Context json.RawMessage `json:"context,omitempty"`
	// CorrelationID follows the task through every message, span and log
	// record. NewTaskRequest sets a UUIDv7; the server makes one when it is nil.
	CorrelationID       *uuid.UUID `json:"correlation_id,omitempty"`
	ParentCorrelationID *uuid.UUID `json:"parent_correlation_id,omitempty"`
	Initiator           string     `json:"initiator,omitempty"`
	SourceSystem        string     `json:"source_system,omitempty"`
	Reason              string     `json:"reason,omitempty"`
	Tags                []string   `json:"tags,omitempty"`
	// Priority (−100 to 100, default 0) orders the work that waits: the
	// task's steps are claimed from a backlog highest priority first (oldest
	// first within a priority), and waiting tasks are resumed by priority.
	Priority int `json:"priority,omitempty"`
	// IdempotencyKey names this request so that sending it again cannot
	// create a second task: a repeat with the same key for the same namespace
	// and template name returns the task the first one created (HTTP 200
	// instead of 201) while that task exists, and a repeat asking for
	// something else is refused (409, code idempotency_conflict). The
	// correlation ID is not part of what is compared. Client.CreateTask sets
	// a UUIDv7 key when this is empty so that its retries are safe.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// RunAt delays the task's first steps until this time; the task exists
	// (waiting_for_dependencies) from the start. At most a year ahead.
	RunAt *time.Time `json:"run_at,omitempty"`
	// Delay is RunAt as a duration from now, such as "90s" or "2h".
	// Give one of RunAt and Delay.
	Delay string `json:"delay,omitempty"`
}

// NewTaskRequest builds a request with a fresh UUIDv7 correlation ID.
// taskContext is encoded as JSON and must encode to an object (nil means {}).
func NewTaskRequest(namespace, name, version string, taskContext any) (TaskRequest, error) {
	req := TaskRequest{Namespace: namespace, Name: name, Version: version}
	raw := json.RawMessage(`{}`)
	if taskContext != nil {
		b, err := json.Marshal(taskContext)
		if err != nil {
			return req, fmt.Errorf("encoding task context: %w", err)
		}
		raw = b
	}
	req.Context = raw
	id, err := uuid.NewV7()
	if err != nil {
		return req, fmt.Errorf("generating correlation id: %w", err)
	}
	req.CorrelationID = &id
	return req, nil
}

// WithCorrelationID returns r carrying id as its correlation ID.
func (r TaskRequest) WithCorrelationID(id uuid.UUID) TaskRequest {
	r.CorrelationID = &id
	return r
}

// WithParentCorrelationID returns r as a child of the workflow with correlation ID id.
func (r TaskRequest) WithParentCorrelationID(id uuid.UUID) TaskRequest {
	r.ParentCorrelationID = &id
	return r
}

// ScheduleRequest is the body of POST /v1/schedules: create Task on every
// time Cron (standard 5 fields: minute hour day-of-month month day-of-week)
// comes due in TimeZone.
type ScheduleRequest struct {
	// Name identifies the schedule (at most 128 characters: letters, digits, _ - .).
	Name string `json:"name"`
	Cron string `json:"cron"`
	// TimeZone is an IANA zone such as "Europe/Paris"; empty means UTC.
	TimeZone string      `json:"time_zone,omitempty"`
	Task     TaskRequest `json:"task"`
}

// Schedule is a cron schedule (GET /v1/schedules).
type Schedule struct {
	ScheduleUUID uuid.UUID   `json:"schedule_uuid"`
	Name         string      `json:"name"`
	Cron         string      `json:"cron"`
	TimeZone     string      `json:"time_zone"`
	Task         TaskRequest `json:"task"`
	NextRunAt    time.Time   `json:"next_run_at"`
	LastRunAt    *time.Time  `json:"last_run_at,omitempty"`
	LastTaskUUID *uuid.UUID  `json:"last_task_uuid,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
}

// ScheduleList is the body of GET /v1/schedules.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

// CancelRequest is the body of POST /v1/tasks/{uuid}/cancel.
type CancelRequest struct {
	// Reason is recorded in the task's history (at most 128 characters).
	Reason string `json:"reason,omitempty"`
	// Actor names who cancels (recorded in the history); "api" when empty.
	Actor string `json:"actor,omitempty"`
	// Children cancels the tasks whose parent correlation ID is this task's,
	// recursively.
	Children bool `json:"children,omitempty"`
}

// RetryRequest is the body of POST /v1/tasks/{uuid}/retry.
type RetryRequest struct {
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// ResolveRequest is the body of POST /v1/tasks/{uuid}/steps/{step}/resolve.
type ResolveRequest struct {
	// Result is the step's result from now on, as if its handler had
	// returned it: the steps depending on it read it. Required.
	Result json.RawMessage `json:"result"`
	Reason string          `json:"reason,omitempty"`
	Actor  string          `json:"actor,omitempty"`
}

// Transition is one state change in a task's or step's history.
type Transition struct {
	From   string          `json:"from_state,omitempty"`
	To     string          `json:"to_state"`
	Reason string          `json:"reason,omitempty"`
	At     time.Time       `json:"at"`
	Meta   json.RawMessage `json:"metadata,omitempty"`
}

// TaskEvent is one event of GET /v1/tasks/{uuid}/events: a state change of
// the task (Kind "task") or of one of its steps (Kind "step").
type TaskEvent struct {
	Kind     string     `json:"kind"`
	TaskUUID uuid.UUID  `json:"task_uuid"`
	StepUUID *uuid.UUID `json:"step_uuid,omitempty"`
	StepName string     `json:"step_name,omitempty"`
	Transition
}

// StepError is the error of a step's latest failed attempt.
type StepError struct {
	Step      string `json:"step_name,omitempty"`
	Message   string `json:"message"`
	Type      string `json:"error_type"`
	Retryable bool   `json:"retryable"`
	Code      string `json:"error_code,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
}

// Task is the API's view of one task (GET /v1/tasks/{uuid}).
type Task struct {
	TaskUUID            uuid.UUID  `json:"task_uuid"`
	Namespace           string     `json:"namespace"`
	Name                string     `json:"name"`
	Version             string     `json:"version"`
	State               string     `json:"state"`
	ExecutionStatus     string     `json:"execution_status"`
	CorrelationID       uuid.UUID  `json:"correlation_id"`
	ParentCorrelationID *uuid.UUID `json:"parent_correlation_id,omitempty"`
	// TraceID is the W3C trace ID of the task's trace (empty when it was created without one).
	TraceID string          `json:"trace_id,omitempty"`
	Context json.RawMessage `json:"context"`
	// Result maps each leaf step (one no other step depends on) to its result, once complete.
	Result       map[string]json.RawMessage `json:"result,omitempty"`
	Error        *StepError                 `json:"error,omitempty"`
	Initiator    string                     `json:"initiator,omitempty"`
	SourceSystem string                     `json:"source_system,omitempty"`
	Reason       string                     `json:"reason,omitempty"`
	Tags         []string                   `json:"tags,omitempty"`
	Priority     int                        `json:"priority"`

	TotalSteps   int `json:"total_steps"`
	PendingSteps int `json:"pending_steps"`
	// EnqueuedSteps wait in their namespace's queue for a worker to claim them.
	EnqueuedSteps int `json:"enqueued_steps"`
	// InProgressSteps are claimed by a worker or have results being applied.
	InProgressSteps int `json:"in_progress_steps"`
	CompletedSteps  int `json:"completed_steps"`
	FailedSteps     int `json:"failed_steps"`
	ReadySteps      int `json:"ready_steps"`

	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	CompletedAt *time.Time   `json:"completed_at,omitempty"`
	Transitions []Transition `json:"transitions,omitempty"`
}

// Terminal reports whether the task can change no more.
func (t *Task) Terminal() bool {
	switch t.State {
	case "complete", "error", "cancelled", "resolved_manually":
		return true
	}
	return false
}

// Step is the API's view of one workflow step (GET /v1/tasks/{uuid}/workflow_steps).
type Step struct {
	StepUUID       uuid.UUID       `json:"step_uuid"`
	TaskUUID       uuid.UUID       `json:"task_uuid"`
	Name           string          `json:"name"`
	Handler        string          `json:"handler"`
	State          string          `json:"state"`
	DependsOn      []string        `json:"depends_on"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	Retryable      bool            `json:"retryable"`
	Result         json.RawMessage `json:"result,omitempty"`
	Error          *StepError      `json:"error,omitempty"`
	NextRetryAt    *time.Time      `json:"next_retry_at,omitempty"`
	LeaseExpiresAt *time.Time      `json:"lease_expires_at,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	CompletedAt    *time.Time      `json:"completed_at,omitempty"`
	Transitions    []Transition    `json:"transitions"`
}

// TemplateStep describes one step of a registered template.
type TemplateStep struct {
	Name           string   `json:"name"`
	Handler        string   `json:"handler"`
	DependsOn      []string `json:"depends_on,omitempty"`
	MaxAttempts    int      `json:"max_attempts"`
	TimeoutSeconds float64  `json:"timeout_seconds"`
}

// Template is a registered task template (GET /v1/templates).
type Template struct {
	Namespace   string         `json:"namespace"`
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	Description string         `json:"description,omitempty"`
	Steps       []TemplateStep `json:"steps"`
}

// APIError is the body of every 4xx/5xx answer: {"error": {...}}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Items names every refused request of a refused batch
	// (POST /v1/tasks/batch, code invalid_items).
	Items []ItemError `json:"items,omitempty"`
	// RetryAfter is the wait the answer's Retry-After header asked for
	// before the next try (503, 429); zero when it asked for none.
	RetryAfter time.Duration `json:"-"`
}

// ItemError is the problem with one request of a batch. Field is the full
// path of the field at fault, such as tasks[3].name.
type ItemError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// TaskBatchRequest is the body of POST /v1/tasks/batch: at most
// MaxTaskBatch task requests, created all together or not at all.
type TaskBatchRequest struct {
	Tasks []TaskRequest `json:"tasks"`
}

// TaskBatch is the answer of POST /v1/tasks/batch: the tasks in request
// order.
type TaskBatch struct {
	Tasks []Task `json:"tasks"`
	// Existing lists the indexes of the requests answered with the task
	// their idempotency key created before (or that an earlier request of the
	// batch with the same key created): nothing was created for them.
	Existing []int `json:"existing,omitempty"`
}

// MaxTaskBatch is the most task requests one POST /v1/tasks/batch may hold.
const MaxTaskBatch = 1000

// Error is the code, the field when there is one, and the message.
func (e *APIError) Error() string {
	msg := e.Message
	// The message names the first refused item of a batch; the others follow.
	for i, it := range e.Items {
		if i > 0 {
			msg += fmt.Sprintf("; %s: %s", it.Field, it.Message)
		}
	}
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, msg)
	}
	return fmt.Sprintf("%s: %s", e.Code, msg)
}

// ErrorBody is the JSON envelope of an APIError.
type ErrorBody struct {
	Error *APIError `json:"error"`
}

// Health is the body of GET /health, /health/ready and /health/live.
type Health struct {
	Status string `json:"status"`
	// Database is "ok" or "unavailable"; /health/live leaves it out.
	Database string `json:"database,omitempty"`
	// Error names the dependency that is down and why, never its address
	// or credentials.
	Error string `json:"error,omitempty"`
}

// TaskList is the body of GET /v1/tasks: one page of tasks, newest first.
type TaskList struct {
	Tasks []Task `json:"tasks"`
	// NextCursor, when not empty, is the Cursor of the next (older) page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Page sizes of GET /v1/tasks.
const (
	DefaultTaskListLimit = 50
	MaxTaskListLimit     = 500
)

// TaskFilter selects tasks to list (GET /v1/tasks). Every field set narrows
// the selection; the zero value lists every task, newest first.
type TaskFilter struct {
	// States keeps tasks in any of these states.
	States    []string
	Namespace string
	// Name is a template name.
	Name string
	// CreatedAfter and CreatedBefore bound the creation time, exclusive.
	CreatedAfter        *time.Time
	CreatedBefore       *time.Time
	CorrelationID       *uuid.UUID
	ParentCorrelationID *uuid.UUID
	// Limit is the page size: 0 means DefaultTaskListLimit, at most MaxTaskListLimit.
	Limit int
	// Cursor is a TaskList.NextCursor, to read the page after it.
	Cursor string
}

// Query is the filter as GET /v1/tasks query parameters.
func (f TaskFilter) Query() url.Values {
	v := url.Values{}
	if len(f.States) > 0 {
		v.Set("state", strings.Join(f.States, ","))
	}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("namespace", f.Namespace)
	set("name", f.Name)
	if f.CreatedAfter != nil {
		v.Set("created_after", f.CreatedAfter.Format(time.RFC3339Nano))
	}
	if f.CreatedBefore != nil {
		v.Set("created_before", f.CreatedBefore.Format(time.RFC3339Nano))
	}
	if f.CorrelationID != nil {
		v.Set("correlation_id", f.CorrelationID.String())
	}
	if f.ParentCorrelationID != nil {
		v.Set("parent_correlation_id", f.ParentCorrelationID.String())
	}
	if f.Limit != 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	set("cursor", f.Cursor)
	return v
}

// TemplateList is the body of GET /v1/templates.
type TemplateList struct {
	Templates []Template `json:"templates"`
}

// QueueInfo is one queue in GET /v1/queues.
type QueueInfo struct {
	Queue string `json:"queue"`
	// Depth counts the queue's messages, Claimable those visible now.
	Depth     int64 `json:"depth"`
	Claimable int64 `json:"claimable"`
	// OldestClaimableAgeSeconds is how long the oldest claimable message has waited.
	OldestClaimableAgeSeconds float64 `json:"oldest_claimable_age_seconds"`
}

// QueueList is the body of GET /v1/queues.
type QueueList struct {
	Queues []QueueInfo `json:"queues"`
}

// WorkerInfo is one live worker in GET /v1/workers.
type WorkerInfo struct {
	WorkerID        string    `json:"worker_id"`
	Namespaces      []string  `json:"namespaces"`
	Hostname        string    `json:"hostname,omitempty"`
	PID             int       `json:"pid,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	LastHeartbeatAt time.Time `json:"last_heartbeat_at"`
}

// NamespaceWorkers counts the live workers serving one registered namespace.
type NamespaceWorkers struct {
	Namespace   string `json:"namespace"`
	LiveWorkers int    `json:"live_workers"`
}

// WorkerList is the body of GET /v1/workers.
type WorkerList struct {
	Workers []WorkerInfo `json:"workers"`
	// Namespaces lists every registered namespace, those no live worker serves with 0.
	Namespaces []NamespaceWorkers `json:"namespaces"`
}

// CorrelationIDHeader carries a request's correlation ID in and the task's
// correlation ID out of the REST API.
const CorrelationIDHeader = "X-Correlation-ID"

// Codes of APIError. They are part of the wire contract: clients branch on
// them, so existing values never change meaning.
const (
	CodeBodyTooLarge             = "body_too_large"
	CodeMalformedJSON            = "malformed_json"
	CodeUnknownField             = "unknown_field"
	CodeMissingField             = "missing_field"
	CodeInvalidField             = "invalid_field"
	CodeConflictingCorrelationID = "conflicting_correlation_id"
	CodeUnsupportedMediaType     = "unsupported_media_type"
	CodeNotFound                 = "not_found"
	CodeUnknownTemplate          = "unknown_template"
	CodeUnknownVersion           = "unknown_version"
	CodeMethodNotAllowed         = "method_not_allowed"
	CodeIdempotencyConflict      = "idempotency_conflict"
	// CodeInvalidItems: requests of a batch were refused; APIError.Items
	// names each, and nothing of the batch was created.
	CodeInvalidItems = "invalid_items"
	// CodeStateConflict: the task's or step's state does not allow the
	// operation (cancelling a completed task, retrying a running one).
	CodeStateConflict = "state_conflict"
	// CodeTooManyWaiters: the server holds as many waiting requests as it
	// allows; the answer's Retry-After says when to try again.
	CodeTooManyWaiters = "too_many_waiters"
	// CodeAlreadyExists: a schedule of that name exists.
	CodeAlreadyExists = "already_exists"
	CodeInternal      = "internal"
	// CodeUnavailable (503, with Retry-After) means the server cannot reach
	// its database: the same request may succeed when retried later.
	CodeUnavailable = "unavailable"
)
