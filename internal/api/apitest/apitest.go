// Package apitest provides an in-memory api.Backend for tests of the HTTP
// layer and of its clients (package client, the CLI). It is not an engine:
// tasks move only when the test moves them. Tests of the engine itself run
// against PostgreSQL and do not use it.
package apitest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// Backend is an in-memory api.Backend. It is safe for concurrent use.
type Backend struct {
	mu        sync.Mutex
	templates []client.Template
	tasks     map[uuid.UUID]*client.Task
	order     []uuid.UUID // creation order, so listings are stable
	steps     map[uuid.UUID][]client.Step
	creates   []client.TaskRequest
	errs      map[string]error
	onGet     func(*client.Task)
	// keys maps namespace/name/idempotency key to the task it created.
	keys      map[string]keyedTask
	signals   *api.TaskSignals
	schedules []client.Schedule
	queues    []client.QueueInfo
	workers   []client.WorkerInfo
}

type keyedTask struct {
	id          uuid.UUID
	fingerprint string
}

var _ api.Backend = (*Backend)(nil)

// NewBackend returns a backend that knows templates.
func NewBackend(templates ...client.Template) *Backend {
	return &Backend{
		templates: templates,
		tasks:     map[uuid.UUID]*client.Task{},
		steps:     map[uuid.UUID][]client.Step{},
		errs:      map[string]error{},
		keys:      map[string]keyedTask{},
		signals:   api.NewTaskSignals(),
	}
}

// Server starts an httptest server serving api.NewHandler over b, closed when
// the test ends.
func Server(t testing.TB, b *Backend) *httptest.Server {
	t.Helper()
	h, err := api.NewHandler(api.Config{Backend: b, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("building api handler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Template returns a small template with the given steps run one after another.
func Template(namespace, name, version string, steps ...string) client.Template {
	tmpl := client.Template{Namespace: namespace, Name: name, Version: version}
	for i, s := range steps {
		ts := client.TemplateStep{Name: s, Handler: namespace + "." + s, MaxAttempts: 3, TimeoutSeconds: 30}
		if i > 0 {
			ts.DependsOn = []string{steps[i-1]}
		}
		tmpl.Steps = append(tmpl.Steps, ts)
	}
	return tmpl
}

// AddTemplate registers one more template.
func (b *Backend) AddTemplate(t client.Template) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.templates = append(b.templates, t)
}

// FailWith makes the named method (e.g. "CreateTask", "Ping") return err
// from now on; a nil err restores normal behaviour.
func (b *Backend) FailWith(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs[method] = err
}

// OnGet registers f to run on the stored task, under the backend's lock,
// each time GetTask is called: tests use it to advance a task as a client polls.
func (b *Backend) OnGet(f func(*client.Task)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onGet = f
}

// CreateRequests returns every request CreateTask received, in order.
func (b *Backend) CreateRequests() []client.TaskRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.creates)
}

// PutTask stores t (replacing any task with its UUID) with steps.
func (b *Backend) PutTask(t client.Task, steps ...client.Step) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.tasks[t.TaskUUID]; !ok {
		b.order = append(b.order, t.TaskUUID)
	}
	b.tasks[t.TaskUUID] = &t
	b.steps[t.TaskUUID] = steps
	b.signals.Notify(t.TaskUUID.String())
}

