package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// isTaskRequestField reports whether key is a JSON key of client.TaskRequest.
// Anything else in a body is rejected so that a misspelt optional field is
// not silently lost.
func isTaskRequestField(key string) bool {
	switch key {
	case "namespace", "name", "version", "context",
		"correlation_id", "parent_correlation_id",
		"initiator", "source_system", "reason",
		"tags", "priority", "idempotency_key", "run_at", "delay":
		return true
	}
	return false
}

func (s *server) createTask(w http.ResponseWriter, r *http.Request) {
	req, apiErr := s.decodeTaskRequest(w, r)
	if apiErr != nil {
		s.writeError(w, r, apiErr)
		return
	}
	if req.CorrelationID != nil {
		// The request's server span (otelhttp) is the task's trace root: name the workflow on it.
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("correlation_id", req.CorrelationID.String()))
	}
	task, existing, err := s.backend.CreateTask(r.Context(), req)
	if err != nil {
		s.writeBackendError(w, r, "creating task", "template", "name", err)
		return
	}
	w.Header().Set(client.CorrelationIDHeader, task.CorrelationID.String())
	w.Header().Set("Location", "/v1/tasks/"+task.TaskUUID.String())
	status := http.StatusCreated
	if existing {
		// An idempotent repeat: the same answer, but nothing was created.
		status = http.StatusOK
	}
	s.writeJSON(w, r, status, task)
}

// decodeTaskRequest reads and validates the body of POST /v1/tasks and
// resolves its correlation ID (body, else header, else a new UUIDv7), which it
// also sets on the response so even a rejected request can be traced.
func (s *server) decodeTaskRequest(w http.ResponseWriter, r *http.Request) (client.TaskRequest, *client.APIError) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		return client.TaskRequest{}, e
	}
	headerID, hasHeaderID, e := parseHeaderCorrelationID(r)
	if e != nil {
		return client.TaskRequest{}, e
	}
	fields, e := s.readObject(w, r)
	if e != nil {
		return client.TaskRequest{}, e
	}
	return parseTaskRequest(fields, func(bodyID uuid.UUID, hasBodyID bool) (uuid.UUID, *client.APIError) {
		switch {
		case hasBodyID && hasHeaderID && bodyID != headerID:
			// Neither ID is the task's: do not echo one as if it were.
			w.Header().Del(client.CorrelationIDHeader)
			return bodyID, &client.APIError{Status: http.StatusUnprocessableEntity, Code: client.CodeConflictingCorrelationID, Field: "correlation_id",
				Message: fmt.Sprintf("body correlation_id %s differs from %s header %s", bodyID, client.CorrelationIDHeader, headerID)}
		case hasBodyID:
		case hasHeaderID:
			bodyID = headerID
		default:
			id, e := newCorrelationID()
			if e != nil {
				return bodyID, e
			}
			bodyID = id
		}
		w.Header().Set(client.CorrelationIDHeader, bodyID.String())
		return bodyID, nil
	})
}

func newCorrelationID() (uuid.UUID, *client.APIError) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, &client.APIError{Status: http.StatusInternalServerError, Code: client.CodeInternal,
			Message: "generating correlation id: " + err.Error()}
	}
	return id, nil
}

// parseTaskRequest turns a task request's JSON fields into a validated
// client.TaskRequest; each error names its field. correlation picks the
// task's correlation ID from the body's (if any): it is called once the
// body's ID is parsed, before the other fields, so its error comes first.
func parseTaskRequest(fields map[string]json.RawMessage,
	correlation func(bodyID uuid.UUID, hasBodyID bool) (uuid.UUID, *client.APIError)) (client.TaskRequest, *client.APIError) {
	var req client.TaskRequest
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if !isTaskRequestField(key) {
			return req, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeUnknownField, Field: key,
				Message: fmt.Sprintf("unknown field %q", key)}
		}
	}
	bodyID, hasBodyID, e := uuidField(fields, "correlation_id")
	if e != nil {
		return req, e
	}
	corr, e := correlation(bodyID, hasBodyID)
	if e != nil {
		return req, e
	}
	req.CorrelationID = &corr

	if parent, ok, e := uuidField(fields, "parent_correlation_id"); e != nil {
		return req, e
	} else if ok {
		req.ParentCorrelationID = &parent
	}
	// Types here, in field order, so each error names its field; the rules
	// every task request obeys (also those from the task-request queue) are
	// taskreq's.
	for _, f := range []struct {
		name string
		dst  *string
	}{{"namespace", &req.Namespace}, {"name", &req.Name}, {"version", &req.Version}} {
		if _, e = decodeField(fields, f.name, "a string", f.dst); e != nil {
			return req, e
		}
	}
	if req.Context, e = contextField(fields); e != nil {
		return req, e
	}
	if _, e = decodeField(fields, "priority", "an integer", &req.Priority); e != nil {
		return req, e
	}
	if _, e = decodeField(fields, "tags", "an array of strings", &req.Tags); e != nil {
		return req, e
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"initiator", &req.Initiator}, {"source_system", &req.SourceSystem}, {"reason", &req.Reason},
		{"idempotency_key", &req.IdempotencyKey}} {
		if _, e = decodeField(fields, f.name, "a string", f.dst); e != nil {
			return req, e
		}
	}
	if _, e = decodeField(fields, "delay", "a duration string such as \"90s\"", &req.Delay); e != nil {
		return req, e
	}
	var runAt time.Time
	if ok, e := decodeField(fields, "run_at", "an RFC 3339 time string", &runAt); e != nil {
		return req, e
	} else if ok {
		req.RunAt = &runAt
	}
	var fe *taskreq.FieldError
	if errors.As(taskreq.Validate(&req), &fe) {
		return req, FieldAPIError(fe)
	}
	return req, nil
}

