// Package ui is Tasker's web console: hand-written HTML, CSS and JavaScript
// modules embedded in the binary (no build step, no CDN, works offline),
// served at /ui/ next to the REST API it reads, plus its configuration and
// the handler the API mounts at GET /v1/traces/{trace_id}: a proxy to a
// Jaeger query service, so the browser can draw a task's trace without
// cross-origin requests. The console's other reads (tasks, queues, workers)
// are REST API routes.
//
// The console renders everything in the browser from JSON; the server does
// all filtering and pagination, so a page costs the same with 100 tasks or
// 100,000.
package ui
