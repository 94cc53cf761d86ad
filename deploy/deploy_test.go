package deploy_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/promtest"
)

const (
	configFile    = "prometheus/prometheus.yml"
	rulesFile     = "prometheus/rules/tasker-alerts.yml"
	ruleTestsFile = "prometheus/tests/tasker-alerts.test.yml"
	dashboardsDir = "grafana/dashboards"
)

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	// Also checks every rule file the configuration names.
	promtest.CheckConfig(t, configFile)
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtest.CheckRules(t, rulesFile)
	promtest.TestRules(t, ruleTestsFile)

	rules, err := promtest.LoadRules(rulesFile)
	require.NoError(t, err)
	want := map[string]string{ // alert → for
		"TaskerQueueOldestClaimableMessageTooOld": "2m",
		"TaskerStepFailureRateHigh":               "5m",
		"TaskerStepLatencyP99High":                "5m",
		"TaskerNoWorkerConsumingNamespace":        "5m",
		"TaskerNamespaceHasNoLiveWorker":          "1m",
	}
	got := map[string]string{}
	for _, r := range rules {
		require.NotEmpty(t, r.Alert, "rule %s is not an alert", r.Name())
		got[r.Alert] = r.For
		require.Contains(t, []string{"info", "warning", "critical"}, r.Labels["severity"], "%s: severity", r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
		require.NotEmpty(t, r.Annotations["description"], "%s: description", r.Alert)
		for _, name := range promtest.MetricNames(r.Expr) {
			require.True(t, strings.HasPrefix(name, "tasker_"), name)
		}
	}
	require.Equal(t, want, got)
}

// matcherRE finds label matchers; those whose value holds a Grafana variable
// must be regex matchers, since "All" and multi-value selections
// expand to regular expressions.
var matcherRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)

func TestDashboards(t *testing.T) {
	t.Parallel()
	dashboards, err := promtest.LoadDashboards(dashboardsDir)
	require.NoError(t, err)
	var uids []string
	for _, d := range dashboards {
		uids = append(uids, d.UID)
	}
	slices.Sort(uids)
	require.Equal(t, []string{"tasker-database", "tasker-queues", "tasker-task-flow", "tasker-workers"}, uids)

	// Every query runs against a real (empty) Prometheus 2.42: an expression
	// it cannot parse, or a function it lacks, is an error even without data.
	p := promtest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, d := range dashboards {
		t.Run(d.UID, func(t *testing.T) {
			require.Equal(t, d.UID+".json", filepath.Base(d.File))
			require.NotEmpty(t, d.Title)
			require.GreaterOrEqual(t, d.SchemaVersion, 36)

			// A data-source variable; panels and targets use it.
			vars := map[string]promtest.Variable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			dsVar, ok := vars["datasource"]
			require.True(t, ok, "no datasource variable")
			require.Equal(t, "datasource", dsVar.Type)
			require.JSONEq(t, `"prometheus"`, string(dsVar.Query))
			for name, v := range vars {
				if v.Type == "query" {
					require.True(t, v.IncludeAll && v.AllValue == ".*", "variable %s: All must be .*", name)
					requireDatasource(t, v.Datasource, "variable "+name)
				}
			}

			ids := map[int]bool{}
			for _, panel := range d.Panels {
				require.False(t, ids[panel.ID], "duplicate panel id %d", panel.ID)
				ids[panel.ID] = true
				require.NotNil(t, panel.GridPos, "panel %q has no gridPos", panel.Title)
			}
			panels := d.DataPanels()
			require.NotEmpty(t, panels)
			for _, panel := range panels {
				require.NotEmpty(t, panel.Title)
				require.NotEmpty(t, panel.Targets, "panel %q has no targets", panel.Title)
				requireDatasource(t, panel.Datasource, "panel "+panel.Title)
				for _, tg := range panel.Targets {
					require.NotEmpty(t, tg.Expr, "panel %q target %s has no expr", panel.Title, tg.RefID)
					requireDatasource(t, tg.Datasource, "panel "+panel.Title+" target "+tg.RefID)
				}
			}

			queries := append(d.Queries(), d.VariableQueries()...)
			for _, q := range queries {
				require.NotEmpty(t, promtest.MetricNames(q.Expr), "%s: no tasker_ metric in %q", q.Where, q.Expr)
				for _, m := range matcherRE.FindAllStringSubmatch(q.Expr, -1) {
					if strings.Contains(m[3], "$") {
						require.Contains(t, []string{"=~", "!~"}, m[2], "%s: %s must be a regex matcher", q.Where, m[0])
					}
				}
				expr, err := promtest.ExpandVariables(q.Expr, d.AllValues())
				require.NoError(t, err, q.Where)
				_, err = p.Query(ctx, expr)
				require.NoError(t, err, "%s: %s", q.Where, expr)
			}
		})
	}
}

func requireDatasource(t *testing.T, raw json.RawMessage, where string) {
	t.Helper()
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	require.NoError(t, json.Unmarshal(raw, &ds), "%s: datasource %s", where, raw)
	require.Equal(t, "prometheus", ds.Type, where)
	require.Equal(t, "${datasource}", ds.UID, where)
}
