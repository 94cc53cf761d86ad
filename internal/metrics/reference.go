package metrics

import (
	"fmt"
	"strings"
)

// Reference renders docs/observability/metrics-reference.md from Definitions.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Metrics reference

Generated from ` + "`internal/metrics/defs.go`" + ` (a test fails when this file is out of date; regenerate with
` + "`TASKER_UPDATE_DOCS=1 go test ./internal/metrics/`" + `).

Every process that does work serves these on ` + "`GET /metrics`" + ` (Prometheus text, or OpenMetrics with
exemplars when the scraper asks for it) and, when telemetry is enabled, pushes them over OTLP every
` + "`telemetry.metrics.export_interval_seconds`" + `. Histograms are in milliseconds and expose ` + "`_bucket`, `_sum`, `_count`" + `;
their buckets carry exemplars with the trace and span ID of a sampled request. Gauges are observable: read when
collected, never sampled on a timer. Labels are bounded (namespace, template, step name, state, queue,
function, error type, claim method); task, step and correlation IDs are never labels, unless
` + "`telemetry.metrics.correlation_id_label = true`" + ` adds ` + "`correlation_id`" + ` to task and step metrics — one new series per
workflow, a cardinality hazard meant for low-volume systems only.

`)
	domain := ""
	for _, d := range defs {
		if d.Domain != domain {
			domain = d.Domain
			fmt.Fprintf(&b, "\n## %s\n\n| name | type | unit | labels | recorded in | meaning |\n|---|---|---|---|---|---|\n",
				strings.ToUpper(domain[:1])+domain[1:])
		}
		unit := d.Unit
		if unit == "" {
			unit = "1"
		}
		labels := "—"
		if len(d.Labels) > 0 {
			labels = "`" + strings.Join(d.Labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", d.Name, d.Kind, unit, labels, d.Where, d.Help)
	}
	return b.String()
}