// CreateTask implements api.Backend: it resolves the template as the engine
// does (unknown → 404 on name, unknown version → 422 on version) and stores
// a pending task with one pending step per template step.
func (b *Backend) CreateTask(_ context.Context, req client.TaskRequest) (*client.Task, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.creates = append(b.creates, req)
	if err := b.errs["CreateTask"]; err != nil {
		return nil, false, err
	}
	tmpl, apiErr := b.findTemplate(req)
	if apiErr != nil {
		return nil, false, apiErr
	}
	key := req.Namespace + "/" + req.Name + "/" + req.IdempotencyKey
	if k, ok := b.keys[key]; ok && req.IdempotencyKey != "" {
		if k.fingerprint != taskreq.Fingerprint(&req) {
			return nil, false, &taskreq.FieldError{Field: "idempotency_key", Code: taskreq.CodeIdempotencyConflict,
				Kind: taskreq.Conflict, Message: fmt.Sprintf("idempotency_key %q was used for a different request", req.IdempotencyKey)}
		}
		out := *b.tasks[k.id]
		return &out, true, nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("generating task uuid: %w", err)
	}
	if req.IdempotencyKey != "" {
		b.keys[key] = keyedTask{id: id, fingerprint: taskreq.Fingerprint(&req)}
	}
	now := time.Now().UTC()
	task := &client.Task{
		TaskUUID: id, Namespace: tmpl.Namespace, Name: tmpl.Name, Version: tmpl.Version,
		State: "pending", ExecutionStatus: "processing",
		Context: req.Context, Initiator: req.Initiator, SourceSystem: req.SourceSystem, Reason: req.Reason,
		Tags: req.Tags, Priority: req.Priority, ParentCorrelationID: req.ParentCorrelationID,
		TotalSteps: len(tmpl.Steps), PendingSteps: len(tmpl.Steps),
		CreatedAt: now, UpdatedAt: now,
		Transitions: []client.Transition{{To: "pending", At: now}},
	}
	if req.CorrelationID != nil {
		task.CorrelationID = *req.CorrelationID
	}
	steps := make([]client.Step, 0, len(tmpl.Steps))
	for _, ts := range tmpl.Steps {
		stepID, err := uuid.NewV7()
		if err != nil {
			return nil, false, fmt.Errorf("generating step uuid: %w", err)
		}
		steps = append(steps, client.Step{
			StepUUID: stepID, TaskUUID: id, Name: ts.Name, Handler: ts.Handler, State: "pending",
			DependsOn: ts.DependsOn, MaxAttempts: ts.MaxAttempts, Retryable: ts.MaxAttempts > 1,
			CreatedAt: now, UpdatedAt: now,
			Transitions: []client.Transition{{To: "pending", At: now}},
		})
	}
	b.tasks[id] = task
	b.order = append(b.order, id)
	b.steps[id] = steps
	out := *task
	return &out, false, nil
}

// CreateTasks implements api.Backend: every request is checked first (the
// template, and an idempotency key against the tasks it created before) and
// only a batch without refused requests creates its tasks, one CreateTask
// each. The fake does not check keys repeated within a batch.
func (b *Backend) CreateTasks(ctx context.Context, reqs []client.TaskRequest) ([]client.Task, []bool, error) {
	b.mu.Lock()
	if err := b.errs["CreateTasks"]; err != nil {
		b.mu.Unlock()
		return nil, nil, err
	}
	var refused []taskreq.ItemError
	for i, req := range reqs {
		_, err := b.findTemplate(req)
		var fe *taskreq.FieldError
		if errors.As(err, &fe) {
			refused = append(refused, taskreq.ItemError{Index: i, FieldError: fe})
			continue
		}
		k, ok := b.keys[req.Namespace+"/"+req.Name+"/"+req.IdempotencyKey]
		if ok && req.IdempotencyKey != "" && k.fingerprint != taskreq.Fingerprint(&req) {
			refused = append(refused, taskreq.ItemError{Index: i, FieldError: &taskreq.FieldError{Field: "idempotency_key",
				Code: taskreq.CodeIdempotencyConflict, Kind: taskreq.Conflict,
				Message: fmt.Sprintf("idempotency_key %q was used for a different request", req.IdempotencyKey)}})
		}
	}
	b.mu.Unlock()
	if len(refused) > 0 {
		return nil, nil, &taskreq.BatchError{Total: len(reqs), Items: refused}
	}
	tasks := make([]client.Task, len(reqs))
	existing := make([]bool, len(reqs))
	for i, req := range reqs {
		t, ex, err := b.CreateTask(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		tasks[i], existing[i] = *t, ex
	}
	return tasks, existing, nil
}

// findTemplate picks the template a request names; with no version, the one
// registered last wins (the fake does not compare versions).
func (b *Backend) findTemplate(req client.TaskRequest) (*client.Template, error) {
	var found *client.Template
	for i := range b.templates {
		t := &b.templates[i]
		if t.Namespace != req.Namespace || t.Name != req.Name {
			continue
		}
		if req.Version == "" || req.Version == t.Version {
			found = t
		}
	}
	if found != nil {
		return found, nil
	}
	for _, t := range b.templates {
		if t.Namespace == req.Namespace && t.Name == req.Name {
			return nil, &taskreq.FieldError{Field: "version", Code: taskreq.CodeUnknownVersion, Kind: taskreq.NotFound,
				Message: fmt.Sprintf("template %s/%s has no version %s", req.Namespace, req.Name, req.Version)}
		}
	}
	return nil, &taskreq.FieldError{Field: "name", Code: taskreq.CodeUnknownTemplate, Kind: taskreq.NotFound,
		Message: fmt.Sprintf("no template %s/%s is registered", req.Namespace, req.Name)}
}

// GetTask implements api.Backend.
func (b *Backend) GetTask(_ context.Context, taskUUID uuid.UUID) (*client.Task, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["GetTask"]; err != nil {
		return nil, err
	}
	t, ok := b.tasks[taskUUID]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", taskUUID, api.ErrNotFound)
	}
	if b.onGet != nil {
		before := t.State
		b.onGet(t)
		if t.State != before {
			b.signals.Notify(t.TaskUUID.String())
		}
	}
	out := *t
	return &out, nil
}

