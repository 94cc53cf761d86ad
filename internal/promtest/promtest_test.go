package promtest_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/promtest"
)

const exposition = `# HELP promtest_probe_total A probe counter.
# TYPE promtest_probe_total counter
promtest_probe_total{kind="unit"} 42
# HELP promtest_probe_duration_milliseconds A probe histogram.
# TYPE promtest_probe_duration_milliseconds histogram
promtest_probe_duration_milliseconds_bucket{le="1"} 1
promtest_probe_duration_milliseconds_bucket{le="10"} 3
promtest_probe_duration_milliseconds_bucket{le="+Inf"} 4
promtest_probe_duration_milliseconds_sum 31
promtest_probe_duration_milliseconds_count 4
`

const rules = `groups:
  - name: promtest
    rules:
      - record: promtest:probe:sum
        expr: sum(promtest_probe_total)
      - alert: PromtestProbeSeen
        expr: promtest_probe_total > 0
        labels:
          severity: info
        annotations:
          summary: probe is {{ $value }}
`

// metricsServer serves a fixed exposition in the Prometheus text format.
func metricsServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, exposition)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestScrapeQueryAndRules(t *testing.T) {
	t.Parallel()
	ruleFile := writeFile(t, "rules.yml", rules)
	promtest.CheckRules(t, ruleFile)
	p := promtest.Start(t, map[string]string{"probe": metricsServer(t)}, ruleFile)
	require.True(t, strings.HasPrefix(p.URL(), "http://127.0.0.1:"), p.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.WaitForSeries(ctx, `promtest_probe_total{job="probe"}`)
	require.NoError(t, err)
	require.Equal(t, "vector", res.ResultType)
	require.Equal(t, 1, res.Len())
	s := res.Series[0]
	require.Equal(t, "unit", s.Labels["kind"])
	require.Equal(t, "probe", s.Labels["job"])
	require.Equal(t, "promtest_probe_total", s.Labels["__name__"])
	require.Equal(t, 42.0, s.Value.Value)
	require.WithinDuration(t, time.Now(), s.Value.Time, time.Minute)

	// A histogram quantile needs two scrapes for rate(); over an unchanging
	// histogram it is NaN, but the series is there.
	res, err = p.WaitForSeries(ctx, `histogram_quantile(0.5, sum by (le) (rate(promtest_probe_duration_milliseconds_bucket[1m])))`)
	require.NoError(t, err)
	require.True(t, math.IsNaN(res.Series[0].Value.Value), res.String())
	res, err = p.Query(ctx, `histogram_quantile(0.5, sum by (le) (promtest_probe_duration_milliseconds_bucket))`)
	require.NoError(t, err)
	require.Equal(t, 1, res.Len())
	require.InDelta(t, 5.5, res.Series[0].Value.Value, 1e-9) // 2nd of 4 lies in (1, 10]

	res, err = p.Query(ctx, "1 + 1")
	require.NoError(t, err)
	require.Equal(t, "scalar", res.ResultType)
	require.Equal(t, 1, res.Len())
	require.Equal(t, 2.0, res.Scalar.Value)

	res, err = p.Query(ctx, `promtest_probe_total[5m]`)
	require.NoError(t, err)
	require.Equal(t, "matrix", res.ResultType)
	require.NotEmpty(t, res.Series[0].Values)

	res, err = p.Query(ctx, `nothing_is_called_this`)
	require.NoError(t, err)
	require.Equal(t, 0, res.Len())

	_, err = p.Query(ctx, `sum(rate(promtest_probe_total[1m])`)
	require.Error(t, err)
	require.True(t, promtest.IsBadData(err), err)

	// An invalid query ends WaitForSeries at once; an empty one at ctx's end.
	_, err = p.WaitForSeries(ctx, `rate(`)
	require.True(t, promtest.IsBadData(err), err)
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = p.WaitForSeries(short, `nothing_is_called_this`)
	require.ErrorContains(t, err, "no series")

	targets, err := p.Targets(ctx)
	require.NoError(t, err)
	require.Len(t, targets, 1)
	require.Equal(t, "up", targets[0].Health)
	require.Equal(t, "probe", targets[0].Labels["job"])

	// Both rules evaluate (each second) without error; the alert is firing
	// (no `for`), and the recording rule's series is queryable.
	require.Eventually(t, func() bool {
		rs, err := p.Rules(ctx)
		require.NoError(t, err)
		require.Len(t, rs, 2)
		for _, r := range rs {
			if r.Health != "ok" || r.LastEvaluation.IsZero() {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond)
	rs, err := p.Rules(ctx)
	require.NoError(t, err)
	byName := map[string]promtest.Rule{}
	for _, r := range rs {
		require.Empty(t, r.LastError)
		require.Equal(t, "promtest", r.Group)
		require.Equal(t, ruleFile, r.File)
		byName[r.Name] = r
	}
	require.Equal(t, "recording", byName["promtest:probe:sum"].Type)
	require.Equal(t, "sum(promtest_probe_total)", byName["promtest:probe:sum"].Query)
	alert := byName["PromtestProbeSeen"]
	require.Equal(t, "alerting", alert.Type)
	require.Equal(t, "info", alert.Labels["severity"])
	require.Equal(t, "firing", alert.State)
	require.Len(t, alert.Alerts, 1)
	require.Equal(t, "probe is 42", alert.Alerts[0].Annotations["summary"])
	res, err = p.WaitForSeries(ctx, `promtest:probe:sum`)
	require.NoError(t, err)
	require.Equal(t, 42.0, res.Series[0].Value.Value)
}

func TestRuleErrorsAreReported(t *testing.T) {
	t.Parallel()
	// A rule that parses but fails at evaluation: many-to-many matching.
	ruleFile := writeFile(t, "rules.yml", `groups:
  - name: broken
    rules:
      - record: promtest:broken
        expr: promtest_probe_total + on() group_left promtest_probe_total
`)
	exp := strings.Replace(exposition, `promtest_probe_total{kind="unit"} 42`,
		"promtest_probe_total{kind=\"a\"} 1\npromtest_probe_total{kind=\"b\"} 2", 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, exp) }))
	t.Cleanup(srv.Close)
	p := promtest.Start(t, map[string]string{"probe": srv.URL + "/metrics"}, ruleFile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		rs, err := p.Rules(ctx)
		require.NoError(t, err)
		require.Len(t, rs, 1)
		return rs[0].Health == "err"
	}, 20*time.Second, 50*time.Millisecond)
	rs, err := p.Rules(ctx)
	require.NoError(t, err)
	require.Contains(t, rs[0].LastError, "many-to-many")
}

