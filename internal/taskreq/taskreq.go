// Package taskreq validates task requests. The REST API and the task-request
// queue both create tasks from client.TaskRequest values and must refuse the
// same ones with the same words, so the rules live here once; its errors are
// domain errors that only the API edge turns into HTTP answers.
package taskreq

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/state"
)

// Limits of a TaskRequest: tags stay usable as an index key, priority inside
// the range the enqueuer orders by, and the free-text fields fit their
// columns.
const (
	MaxTags       = 64
	MaxTagLength  = 128
	MinPriority   = -100
	MaxPriority   = 100
	MaxTextLength = 128
	// MaxIdempotencyKeyLength leaves room for a UUID, a hash or a business
	// key such as "order-12345-charge".
	MaxIdempotencyKeyLength = 255
)

var (
	// identifierRE is what a namespace or template name must look like: it
	// becomes part of queue names, so it must be a safe SQL identifier.
	identifierRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// semverRE is a plain X.Y.Z version, without leading zeros as SemVer 2.0 says.
	semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
)

// Kind tells how a FieldError is answered.
type Kind int

// Kinds of FieldError.
const (
	// Invalid: the field's value breaks a rule (HTTP 422).
	Invalid Kind = iota
	// Missing: a required field is absent (HTTP 422).
	Missing
	// NotFound: the field names something that does not exist, such as an
	// unregistered template (HTTP 404).
	NotFound
	// Conflict: the request clashes with what exists, such as an idempotency
	// key already used for a different request (HTTP 409).
	Conflict
)

// FieldError is a request that can never succeed, naming the field at fault.
type FieldError struct {
	Field string
	// Code is one of the client.Code* values or a more specific one
	// (unknown_template, unknown_version).
	Code    string
	Kind    Kind
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// Codes of FieldErrors beyond the generic ones.
const (
	CodeUnknownTemplate = client.CodeUnknownTemplate
	CodeUnknownVersion  = client.CodeUnknownVersion
	// CodeIdempotencyConflict: the key was used before for another request.
	CodeIdempotencyConflict = client.CodeIdempotencyConflict
)

// Invalidf is an Invalid FieldError of field.
func Invalidf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Code: client.CodeInvalidField, Kind: Invalid, Message: fmt.Sprintf(format, args...)}
}

// IsFieldError reports whether err is (or wraps) a FieldError.
func IsFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}

// Validate checks everything about req that needs no database: identifiers,
// version, context, priority, tags and the free-text fields. It returns the
// first problem as a *FieldError.
func Validate(req *client.TaskRequest) error {
	for _, f := range []struct{ name, value string }{{"namespace", req.Namespace}, {"name", req.Name}} {
		switch {
		case f.value == "":
			return &FieldError{Field: f.name, Code: client.CodeMissingField, Kind: Missing, Message: f.name + " is required"}
		case !identifierRE.MatchString(f.value):
			return Invalidf(f.name, "%s must match %s, got %q", f.name, identifierRE, f.value)
		}
	}
	if req.Version != "" && !semverRE.MatchString(req.Version) {
		return Invalidf("version", "version must be a semantic version X.Y.Z, got %q", req.Version)
	}
	if len(req.Context) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(req.Context, &obj); err != nil || obj == nil {
			return Invalidf("context", "context must be a JSON object")
		}
		if messages.HasEscapedNUL(req.Context) {
			return Invalidf("context", "context must not contain the NUL character (\\u0000)")
		}
	}
	if req.Priority < MinPriority || req.Priority > MaxPriority {
		return Invalidf("priority", "priority must be between %d and %d, got %d", MinPriority, MaxPriority, req.Priority)
	}
	if len(req.Tags) > MaxTags {
		return Invalidf("tags", "at most %d tags are allowed, got %d", MaxTags, len(req.Tags))
	}
	for i, tag := range req.Tags {
		if n := utf8.RuneCountInString(tag); n > MaxTagLength {
			return Invalidf("tags", "tags[%d] is %d characters long, the limit is %d", i, n, MaxTagLength)
		}
		if strings.ContainsRune(tag, 0) {
			return Invalidf("tags", "tags[%d] must not contain the NUL character", i)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"initiator", req.Initiator}, {"source_system", req.SourceSystem}, {"reason", req.Reason}} {
		if n := utf8.RuneCountInString(f.value); n > MaxTextLength {
			return Invalidf(f.name, "%s is %d characters long, the limit is %d", f.name, n, MaxTextLength)
		}
		if strings.ContainsRune(f.value, 0) {
			return Invalidf(f.name, "%s must not contain the NUL character", f.name)
		}
	}
	if _, err := RunAt(req, time.Now()); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(req.IdempotencyKey); n > MaxIdempotencyKeyLength {
		return Invalidf("idempotency_key", "idempotency_key is %d characters long, the limit is %d", n, MaxIdempotencyKeyLength)
	}
	if strings.ContainsRune(req.IdempotencyKey, 0) {
		return Invalidf("idempotency_key", "idempotency_key must not contain the NUL character")
	}
	return nil
}

