package api

import (
	"context"
	"net/http"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
)

// routeConsole mounts the reads the web console needs beside the task API:
// queues, workers and a task's trace.
func (s *server) routeConsole(traces http.Handler) {
	s.handle("GET /v1/queues", s.listQueues)
	s.handle("GET /v1/workers", s.listWorkers)
	if traces == nil {
		traces = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, &client.APIError{Status: http.StatusNotFound, Code: client.CodeNotFound,
				Message: "this server reads no traces: no tracing backend is configured"})
		})
	}
	s.routes = append(s.routes, TracesPattern)
	s.mux.Handle(TracesPattern, traces)
}

// TracesPattern is the route Config.Traces answers.
const TracesPattern = "GET /v1/traces/{trace_id}"

func (s *server) listQueues(w http.ResponseWriter, r *http.Request) {
	list, err := s.backend.Queues(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "reading queues", "", "", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

func (s *server) listWorkers(w http.ResponseWriter, r *http.Request) {
	list, err := s.backend.Workers(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "reading workers", "", "", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// Queues implements Backend.
func (s *Store) Queues(ctx context.Context) (*client.QueueList, error) {
	stats, err := db.QueueStats(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	out := &client.QueueList{Queues: make([]client.QueueInfo, 0, len(stats))}
	for _, q := range stats {
		out.Queues = append(out.Queues, client.QueueInfo{Queue: q.Queue, Depth: q.Depth, Claimable: q.Claimable,
			OldestClaimableAgeSeconds: q.OldestClaimableAge.Seconds()})
	}
	return out, nil
}

// Workers implements Backend. A namespace no live worker serves is listed
// with 0, so a console shows what nothing is working on.
func (s *Store) Workers(ctx context.Context) (*client.WorkerList, error) {
	ws, err := db.LiveWorkers(ctx, s.pool, db.WorkerLiveWindow)
	if err != nil {
		return nil, err
	}
	names, err := db.Namespaces(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	live := map[string]int{}
	out := &client.WorkerList{Workers: make([]client.WorkerInfo, 0, len(ws)), Namespaces: make([]client.NamespaceWorkers, 0, len(names))}
	for _, wr := range ws {
		out.Workers = append(out.Workers, client.WorkerInfo{WorkerID: wr.WorkerID, Namespaces: wr.Namespaces, Hostname: wr.Hostname,
			PID: wr.PID, StartedAt: wr.StartedAt, LastHeartbeatAt: wr.LastHeartbeatAt})
		for _, ns := range wr.Namespaces {
			live[ns]++
		}
	}
	for _, ns := range names {
		out.Namespaces = append(out.Namespaces, client.NamespaceWorkers{Namespace: ns, LiveWorkers: live[ns]})
	}
	return out, nil
}
