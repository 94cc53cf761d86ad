package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
)

// Waiting for tasks: GET /v1/tasks/{uuid}?wait=30s holds the request until
// the task is terminal or the wait ends, and GET /v1/tasks/{uuid}/events
// streams the task's and its steps' transitions as server-sent events. Both
// are woken by the orchestrators' task-terminal NOTIFY (Backend.WatchTask);
// recheckInterval is their safety net for a notification that never comes
// (a backend without one, a lost notification) and the pace at which an
// event stream looks for transitions short of terminal.
const (
	// DefaultMaxWaiters bounds the requests waiting at once when
	// Config.MaxWaiters is zero; more are answered 503 with Retry-After.
	DefaultMaxWaiters = 1000
	// MaxWait is the longest ?wait= accepted.
	MaxWait = 60 * time.Second
	// MaxEventStream is how long one event stream stays open; the client
	// reconnects with Last-Event-ID to go on.
	MaxEventStream = 10 * time.Minute

	waitRecheck   = 5 * time.Second
	streamRecheck = 500 * time.Millisecond
	// retryAfterSeconds is what a 503 for too many waiters suggests.
	retryAfterSeconds = 1
)

// acquireWaiter takes a waiting slot, or answers 503 and reports false.
func (s *server) acquireWaiter(w http.ResponseWriter, r *http.Request) bool {
	select {
	case s.waiters <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		s.writeError(w, r, &client.APIError{Status: http.StatusServiceUnavailable, Code: client.CodeTooManyWaiters,
			Message: fmt.Sprintf("%d requests are already waiting for tasks; retry after %d s", cap(s.waiters), retryAfterSeconds)})
		return false
	}
}

func (s *server) releaseWaiter() { <-s.waiters }

// parseWait reads ?wait=: a Go duration ("30s") or a number of seconds.
func parseWait(raw string) (time.Duration, *client.APIError) {
	d, err := time.ParseDuration(raw)
	if err != nil {
		secs, serr := strconv.ParseFloat(raw, 64)
		if serr != nil {
			return 0, badParam(client.CodeInvalidField, "wait", fmt.Sprintf("wait must be a duration such as 30s, got %q", raw))
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 || d > MaxWait {
		return 0, badParam(client.CodeInvalidField, "wait", fmt.Sprintf("wait must be between 0s and %s, got %s", MaxWait, raw))
	}
	return d, nil
}

// waitTask answers GET /v1/tasks/{uuid}?wait=D: the task once it is terminal,
// or as it is when D has passed (the client looks at its state).
func (s *server) waitTask(w http.ResponseWriter, r *http.Request, id uuid.UUID) {
	d, e := parseWait(r.URL.Query().Get("wait"))
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	if !s.acquireWaiter(w, r) {
		return
	}
	defer s.releaseWaiter()
	// The answer may come late: keep a server write timeout from cutting it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	// Watch before reading, so a notification between the read and the wait is not lost.
	signal, stop := s.backend.WatchTask(id)
	defer stop()
	recheck := time.NewTicker(waitRecheck)
	defer recheck.Stop()
	for {
		task, err := s.backend.GetTask(r.Context(), id)
		if err != nil {
			s.writeBackendError(w, r, "getting task", "task "+id.String(), "task_uuid", err)
			return
		}
		if task.Terminal() || ctx.Err() != nil {
			w.Header().Set(client.CorrelationIDHeader, task.CorrelationID.String())
			s.writeJSON(w, r, http.StatusOK, task)
			return
		}
		select {
		case <-signal:
		case <-recheck.C:
		case <-ctx.Done():
		}
	}
}

// taskEvents streams GET /v1/tasks/{uuid}/events: one server-sent event per
// transition of the task or a step (event: task or step, data: a TaskEvent),
// from the beginning or after Last-Event-ID, ending with "event: end" once
// the task is terminal and everything is sent.
func (s *server) taskEvents(w http.ResponseWriter, r *http.Request) {
	id, e := pathTaskUUID(r)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	var cursor HistoryCursor
	if raw := r.Header.Get("Last-Event-ID"); raw != "" {
		if _, err := fmt.Sscanf(raw, "%d.%d", &cursor.Task, &cursor.Step); err != nil {
			s.writeError(w, r, badParam(client.CodeInvalidField, "Last-Event-ID", fmt.Sprintf("Last-Event-ID must be an id this stream sent, got %q", raw)))
			return
		}
	}
	if !s.acquireWaiter(w, r) {
		return
	}
	defer s.releaseWaiter()
	signal, stop := s.backend.WatchTask(id)
	defer stop()
	// The first read answers 404 for a missing task before the stream starts.
	events, next, err := s.backend.TaskHistory(r.Context(), id, cursor)
	if err != nil {
		s.writeBackendError(w, r, "reading task history", "task "+id.String(), "task_uuid", err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(MaxEventStream + 10*time.Second))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(r.Context(), MaxEventStream)
	defer cancel()
	recheck := time.NewTicker(streamRecheck)
	defer recheck.Stop()
	for {
		for i, ev := range events {
			idLine := ""
			if i == len(events)-1 {
				idLine = fmt.Sprintf("id: %d.%d\n", next.Task, next.Step)
			}
			data, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "%sevent: %s\ndata: %s\n\n", idLine, ev.Kind, data); err != nil {
				return // the client has gone
			}
		}
		if len(events) > 0 {
			if rc.Flush() != nil {
				return
			}
		}
		task, err := s.backend.GetTask(ctx, id)
		if err == nil && task.Terminal() {
			// Transitions recorded with the terminal one are read once more.
			if events, next, err = s.backend.TaskHistory(ctx, id, next); err == nil && len(events) == 0 {
				_, _ = fmt.Fprintf(w, "event: end\ndata: %s\n\n", mustJSON(map[string]string{"state": task.State}))
				_ = rc.Flush()
				return
			}
			if err == nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				s.logger.WarnContext(r.Context(), "task event stream ended by an error", "task_uuid", id, "error", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-signal:
		case <-recheck.C:
		}
		if events, next, err = s.backend.TaskHistory(ctx, id, next); err != nil {
			return
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
