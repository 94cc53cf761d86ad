package main

import (
	"fmt"
	"net/http"

	"github.com/taskerhq/tasker/internal/ui"
)

// apiRoutes are the routes a process serving the REST API adds to it: those
// of every process plus the web console at /ui/, and the handler of the API's
// GET /v1/traces/{trace_id}, configured by telemetry.ui.
func (o *observability) apiRoutes() (map[string]http.Handler, http.Handler, error) {
	routes := o.extraRoutes()
	cfg := ui.FromConfig(o.cfg.Telemetry.UI)
	cfg.Logger = o.logger
	console, err := ui.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("web console: %w", err)
	}
	for pattern, h := range console.Routes {
		routes[pattern] = h
	}
	return routes, console.Traces, nil
}
