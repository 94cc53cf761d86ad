// Package api is the REST API of the orchestration server: it validates
// requests, hands them to a Backend and answers in JSON, errors included.
package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// DefaultMaxBodyBytes bounds a request body when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes int64 = 1 << 20

// healthPingTimeout bounds the database check of GET /health so that a hung
// database fails the probe instead of hanging it past the prober's own timeout.
const healthPingTimeout = 2 * time.Second

// Config configures NewHandler. Zero values mean the documented default.
type Config struct {
	// Backend is the engine the API talks to. Required.
	Backend Backend
	// Logger receives one debug record per request and an error record per
	// internal failure. Nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; a larger body is answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxWaiters bounds the requests waiting for tasks at once (long-polls
	// with ?wait= and event streams); more are answered 503 with
	// Retry-After. Zero means DefaultMaxWaiters.
	MaxWaiters int
	// Traces answers GET /v1/traces/{trace_id} (TracesPattern), a task's
	// trace as the tracing backend has it; its answers are passed through
	// untouched. Nil: 404, no tracing backend.
	Traces http.Handler
	// Extra mounts more handlers on the same server, keyed by http.ServeMux
	// pattern (e.g. "GET /metrics"), outside /v1/. They share the request log
	// and the panic recovery; their answers are passed through untouched.
	Extra map[string]http.Handler
}

type server struct {
	backend Backend
	logger  *slog.Logger
	maxBody int64
	mux     *http.ServeMux
	waiters chan struct{}
	routes  []string
}

// NewHandler returns the API as one http.Handler, or an error naming what is
// wrong with cfg.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api config: Backend is required")
	}
	if cfg.MaxWaiters < 0 {
		return nil, fmt.Errorf("api config: MaxWaiters must not be negative, got %d", cfg.MaxWaiters)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api config: MaxBodyBytes must not be negative, got %d", cfg.MaxBodyBytes)
	}
	s := &server{
		backend: cfg.Backend,
		logger:  cmp.Or(cfg.Logger, slog.Default()),
		maxBody: cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		mux:     http.NewServeMux(),
		waiters: make(chan struct{}, cmp.Or(cfg.MaxWaiters, DefaultMaxWaiters)),
	}
	s.handle("POST /v1/tasks", s.createTask)
	s.handle("POST /v1/tasks/batch", s.createTasks)
	s.handle("GET /v1/tasks", s.listTasks)
	s.handle("GET /v1/tasks/{uuid}", s.getTask)
	s.handle("GET /v1/tasks/{uuid}/workflow_steps", s.listSteps)
	s.handle("GET /v1/templates", s.listTemplates)
	for pattern, h := range (Health{Ping: cfg.Backend.Ping, Logger: s.logger}).Routes() {
		s.routes = append(s.routes, pattern)
		s.mux.Handle(pattern, h)
	}
	s.routeOperations()
	s.routeSchedules()
	s.routeConsole(cfg.Traces)
	if err := s.routeOpenAPI(); err != nil {
		return nil, err
	}
	// Sorted so that a bad configuration always reports the same pattern.
	for _, pattern := range slices.Sorted(maps.Keys(cfg.Extra)) {
		if _, path, _ := strings.Cut(pattern, " "); strings.HasPrefix(cmp.Or(path, pattern), "/v1/") {
			// Everything under /v1/ is an API operation, in the router and in
			// the OpenAPI document that a test checks against it.
			return nil, fmt.Errorf("api config: Extra %q is under /v1/, which holds only the API's own routes", pattern)
		}
		if err := mount(s.mux, pattern, cfg.Extra[pattern]); err != nil {
			return nil, fmt.Errorf("api config: mounting %q: %w", pattern, err)
		}
	}
	return s, nil
}

// mount turns ServeMux's panics on invalid or conflicting patterns into an
// error, because a bad Extra entry is a configuration mistake, not a bug.
func mount(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	if h == nil {
		return errors.New("nil handler")
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	// Echo a well-formed incoming correlation ID on every answer; handlers that
	// know the task's own ID overwrite it. A malformed one is not echoed: only
	// POST /v1/tasks rejects it, everywhere else it is ignored.
	if raw := r.Header.Get(client.CorrelationIDHeader); raw != "" {
		if id, err := uuid.Parse(raw); err == nil && id != uuid.Nil {
			rec.Header().Set(client.CorrelationIDHeader, id.String())
		}
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.logger.LogAttrs(r.Context(), slog.LevelError, "api handler panicked",
				correlationAttr(rec),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Any("panic", p),
				slog.String("stack", string(debug.Stack())))
			// Once the status line is out the client can only see a cut-off body.
			if rec.status == 0 {
				s.writeError(rec, r, &client.APIError{Status: http.StatusInternalServerError, Code: client.CodeInternal, Message: "internal error"})
			}
		}
		s.logRequest(rec, r, start)
	}()
	s.route(rec, r)
}