// ListSteps implements api.Backend.
func (b *Backend) ListSteps(_ context.Context, taskUUID uuid.UUID) ([]client.Step, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["ListSteps"]; err != nil {
		return nil, err
	}
	if _, ok := b.tasks[taskUUID]; !ok {
		return nil, fmt.Errorf("task %s: %w", taskUUID, api.ErrNotFound)
	}
	return slices.Clone(b.steps[taskUUID]), nil
}

// ListTasks implements api.Backend with the engine's order (newest first)
// and keyset cursors.
func (b *Backend) ListTasks(_ context.Context, f client.TaskFilter) (*client.TaskList, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["ListTasks"]; err != nil {
		return nil, err
	}
	if err := taskreq.ValidateFilter(&f); err != nil {
		return nil, err
	}
	var after *db.TaskKey
	if f.Cursor != "" {
		k, err := api.DecodeCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		after = k
	}
	older := func(t *client.Task, k db.TaskKey) bool {
		if !t.CreatedAt.Equal(k.CreatedAt) {
			return t.CreatedAt.Before(k.CreatedAt)
		}
		return bytes.Compare(t.TaskUUID[:], k.TaskUUID[:]) < 0
	}
	var all []*client.Task
	for _, id := range b.order {
		t := b.tasks[id]
		switch {
		case len(f.States) > 0 && !slices.Contains(f.States, t.State),
			f.Namespace != "" && t.Namespace != f.Namespace,
			f.Name != "" && t.Name != f.Name,
			f.CreatedAfter != nil && !t.CreatedAt.After(*f.CreatedAfter),
			f.CreatedBefore != nil && !t.CreatedAt.Before(*f.CreatedBefore),
			f.CorrelationID != nil && t.CorrelationID != *f.CorrelationID,
			f.ParentCorrelationID != nil && (t.ParentCorrelationID == nil || *t.ParentCorrelationID != *f.ParentCorrelationID),
			after != nil && !older(t, *after):
			continue
		}
		all = append(all, t)
	}
	slices.SortFunc(all, func(x, y *client.Task) int {
		if older(x, db.TaskKey{CreatedAt: y.CreatedAt, TaskUUID: y.TaskUUID}) {
			return 1
		}
		return -1
	})
	limit := cmp.Or(f.Limit, client.DefaultTaskListLimit)
	list := &client.TaskList{Tasks: []client.Task{}}
	for i, t := range all {
		if i == limit {
			last := all[i-1]
			list.NextCursor = api.EncodeCursor(db.TaskKey{CreatedAt: last.CreatedAt, TaskUUID: last.TaskUUID})
			break
		}
		out := *t
		out.Transitions = nil
		list.Tasks = append(list.Tasks, out)
	}
	return list, nil
}

// ListTasksByCorrelation returns the tasks carrying correlationID, oldest first.
func (b *Backend) ListTasksByCorrelation(_ context.Context, correlationID uuid.UUID) ([]client.Task, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["ListTasksByCorrelation"]; err != nil {
		return nil, err
	}
	var out []client.Task
	for _, id := range b.order {
		if t := b.tasks[id]; t.CorrelationID == correlationID {
			out = append(out, *t)
		}
	}
	return out, nil
}

// ListChildTasks returns the tasks whose parent correlation ID is parent, oldest first.
func (b *Backend) ListChildTasks(_ context.Context, parent uuid.UUID) ([]client.Task, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["ListChildTasks"]; err != nil {
		return nil, err
	}
	var out []client.Task
	for _, id := range b.order {
		if t := b.tasks[id]; t.ParentCorrelationID != nil && *t.ParentCorrelationID == parent {
			out = append(out, *t)
		}
	}
	return out, nil
}

// Templates implements api.Backend.
func (b *Backend) Templates(context.Context) ([]client.Template, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["Templates"]; err != nil {
		return nil, err
	}
	return slices.Clone(b.templates), nil
}

// Ping implements api.Backend.
func (b *Backend) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs["Ping"]
}
