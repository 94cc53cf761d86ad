// Package messages defines what travels on Tasker's queues. Bodies are small
// JSON objects; the full task and step state is read from the database, and
// trace context travels in the queue's headers column (Headers).
package messages

import (
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
)

// TaskRequestMessage asks orchestration to create a task
// (queue orchestration_task_requests).
type TaskRequestMessage struct {
	RequestID     uuid.UUID          `json:"request_id"`
	CorrelationID uuid.UUID          `json:"correlation_id"`
	TaskRequest   client.TaskRequest `json:"task_request"`
	RequestedAt   time.Time          `json:"requested_at"`
	Requester     string             `json:"requester,omitempty"`
	// Headers are the message's queue headers (W3C trace context, baggage).
	Headers map[string]string `json:"-"`
}

// StepMessage hands a step to a worker (queue worker_<namespace>_queue). It is
// built by the SQL function enqueue_steps.
type StepMessage struct {
	TaskUUID      uuid.UUID         `json:"task_uuid"`
	StepUUID      uuid.UUID         `json:"step_uuid"`
	CorrelationID uuid.UUID         `json:"correlation_id"`
	Namespace     string            `json:"namespace"`
	StepName      string            `json:"step_name"`
	Attempt       int               `json:"attempt"`
	Headers       map[string]string `json:"-"`
}

// StepResultMessage tells orchestration a step attempt finished (queue
// orchestration_step_results). The result itself is stored on the step row.
// It is built by the SQL function submit_step_result.
type StepResultMessage struct {
	TaskUUID      uuid.UUID         `json:"task_uuid"`
	StepUUID      uuid.UUID         `json:"step_uuid"`
	CorrelationID uuid.UUID         `json:"correlation_id"`
	StepName      string            `json:"step_name"`
	Attempt       int               `json:"attempt"`
	Success       bool              `json:"success"`
	WorkerID      string            `json:"worker_id"`
	Headers       map[string]string `json:"-"`
}

// StepExecutionResult is what the worker stores in workflow_steps.results.
type StepExecutionResult struct {
	StepUUID uuid.UUID      `json:"step_uuid"`
	Success  bool           `json:"success"`
	Status   string         `json:"status"` // completed | failed
	Result   any            `json:"result"`
	Error    *ResultError   `json:"error,omitempty"`
	Metadata ResultMetadata `json:"metadata"`
}

// ResultError is the error of a failed attempt.
type ResultError struct {
	Message   string `json:"message"`
	ErrorType string `json:"error_type"`
	ErrorCode string `json:"error_code,omitempty"`
	Retryable bool   `json:"retryable"`
}

// ResultMetadata describes the attempt.
type ResultMetadata struct {
	ExecutionTimeMs float64   `json:"execution_time_ms"`
	Retryable       bool      `json:"retryable"`
	Attempt         int       `json:"attempt"`
	WorkerID        string    `json:"worker_id"`
	StartedAt       time.Time `json:"started_at"`
	CompletedAt     time.Time `json:"completed_at"`
	CorrelationID   uuid.UUID `json:"correlation_id"`
	// Traceparent is the attempt's worker span, so the next attempt can link to it.
	Traceparent string         `json:"traceparent,omitempty"`
	Custom      map[string]any `json:"custom,omitempty"`
}

// HasEscapedNUL reports whether JSON text holds a \u0000 escape, which
// PostgreSQL's jsonb cannot store. A raw NUL byte is not valid JSON, so the
// escape is the only way one can appear; `\\u0000` (an escaped backslash
// followed by "u0000") is not one.
func HasEscapedNUL(raw []byte) bool {
	backslashes := 0
	for i, c := range raw {
		if c == '\\' {
			backslashes++
			continue
		}
		if c == 'u' && backslashes%2 == 1 && strings.HasPrefix(string(raw[i+1:min(i+5, len(raw))]), "0000") {
			return true
		}
		backslashes = 0
	}
	return false
}
