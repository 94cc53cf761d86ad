package main

import (
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/ui"
)

// apiRoutes are the routes a process serving the REST API adds to it: those
// of every process plus the web console at /ui/ (with GET /v1/queues and
// GET /v1/workers), configured by telemetry.ui.
func (o *observability) apiRoutes(pool *pgxpool.Pool) (map[string]http.Handler, error) {
	routes := o.extraRoutes()
	cfg := ui.FromConfig(pool, o.cfg.Telemetry.UI)
	cfg.Logger = o.logger
	console, err := ui.Routes(cfg)
	if err != nil {
		return nil, fmt.Errorf("web console: %w", err)
	}
	for pattern, h := range console {
		routes[pattern] = h
	}
	return routes, nil
}
