package engine_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/promtest"
	"github.com/taskerhq/tasker/internal/queue"
)

var (
	deployDir      = filepath.Join("..", "..", "deploy")
	dashboardsDir  = filepath.Join(deployDir, "grafana", "dashboards")
	alertRulesFile = filepath.Join(deployDir, "prometheus", "rules", "tasker-alerts.yml")
)

// TestDashboardsAndAlertsAgainstPrometheus runs workflows with metrics on,
// lets a real Prometheus (Debian's 2.42) scrape the engine's /metrics each
// second and evaluate the alert rules, and then checks that
//
//	(a) every query of every Grafana dashboard panel (and every template
//	    variable query) is valid PromQL and returns at least one series, and
//	    every {{label}} its legend names is on a returned series;
//	(b) every metric a dashboard or an alert rule names is defined in
//	    internal/metrics, and every defined metric is on some dashboard;
//	(c) every alert rule is loaded and evaluates with health "ok";
//	(d) `promtool check rules` passes;
//	(e) every defined metric has at least one sample in Prometheus.
//
// Dashboards are queried as Grafana would send them with every variable at
// "All": each query variable becomes its allValue (".*", which the
// dashboards use only in =~ matchers), $__rate_interval becomes 1m and
// $__interval 15s; the data-source variable only appears outside PromQL.
func TestDashboardsAndAlertsAgainstPrometheus(t *testing.T) {
	t.Parallel()
	promtest.CheckRules(t, alertRulesFile) // (d)

	dashboards, err := promtest.LoadDashboards(dashboardsDir)
	require.NoError(t, err)
	rules, err := promtest.LoadRules(alertRulesFile)
	require.NoError(t, err)
	require.NotEmpty(t, rules)

	// (b) Names, statically: dashboards and rules use only defined metrics,
	// and every defined metric has a panel.
	defined := map[string]bool{}
	for _, n := range metrics.Names() {
		defined[n] = true
	}
	onDashboards := map[string]bool{}
	for _, d := range dashboards {
		for _, q := range append(d.Queries(), d.VariableQueries()...) {
			names := promtest.MetricNames(q.Expr)
			if len(names) == 0 {
				t.Errorf("(b) %s: no tasker_ metric in %q", q.Where, q.Expr)
			}
			for _, n := range names {
				f := promtest.FamilyName(n)
				onDashboards[f] = true
				if !defined[f] {
					t.Errorf("(b) %s uses %s, which internal/metrics does not define: %s", q.Where, n, q.Expr)
				}
			}
		}
	}
	for _, r := range rules {
		names := promtest.MetricNames(r.Expr)
		if len(names) == 0 {
			t.Errorf("(b) rule %s: no tasker_ metric in %q", r.Name(), r.Expr)
		}
		for _, n := range names {
			if !defined[promtest.FamilyName(n)] {
				t.Errorf("(b) rule %s uses %s, which internal/metrics does not define", r.Name(), n)
			}
		}
	}
	for _, n := range metrics.Names() {
		if !onDashboards[n] {
			t.Errorf("(b) metric %s is on no dashboard in %s", n, dashboardsDir)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The engine with metrics, served for Prometheus to scrape.
	b := setup(t)
	b.recordSent(t)
	exporter, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(exporter.MeterProvider())
	require.NoError(t, err)
	srv := httptest.NewServer(exporter.Handler())
	t.Cleanup(srv.Close)
	const job = "tasker"
	prom := promtest.Start(t, map[string]string{job: strings.TrimPrefix(srv.URL, "http://")}, alertRulesFile)
	e := b.start(t, engineOpts{orchestrate: true, work: true, metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Workflows: a few successful tasks of each DAG, a retry that succeeds
	// and one that exhausts its retries.
	type run struct {
		ref, state string
		id         uuid.UUID
	}
	var runs []run
	for _, ref := range []string{
		"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern",
		"tree_workflow/hierarchical_tree", "mixed_dag_workflow/complex_dag", "single_workflow/single_step",
	} {
		for range 3 {
			runs = append(runs, run{ref: ref, state: "complete"})
		}
	}
	runs = append(runs, run{ref: "retry_workflow/retry_mechanics", state: "complete"},
		run{ref: "retry_workflow/retry_exhaustion", state: "error"})
	for i := range runs {
		c, err := e.Orchestrator.CreateTask(ctx, newRequest(t, runs[i].ref, map[string]any{"even_number": 6}))
		require.NoError(t, err)
		runs[i].id = c.TaskUUID
	}
	for _, r := range runs {
		task := waitTerminal(t, e.Backend(), r.id, 30*time.Second)
		require.Equal(t, r.state, task.State, "%s %s", r.ref, r.id)
	}
	// An operator retries the failed task; it fails again.
	failed := runs[len(runs)-1].id
	require.NoError(t, e.Orchestrator.RetryTask(ctx, failed, orchestration.Operation{Reason: "dashboard test"}))
	require.Equal(t, "error", waitTerminal(t, e.Backend(), failed, 30*time.Second).State)
	// The rare paths, so their counters have data too: a malformed result
	// message and a redelivered one sent without NOTIFY (a lost
	// notification), both found by the fallback poller, and a failing SQL
	// function call.
	_, err = b.pool.Exec(ctx, `INSERT INTO tasker.queue_messages (queue_name, message) VALUES ('orchestration_step_results', '"not an object"')`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO tasker.queue_messages (queue_name, message, headers)
		SELECT queue_name, message, headers FROM public.sent_messages WHERE queue_name = 'orchestration_step_results' LIMIT 1`)
	require.NoError(t, err)
	_, err = queue.NewClient(m).Send(ctx, b.pool, "never_created_queue", map[string]int{"x": 1}, nil, 0)
	require.Error(t, err)
	// Retention: everything finished so far is pruned.
	pruned, err := e.Orchestrator.Prune(ctx, time.Now())
	require.NoError(t, err)
	require.Positive(t, pruned.Tasks)

	// Wait for the last of it to be scraped, so the checks below do not
	// merely race the scraper.
	for _, q := range []string{
		fmt.Sprintf(`tasker_tasks_completions_total{job=%q} > 0`, job),
		fmt.Sprintf(`tasker_tasks_failures_total{job=%q} > 0`, job),
		fmt.Sprintf(`tasker_fallback_poll_messages_total{job=%q} > 0`, job),
		fmt.Sprintf(`tasker_messages_failed_total{job=%q} > 0`, job),
		fmt.Sprintf(`tasker_sql_function_errors_total{job=%q} > 0`, job),
	} {
		_, err := prom.WaitForSeries(ctx, q)
		require.NoError(t, err, "target state: %s", targetState(ctx, prom))
	}

	// (a), (c), (e) are asked again until all pass: a rate() needs two
	// scrapes of a series, a rule at least one evaluation after it.
	var problems []string
	var checked int
	deadline := time.Now().Add(60 * time.Second)
	for {
		problems, checked = nil, 0
		for _, d := range dashboards {
			vals := d.AllValues()
			for _, q := range append(d.Queries(), d.VariableQueries()...) {
				checked++
				problems = append(problems, checkDashboardQuery(ctx, prom, q, vals)...)
			}
		}
		problems = append(problems, checkRules(ctx, prom, rules)...)
		problems = append(problems, checkRecorded(ctx, prom, job)...)
		if len(problems) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond) // one scrape interval is 1s
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Logf("target state: %s", targetState(ctx, prom))
	}
	t.Logf("%d dashboard queries, %d alert rules and %d metrics checked against %s", checked, len(rules), len(defined), prom.URL())
}

// checkDashboardQuery runs one dashboard query as Grafana would with every
// variable at "All" and reports what is wrong with its answer.
func checkDashboardQuery(ctx context.Context, prom *promtest.Prometheus, q promtest.Query, vals map[string]string) []string {
	expr, err := promtest.ExpandVariables(q.Expr, vals)
	if err != nil {
		return []string{fmt.Sprintf("(a) %s: %v", q.Where, err)}
	}
	res, err := prom.Query(ctx, expr)
	if err != nil {
		return []string{fmt.Sprintf("(a) %s: %v", q.Where, err)}
	}
	if res.Len() == 0 {
		return []string{fmt.Sprintf("(a) %s: no series for\n\t%s", q.Where, expr)}
	}
	var out []string
	for _, l := range q.LegendLabels() {
		if !slices.ContainsFunc(res.Series, func(s promtest.Series) bool { _, ok := s.Labels[l]; return ok }) {
			out = append(out, fmt.Sprintf("(a) %s: legend %q names label %s, which no series of %s has: %s", q.Where, q.Legend, l, expr, res))
		}
	}
	return out
}

// checkRules reports rules that are missing, not yet evaluated, or failing.
func checkRules(ctx context.Context, prom *promtest.Prometheus, want []promtest.RuleDef) []string {
	got, err := prom.Rules(ctx)
	if err != nil {
		return []string{fmt.Sprintf("(c) rules: %v", err)}
	}
	byName := map[string]promtest.Rule{}
	for _, r := range got {
		byName[r.Name] = r
	}
	var out []string
	for _, w := range want {
		r, ok := byName[w.Name()]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("(c) rule %s is not loaded (loaded: %d rules)", w.Name(), len(got)))
		case r.LastEvaluation.IsZero():
			out = append(out, fmt.Sprintf("(c) rule %s has not been evaluated", w.Name()))
		case r.Health != "ok" || r.LastError != "":
			out = append(out, fmt.Sprintf("(c) rule %s: health %q, last error %q", w.Name(), r.Health, r.LastError))
		}
	}
	return out
}

// checkRecorded reports defined metrics without a sample in Prometheus.
func checkRecorded(ctx context.Context, prom *promtest.Prometheus, job string) []string {
	var out []string
	for _, name := range metrics.Names() {
		q := fmt.Sprintf(`count({__name__=~%q, job=%q})`, regexp.QuoteMeta(name)+"(_bucket|_sum|_count|_total)?", job)
		res, err := prom.Query(ctx, q)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("(e) %s: %v", name, err))
		case res.Len() == 0:
			out = append(out, fmt.Sprintf("(e) metric %s has no sample in Prometheus", name))
		}
	}
	return out
}

func targetState(ctx context.Context, prom *promtest.Prometheus) string {
	ts, err := prom.Targets(ctx)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %s health=%s lastError=%q lastScrape=%s",
			t.ScrapePool, t.ScrapeURL, t.Health, t.LastError, t.LastScrape.Format(time.RFC3339Nano)))
	}
	return strings.Join(parts, "; ")
}
