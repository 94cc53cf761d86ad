package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// createTasks is POST /v1/tasks/batch: {"tasks": [<task request>...]}, each
// element what POST /v1/tasks takes, created in one transaction. A batch with
// any refused request is refused whole, naming every refused request by
// index; nothing of it is written. Each task gets its own correlation ID (its
// correlation_id, else a new UUIDv7); the X-Correlation-ID header names no
// task here and is not used for one.
func (s *server) createTasks(w http.ResponseWriter, r *http.Request) {
	reqs, apiErr := s.decodeTaskBatch(w, r)
	if apiErr != nil {
		s.writeError(w, r, apiErr)
		return
	}
	tasks, existing, err := s.backend.CreateTasks(r.Context(), reqs)
	var be *taskreq.BatchError
	if errors.As(err, &be) {
		s.writeError(w, r, BatchAPIError(be))
		return
	}
	if err != nil {
		s.writeBackendError(w, r, "creating tasks", "template", "tasks", err)
		return
	}
	out := client.TaskBatch{Tasks: nonNil(tasks)}
	status := http.StatusOK
	for i, ex := range existing {
		if ex {
			out.Existing = append(out.Existing, i)
		} else {
			// Something was created: an all-repeats batch alone answers 200,
			// as an idempotent repeat of one task does.
			status = http.StatusCreated
		}
	}
	s.writeJSON(w, r, status, out)
}

// decodeTaskBatch reads a batch body and parses every task request in it
// with POST /v1/tasks's rules, collecting every refused one.
func (s *server) decodeTaskBatch(w http.ResponseWriter, r *http.Request) ([]client.TaskRequest, *client.APIError) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		return nil, e
	}
	fields, e := s.readObject(w, r)
	if e != nil {
		return nil, e
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if key != "tasks" {
			return nil, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeUnknownField, Field: key,
				Message: fmt.Sprintf("unknown field %q (a batch is {\"tasks\": [...]})", key)}
		}
	}
	raw, ok := fields["tasks"]
	if !ok || jsonKind(raw) == "null" {
		return nil, &client.APIError{Status: http.StatusUnprocessableEntity, Code: client.CodeMissingField, Field: "tasks",
			Message: "tasks is required"}
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid("tasks", "tasks must be an array of task requests, got "+jsonKind(raw))
	}
	switch {
	case len(elems) == 0:
		return nil, invalid("tasks", "tasks must hold at least one task request")
	case len(elems) > client.MaxTaskBatch:
		return nil, invalid("tasks", fmt.Sprintf("at most %d task requests fit in one batch, got %d", client.MaxTaskBatch, len(elems)))
	}
	reqs := make([]client.TaskRequest, len(elems))
	var items []client.ItemError
	var statuses []int
	for i, el := range elems {
		var f map[string]json.RawMessage
		if err := json.Unmarshal(el, &f); err != nil || f == nil {
			e := invalid("", "a task request must be a JSON object, got "+jsonKind(el))
			items, statuses = append(items, itemError(i, e)), append(statuses, e.Status)
			continue
		}
		req, e := parseTaskRequest(f, func(bodyID uuid.UUID, has bool) (uuid.UUID, *client.APIError) {
			if has {
				return bodyID, nil
			}
			return newCorrelationID()
		})
		if e != nil {
			items, statuses = append(items, itemError(i, e)), append(statuses, e.Status)
			continue
		}
		reqs[i] = req
	}
	if len(items) > 0 {
		return nil, batchError(len(elems), items, func(i int) int { return statuses[i] })
	}
	return reqs, nil
}

// itemError names e's field by its path in the batch: tasks[3].name.
func itemError(index int, e *client.APIError) client.ItemError {
	field := fmt.Sprintf("tasks[%d]", index)
	if e.Field != "" {
		field += "." + e.Field
	}
	return client.ItemError{Index: index, Code: e.Code, Field: field, Message: e.Message}
}

// batchError refuses a batch. Its status is the items' when they agree (all
// unknown templates: 404; all key conflicts: 409; all malformed: 400), else
// 422.
func batchError(total int, items []client.ItemError, status func(i int) int) *client.APIError {
	st := status(0)
	for i := range items {
		if status(i) != st {
			st = http.StatusUnprocessableEntity
			break
		}
	}
	first := items[0]
	return &client.APIError{Status: st, Code: client.CodeInvalidItems, Field: first.Field,
		Message: fmt.Sprintf("%d of %d task requests refused, nothing was created; first: %s: %s", len(items), total, first.Field, first.Message),
		Items:   items}
}

// BatchAPIError is how a refused batch is answered: every refused request
// by index, nothing created. The in-process API (package tasker) returns the
// same value.
func BatchAPIError(be *taskreq.BatchError) *client.APIError {
	items := make([]client.ItemError, len(be.Items))
	for i, it := range be.Items {
		items[i] = itemError(it.Index, FieldAPIError(it.FieldError))
	}
	return batchError(be.Total, items, func(i int) int { return FieldAPIError(be.Items[i].FieldError).Status })
}