// Fingerprint is what an idempotent request asked for, as a hash: two
// requests with one key are the same request when their fingerprints are
// equal. The correlation ID is left out (a client retrying may trace each
// attempt anew), and the context is compared as JSON, not as text, so key
// order and spacing do not matter.
func Fingerprint(req *client.TaskRequest) string {
	var taskCtx any
	if len(req.Context) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(req.Context)))
		dec.UseNumber()
		if dec.Decode(&taskCtx) != nil {
			taskCtx = string(req.Context)
		}
	}
	if taskCtx == nil {
		taskCtx = map[string]any{}
	}
	tags := req.Tags
	if tags == nil {
		tags = []string{}
	}
	b, _ := json.Marshal(struct {
		Namespace, Name, Version        string
		Context                         any
		Parent                          *string
		Initiator, SourceSystem, Reason string
		Tags                            []string
		Priority                        int
		RunAt                           *time.Time
		Delay                           string
	}{req.Namespace, req.Name, req.Version, taskCtx, uuidString(req.ParentCorrelationID),
		req.Initiator, req.SourceSystem, req.Reason, tags, req.Priority, req.RunAt, req.Delay})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func uuidString(id *uuid.UUID) *string {
	if id == nil {
		return nil
	}
	s := id.String()
	return &s
}

// ValidateFilter checks a task listing's filter: known states, well-formed
// names and a page size within bounds (0 stands for the default). It returns
// the first problem as a *FieldError naming the query parameter.
func ValidateFilter(f *client.TaskFilter) error {
	for _, st := range f.States {
		if !state.Task(st).Valid() {
			return Invalidf("state", "state must be one of %s, got %q", taskStateList(), st)
		}
	}
	for _, p := range []struct{ name, value string }{{"namespace", f.Namespace}, {"name", f.Name}} {
		if p.value != "" && !identifierRE.MatchString(p.value) {
			return Invalidf(p.name, "%s must match %s, got %q", p.name, identifierRE, p.value)
		}
	}
	if f.Limit < 0 || f.Limit > client.MaxTaskListLimit {
		return Invalidf("limit", "limit must be between 1 and %d, got %d", client.MaxTaskListLimit, f.Limit)
	}
	if f.CreatedAfter != nil && f.CreatedBefore != nil && !f.CreatedAfter.Before(*f.CreatedBefore) {
		return Invalidf("created_before", "created_before must be later than created_after")
	}
	return nil
}

func taskStateList() string {
	names := make([]string, len(state.TaskStates))
	for i, s := range state.TaskStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// CheckText checks a free-text field (a reason, an actor): at most
// MaxTextLength characters and no NUL, which PostgreSQL text cannot hold.
func CheckText(field, value string) error {
	if n := utf8.RuneCountInString(value); n > MaxTextLength {
		return Invalidf(field, "%s is %d characters long, the limit is %d", field, n, MaxTextLength)
	}
	if strings.ContainsRune(value, 0) {
		return Invalidf(field, "%s must not contain the NUL character", field)
	}
	return nil
}

// MaxDelay bounds how far ahead a task may be delayed.
const MaxDelay = 366 * 24 * time.Hour

// RunAt is when req's first steps may run: its RunAt, now plus its Delay,
// or the zero time when neither is given (at once).
func RunAt(req *client.TaskRequest, now time.Time) (time.Time, error) {
	switch {
	case req.RunAt != nil && req.Delay != "":
		return time.Time{}, Invalidf("delay", "give run_at or delay, not both")
	case req.RunAt != nil:
		if req.RunAt.Sub(now) > MaxDelay {
			return time.Time{}, Invalidf("run_at", "run_at must be within %s, got %s", MaxDelay, req.RunAt.Format(time.RFC3339))
		}
		return *req.RunAt, nil
	case req.Delay != "":
		d, err := time.ParseDuration(req.Delay)
		if err != nil || d < 0 || d > MaxDelay {
			return time.Time{}, Invalidf("delay", "delay must be a duration between 0s and %s such as 90s or 2h, got %q", MaxDelay, req.Delay)
		}
		return now.Add(d), nil
	}
	return time.Time{}, nil
}

// MaxBatch is the most task requests one batch may hold: a batch is one
// transaction, and its locks and answer grow with it.
const MaxBatch = client.MaxTaskBatch

// ItemError is the problem with one request of a batch, by its index.
type ItemError struct {
	Index int
	*FieldError
}

// BatchError refuses a batch of task requests, naming every request that can
// never succeed. Nothing of the batch is written.
type BatchError struct {
	// Total is the number of requests in the batch.
	Total int
	Items []ItemError
}

func (e *BatchError) Error() string {
	first := e.Items[0]
	return fmt.Sprintf("%d of %d task requests refused; request %d: %s: %s", len(e.Items), e.Total, first.Index,
		first.Field, first.Message)
}
