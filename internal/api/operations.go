package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// routeOperations mounts the operator actions on tasks.
func (s *server) routeOperations() {
	s.handle("POST /v1/tasks/{uuid}/cancel", s.cancelTask)
	s.handle("POST /v1/tasks/{uuid}/retry", s.retryTask)
	s.handle("POST /v1/tasks/{uuid}/steps/{step}/resolve", s.resolveStep)
	s.handle("GET /v1/tasks/{uuid}/events", s.taskEvents)
}

func (s *server) cancelTask(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	var req client.CancelRequest
	fields, e := s.readOperation(w, r, "reason", "actor", "children")
	if e == nil {
		e = decodeOperation(fields, &req.Reason, &req.Actor)
	}
	if e == nil {
		_, e = decodeField(fields, "children", "a boolean", &req.Children)
	}
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	task, err := s.backend.CancelTask(r.Context(), id, req)
	s.answerOperation(w, r, "cancelling task", id.String(), task, err)
}

func (s *server) retryTask(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	var req client.RetryRequest
	fields, e := s.readOperation(w, r, "reason", "actor")
	if e == nil {
		e = decodeOperation(fields, &req.Reason, &req.Actor)
	}
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	task, err := s.backend.RetryTask(r.Context(), id, req)
	s.answerOperation(w, r, "retrying task", id.String(), task, err)
}

func (s *server) resolveStep(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	var req client.ResolveRequest
	fields, e := s.readOperation(w, r, "result", "reason", "actor")
	if e == nil {
		e = decodeOperation(fields, &req.Reason, &req.Actor)
	}
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	raw, ok := fields["result"]
	if !ok {
		s.writeError(w, r, &client.APIError{Status: http.StatusUnprocessableEntity, Code: client.CodeMissingField, Field: "result",
			Message: "result is required: the JSON value the step produces from now on"})
		return
	}
	req.Result = raw
	task, err := s.backend.ResolveStep(r.Context(), id, r.PathValue("step"), req)
	s.answerOperation(w, r, "resolving step", id.String(), task, err)
}

// readOperation reads an operation's body: a JSON object with only the
// given keys; an empty body is an empty object (curl -X POST).
func (s *server) readOperation(w http.ResponseWriter, r *http.Request, keys ...string) (map[string]json.RawMessage, *client.APIError) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		return nil, e
	}
	if r.ContentLength == 0 {
		return map[string]json.RawMessage{}, nil
	}
	fields, e := s.readObject(w, r)
	if e != nil {
		if e.Message == msgEmptyBody {
			return map[string]json.RawMessage{}, nil
		}
		return nil, e
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(keys, key) {
			return nil, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeUnknownField, Field: key,
				Message: fmt.Sprintf("unknown field %q (known: %s)", key, strings.Join(keys, ", "))}
		}
	}
	return fields, nil
}

func decodeOperation(fields map[string]json.RawMessage, reason, actor *string) *client.APIError {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"reason", reason}, {"actor", actor}} {
		if _, e := decodeField(fields, f.name, "a string", f.dst); e != nil {
			return e
		}
		var fe *taskreq.FieldError
		if errors.As(taskreq.CheckText(f.name, *f.dst), &fe) {
			return FieldAPIError(fe)
		}
	}
	return nil
}

func (s *server) answerOperation(w http.ResponseWriter, r *http.Request, op, id string, task *client.Task, err error) {
	if err != nil {
		s.writeBackendError(w, r, op, "task "+id, "task_uuid", err)
		return
	}
	w.Header().Set(client.CorrelationIDHeader, task.CorrelationID.String())
	s.writeJSON(w, r, http.StatusOK, task)
}
