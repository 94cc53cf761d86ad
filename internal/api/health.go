package api

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
)

// RetryAfterSeconds is the Retry-After of a 503 answered while the database
// is unavailable: long enough not to hammer a restarting server, short
// enough that a client's retry lands soon after a fast restart.
const RetryAfterSeconds = 5

// Health serves the probes of a process that needs the database:
//
//   - GET /health/live: the process is running and serving HTTP; never
//     checks a dependency, so an orchestrator restarts only a hung process,
//     not every process of a database outage.
//   - GET /health/ready (and GET /health): the database answers within
//     healthPingTimeout; 503 with Retry-After when it does not.
//
// A failed check names the dependency and a fixed reason, never the
// connection error's text, which carries host, port, user and database.
type Health struct {
	// Ping checks the database. Required.
	Ping func(ctx context.Context) error
	// Logger receives the full error of a failed check. Nil means slog.Default().
	Logger *slog.Logger
}

// Routes returns the probes keyed by http.ServeMux pattern.
func (h Health) Routes() map[string]http.Handler {
	ready := http.HandlerFunc(h.ready)
	return map[string]http.Handler{
		"GET /health":       ready,
		"GET /health/ready": ready,
		"GET /health/live":  http.HandlerFunc(live),
	}
}

func live(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, client.Health{Status: "ok"})
}

func (h Health) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthPingTimeout)
	defer cancel()
	if err := h.Ping(ctx); err != nil {
		reason := cmp.Or(db.UnavailableReason(err), "check failed")
		cmp.Or(h.Logger, slog.Default()).LogAttrs(r.Context(), slog.LevelWarn, "health check: database unavailable",
			slog.String("reason", reason), slog.Any("error", err))
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		writeHealth(w, http.StatusServiceUnavailable, client.Health{Status: "unavailable", Database: "unavailable", Error: "database: " + reason})
		return
	}
	writeHealth(w, http.StatusOK, client.Health{Status: "ok", Database: "ok"})
}

func writeHealth(w http.ResponseWriter, status int, h client.Health) {
	body, _ := json.Marshal(h) // a struct of strings always encodes
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
