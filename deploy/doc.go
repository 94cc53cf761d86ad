// Package deploy holds Tasker's deployment assets — Grafana dashboards
// (grafana/dashboards), the Prometheus scrape configuration and alert rules
// (prometheus/) — and no Go code: its tests check those assets with the real
// promtool and Prometheus. See README.md.
package deploy