func (s *server) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// ServeMux answers unmatched requests in plain text. Run its handler into
	// a probe only to learn 404 from 405 (and the Allow header), then answer in
	// JSON like every other error.
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		s.writeError(w, r, &client.APIError{
			Status:  http.StatusMethodNotAllowed,
			Code:    client.CodeMethodNotAllowed,
			Message: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow),
		})
		return
	}
	s.writeError(w, r, &client.APIError{
		Status:  http.StatusNotFound,
		Code:    client.CodeNotFound,
		Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path),
	})
}

func (s *server) logRequest(rec *statusRecorder, r *http.Request, start time.Time) {
	if !s.logger.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK // net/http's answer when a handler writes nothing
	}
	attrs := make([]slog.Attr, 0, 5)
	if id := rec.Header().Get(client.CorrelationIDHeader); id != "" {
		attrs = append(attrs, slog.String("correlation_id", id))
	}
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	s.logger.LogAttrs(r.Context(), slog.LevelDebug, "http request", attrs...)
}

// correlationAttr is the correlation ID already chosen for the answer, so that
// error records can be joined with the client's view of the request.
func correlationAttr(w http.ResponseWriter) slog.Attr {
	return slog.String("correlation_id", w.Header().Get(client.CorrelationIDHeader))
}

// writeJSON encodes v before writing the status so that an unencodable value
// (say, invalid raw JSON from the backend) becomes a 500 and not a cut-off 200.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "encoding api response",
			correlationAttr(w), slog.String("path", r.URL.Path), slog.Any("error", err))
		status = http.StatusInternalServerError
		body, _ = json.Marshal(client.ErrorBody{Error: &client.APIError{Code: client.CodeInternal, Message: "internal error"}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client has gone; there is nobody left to tell.
	_, _ = w.Write(append(body, '\n'))
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, e *client.APIError) {
	s.writeJSON(w, r, e.Status, client.ErrorBody{Error: e})
}

// writeBackendError answers a failed Backend call. what names the object
// looked up, for the 404 message; field is the request field that named it.
func (s *server) writeBackendError(w http.ResponseWriter, r *http.Request, op, what, field string, err error) {
	var apiErr *client.APIError
	var fe *taskreq.FieldError
	switch {
	case errors.As(err, &fe):
		s.writeError(w, r, FieldAPIError(fe))
	case errors.As(err, &apiErr):
		e := *apiErr
		if e.Status < 400 || e.Status > 599 {
			e.Status = http.StatusUnprocessableEntity
		}
		s.writeError(w, r, &e)
	case db.Unavailable(err):
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "api backend call failed: database unavailable",
			correlationAttr(w), slog.String("operation", op), slog.String("path", r.URL.Path), slog.Any("error", err))
		// 503 tells clients and load balancers the request may be retried;
		// the reason is fixed text so no address or user leaks.
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		s.writeError(w, r, &client.APIError{
			Status:  http.StatusServiceUnavailable,
			Code:    client.CodeUnavailable,
			Message: "database unavailable (" + db.UnavailableReason(err) + ") while " + op + "; retry later",
		})
	case errors.Is(err, ErrNotFound):
		s.writeError(w, r, &client.APIError{
			Status:  http.StatusNotFound,
			Code:    client.CodeNotFound,
			Field:   field,
			Message: what + " not found",
		})
	default:
		s.logger.LogAttrs(r.Context(), slog.LevelError, "api backend call failed",
			correlationAttr(w),
			slog.String("operation", op),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("error", err))
		// The backend's text may carry SQL or hosts; the client gets the
		// operation only, the log has the rest.
		s.writeError(w, r, &client.APIError{
			Status:  http.StatusInternalServerError,
			Code:    client.CodeInternal,
			Message: "internal error while " + op,
		})
	}
}

// statusRecorder remembers the status written, for the request log and to
// know whether a panic can still be answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines underneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// probeWriter captures what ServeMux's own 404/405 handler would have sent.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw json.RawMessage) string {
	trimmed := strings.TrimLeft(string(raw), " \t\r\n")
	if trimmed == "" {
		return "nothing"
	}
	switch trimmed[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// FieldAPIError is how a request that can never succeed is answered: 404 when
// it names something that does not exist, 409 when it clashes with what
// exists, else 422. The in-process API
// (package tasker) returns the same value.
func FieldAPIError(fe *taskreq.FieldError) *client.APIError {
	status := http.StatusUnprocessableEntity
	switch fe.Kind {
	case taskreq.NotFound:
		status = http.StatusNotFound
	case taskreq.Conflict:
		status = http.StatusConflict
	}
	return &client.APIError{Status: status, Code: fe.Code, Field: fe.Field, Message: fe.Message}
}
