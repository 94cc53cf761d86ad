package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/taskreq"
)

func (s *server) routeSchedules() {
	s.handle("POST /v1/schedules", s.createSchedule)
	s.handle("GET /v1/schedules", s.listSchedules)
	s.handle("DELETE /v1/schedules/{name}", s.deleteSchedule)
}

func (s *server) createSchedule(w http.ResponseWriter, r *http.Request) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		s.writeError(w, r, e)
		return
	}
	fields, e := s.readObject(w, r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		switch key {
		case "name", "cron", "time_zone", "task":
		default:
			s.writeError(w, r, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeUnknownField, Field: key,
				Message: fmt.Sprintf("unknown field %q", key)})
			return
		}
	}
	var req client.ScheduleRequest
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &req.Name}, {"cron", &req.Cron}, {"time_zone", &req.TimeZone}} {
		if _, e := decodeField(fields, f.name, "a string", f.dst); e != nil {
			s.writeError(w, r, e)
			return
		}
	}
	for _, f := range []string{"name", "cron", "task"} {
		if _, ok := fields[f]; !ok {
			s.writeError(w, r, &client.APIError{Status: http.StatusUnprocessableEntity, Code: client.CodeMissingField, Field: f,
				Message: f + " is required"})
			return
		}
	}
	dec := json.NewDecoder(bytesReader(fields["task"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req.Task); err != nil || jsonKind(fields["task"]) != "object" {
		s.writeError(w, r, invalid("task", "task must be a task request object (namespace, name, context, …)"))
		return
	}
	var fe *taskreq.FieldError
	if errors.As(taskreq.Validate(&req.Task), &fe) {
		fe.Field = "task." + fe.Field
		s.writeError(w, r, FieldAPIError(fe))
		return
	}
	sc, err := s.backend.CreateSchedule(r.Context(), req)
	if err != nil {
		s.writeBackendError(w, r, "creating schedule", "template", "task.name", err)
		return
	}
	w.Header().Set("Location", "/v1/schedules/"+sc.Name)
	s.writeJSON(w, r, http.StatusCreated, sc)
}

func (s *server) listSchedules(w http.ResponseWriter, r *http.Request) {
	list, err := s.backend.ListSchedules(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "listing schedules", "schedules", "", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, client.ScheduleList{Schedules: nonNil(list)})
}

func (s *server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.backend.DeleteSchedule(r.Context(), name); err != nil {
		s.writeBackendError(w, r, "deleting schedule", "schedule "+name, "name", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
