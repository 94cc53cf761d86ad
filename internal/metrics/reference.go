package metrics

import (
	"fmt"
	"strconv"
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

Every counter is exported from the start, at 0, for the label sets the process knows then: the queues,
namespaces, templates and steps in the database, the SQL functions it calls, the fixed outcomes (` + "`result`" + `,
` + "`claim_method`, `final_state`" + `) and ` + "`retryable_error`, `permanent_error`" + ` for step failures. ` + "`/metrics`" + ` shows every
histogram with zero counts for the same label sets until it is first recorded. Dashboards therefore show 0
rather than "No data", and ` + "`rate()`" + `-based alerts can tell "none happened" from "not reported". Label sets
that appear later (a template registered after start, a rarer error type such as ` + "`handler_timeout`" + `, a
SQLSTATE class) show up when first recorded.

## Histogram buckets

All histograms share one set of classic (explicit) bucket boundaries, in milliseconds:

` + "`" + bucketList() + "`" + `

Steps of 2 to 2.5 from 25 µs to ten seconds, then 30 s, one minute and five minutes: the SQL functions on
the hot path (tens to hundreds of microseconds) fall into their own buckets rather than one "< 1 ms"
bucket, and multi-second handlers and queue backlogs are still told apart; ` + "`histogram_quantile`" + ` is then
off by at most the width of one bucket (a factor of 2.5 below ten seconds, 5 at the top). Classic buckets rather than Prometheus native histograms because the dashboards and alert rules
must work on any Prometheus from 2.42 without feature flags (native histograms need
` + "`--enable-feature=native-histograms`" + ` and a protobuf scrape there), and OTLP backends receive the same
explicit-bucket histograms, so a query means the same on either path. The cost is ` + bucketCount() + ` ` + "`_bucket`" + ` series per
label set and histogram, bounded because labels are.

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

func bucketList() string {
	parts := make([]string, len(msBuckets))
	for i, b := range msBuckets {
		parts[i] = strconv.FormatFloat(b, 'g', -1, 64)
	}
	return strings.Join(parts, ", ")
}

// bucketCount is the _bucket series per label set: one per boundary plus +Inf.
func bucketCount() string { return strconv.Itoa(len(msBuckets) + 1) }