func TestCheckRulesOutput(t *testing.T) {
	t.Parallel()
	out, err := promtest.CheckRulesOutput(writeFile(t, "good.yml", rules))
	require.NoError(t, err)
	require.Contains(t, out, "SUCCESS")
	_, err = promtest.CheckRulesOutput(writeFile(t, "bad.yml", `groups:
  - name: bad
    rules:
      - alert: Broken
        expr: sum(rate(x[5m])
`))
	require.Error(t, err)
	require.ErrorContains(t, err, "FAILED")
}

func TestExpandVariables(t *testing.T) {
	t.Parallel()
	got, err := promtest.ExpandVariables(
		`sum by (le) (rate(tasker_x_bucket{namespace=~"$namespace",queue=~"${queue}",q2=~"${queue:regex}",i=~"[[instance]]"}[$__rate_interval])) / $__interval_ms + label_replace(up, "a", "$1", "b", "(.*)")`,
		map[string]string{"namespace": ".*", "queue": "q.*", "instance": ".+"})
	require.NoError(t, err)
	require.Equal(t, `sum by (le) (rate(tasker_x_bucket{namespace=~".*",queue=~"q.*",q2=~"q.*",i=~".+"}[1m])) / 15000 + label_replace(up, "a", "$1", "b", "(.*)")`, got)
	_, err = promtest.ExpandVariables(`up{a=~"$missing"}`, nil)
	require.ErrorContains(t, err, "$missing")

	require.Equal(t, []string{"tasker_a_total", "tasker_b_bucket"},
		promtest.MetricNames(`sum(rate(tasker_b_bucket[1m])) / sum(rate(tasker_a_total{x="y"}[1m])) + tasker_a_total`))
	require.Equal(t, "tasker_b", promtest.FamilyName("tasker_b_bucket"))
	require.Equal(t, "tasker_a_total", promtest.FamilyName("tasker_a_total"))
}