// checkContentType accepts a missing type (curl -d without -H) and any JSON
// media type, including the structured-syntax suffix form (application/x+json).
func checkContentType(ct string) *client.APIError {
	if ct == "" {
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err == nil && (mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")) {
		return nil
	}
	return &client.APIError{Status: http.StatusUnsupportedMediaType, Code: client.CodeUnsupportedMediaType, Field: "Content-Type",
		Message: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
}

func parseHeaderCorrelationID(r *http.Request) (uuid.UUID, bool, *client.APIError) {
	raw := r.Header.Get(client.CorrelationIDHeader)
	if raw == "" {
		return uuid.Nil, false, nil
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, false, invalid(client.CorrelationIDHeader, fmt.Sprintf("%s header must be a UUID, got %q", client.CorrelationIDHeader, raw))
	}
	return id, true, nil
}

// readObject reads the body as one JSON object, keeping each value raw so
// that every later error can name its field.
func (s *server) readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, *client.APIError) {
	tooLarge := &client.APIError{Status: http.StatusRequestEntityTooLarge, Code: client.CodeBodyTooLarge,
		Message: fmt.Sprintf("request body exceeds %d bytes", s.maxBody)}
	if r.ContentLength > s.maxBody {
		return nil, tooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	var fields map[string]json.RawMessage
	err := dec.Decode(&fields)
	if err == nil {
		// A second value after the object is as malformed as a broken one.
		if _, err = dec.Token(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil && fields == nil:
		return nil, malformed("request body must be a JSON object, got null")
	case err == nil:
		return fields, nil
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case errors.As(err, &syntaxErr):
		return nil, malformed(fmt.Sprintf("malformed JSON at byte offset %d: %v", syntaxErr.Offset, syntaxErr))
	case errors.As(err, &typeErr):
		return nil, malformed("request body must be a JSON object, got " + typeErr.Value)
	case errors.Is(err, io.EOF):
		return nil, malformed(msgEmptyBody)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, malformed("malformed JSON: unexpected end of input")
	default:
		return nil, malformed("malformed JSON: " + err.Error())
	}
}

// decodeField decodes fields[name] into dst. An absent or null field leaves
// dst alone and reports false: null means "not given" for optional fields.
func decodeField[T any](fields map[string]json.RawMessage, name, want string, dst *T) (bool, *client.APIError) {
	raw, ok := fields[name]
	if !ok || jsonKind(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, invalid(name, fmt.Sprintf("%s must be %s, got %s", name, want, describe(raw)))
	}
	return true, nil
}

// uuidField decodes a UUID given as a string; doing it by hand rather than
// through uuid.UUID's UnmarshalJSON lets the error name the field.
func uuidField(fields map[string]json.RawMessage, name string) (uuid.UUID, bool, *client.APIError) {
	var raw string
	ok, e := decodeField(fields, name, "a UUID string", &raw)
	if e != nil || !ok {
		return uuid.Nil, false, e
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, false, invalid(name, fmt.Sprintf("%s must be a UUID, got %q", name, raw))
	}
	return id, true, nil
}

// contextField returns the task context, {} when absent. An explicit null is
// an error rather than {}: a client sending null has a bug worth surfacing.
func contextField(fields map[string]json.RawMessage) (json.RawMessage, *client.APIError) {
	raw, ok := fields["context"]
	if !ok {
		return json.RawMessage(`{}`), nil
	}
	if kind := jsonKind(raw); kind != "object" {
		return nil, invalid("context", "context must be a JSON object, got "+kind)
	}
	return raw, nil
}

// describe names a rejected value briefly: its JSON text when short, else its kind.
func describe(raw json.RawMessage) string {
	if len(raw) <= 40 {
		return string(raw)
	}
	return "a long " + jsonKind(raw)
}

func invalid(field, msg string) *client.APIError {
	return &client.APIError{Status: http.StatusUnprocessableEntity, Code: client.CodeInvalidField, Field: field, Message: msg}
}

// msgEmptyBody is readObject's answer to a body with no JSON value at all;
// operations, whose bodies are optional, take it as an empty object.
const msgEmptyBody = "request body is empty"

func malformed(msg string) *client.APIError {
	return &client.APIError{Status: http.StatusBadRequest, Code: client.CodeMalformedJSON, Message: msg}
}

func (s *server) getTask(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	if r.URL.Query().Has("wait") {
		s.waitTask(w, r, id)
		return
	}
	task, err := s.backend.GetTask(r.Context(), id)
	if err != nil {
		s.writeBackendError(w, r, "getting task", "task "+id.String(), "task_uuid", err)
		return
	}
	w.Header().Set(client.CorrelationIDHeader, task.CorrelationID.String())
	s.writeJSON(w, r, http.StatusOK, task)
}

func (s *server) listSteps(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	steps, err := s.backend.ListSteps(r.Context(), id)
	if err != nil {
		s.writeBackendError(w, r, "listing workflow steps", "task "+id.String(), "task_uuid", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, nonNil(steps))
}

// listTaskParams are the query parameters of GET /v1/tasks.
var listTaskParams = []string{"state", "namespace", "name", "created_after", "created_before",
	"correlation_id", "parent_correlation_id", "limit", "cursor"}

func (s *server) listTasks(w http.ResponseWriter, r *http.Request) {
	f, e := parseTaskFilter(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	if f.CorrelationID != nil {
		w.Header().Set(client.CorrelationIDHeader, f.CorrelationID.String())
	}
	list, err := s.backend.ListTasks(r.Context(), f)
	if err != nil {
		s.writeBackendError(w, r, "listing tasks", "tasks", "", err)
		return
	}
	list.Tasks = nonNil(list.Tasks)
	s.writeJSON(w, r, http.StatusOK, list)
}

// parseTaskFilter reads GET /v1/tasks's query. Every problem is a 400 naming
// the parameter: a misspelt one is refused rather than silently listing more.
func parseTaskFilter(r *http.Request) (client.TaskFilter, *client.APIError) {
	var f client.TaskFilter
	q := r.URL.Query()
	for _, key := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(listTaskParams, key) {
			return f, badParam(client.CodeUnknownField, key, fmt.Sprintf("unknown query parameter %q (known: %s)", key, strings.Join(listTaskParams, ", ")))
		}
		if len(q[key]) > 1 {
			return f, badParam(client.CodeInvalidField, key, fmt.Sprintf("%s is given %d times", key, len(q[key])))
		}
	}
	if v := q.Get("state"); v != "" {
		f.States = strings.Split(v, ",")
	}
	f.Namespace, f.Name, f.Cursor = q.Get("namespace"), q.Get("name"), q.Get("cursor")
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, badParam(client.CodeInvalidField, p.name, fmt.Sprintf("%s must be an RFC 3339 time, got %q", p.name, v))
			}
			*p.dst = &at
		}
	}
	for _, p := range []struct {
		name string
		dst  **uuid.UUID
	}{{"correlation_id", &f.CorrelationID}, {"parent_correlation_id", &f.ParentCorrelationID}} {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				return f, badParam(client.CodeInvalidField, p.name, fmt.Sprintf("%s must be a UUID, got %q", p.name, v))
			}
			*p.dst = &id
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return f, badParam(client.CodeInvalidField, "limit", fmt.Sprintf("limit must be between 1 and %d, got %q", client.MaxTaskListLimit, v))
		}
		f.Limit = n
	}
	var fe *taskreq.FieldError
	if errors.As(taskreq.ValidateFilter(&f), &fe) {
		return f, badParam(fe.Code, fe.Field, fe.Message)
	}
	if f.Cursor != "" {
		if _, err := DecodeCursor(f.Cursor); errors.As(err, &fe) {
			return f, badParam(fe.Code, fe.Field, fe.Message)
		}
	}
	return f, nil
}

func badParam(code, field, msg string) *client.APIError {
	return &client.APIError{Status: http.StatusBadRequest, Code: code, Field: field, Message: msg}
}

func (s *server) listTemplates(w http.ResponseWriter, r *http.Request) {
	templates, err := s.backend.Templates(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "listing templates", "templates", "", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, client.TemplateList{Templates: nonNil(templates)})
}

func pathTaskUUID(r *http.Request) (uuid.UUID, *client.APIError) {
	raw := r.PathValue("uuid")
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeInvalidField, Field: "task_uuid",
			Message: fmt.Sprintf("task_uuid must be a UUID, got %q", raw)}
	}
	return id, nil
}

// nonNil makes an empty result encode as [] rather than null, which clients
// would otherwise have to special-case.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
