package bench

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
)

// jsonObject round-trips v through JSON, as a reader of --json sees it.
func jsonObject(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestSQLBenchmark(t *testing.T) {
	t.Parallel()
	res, err := SQL(t.Context(), SQLConfig{DatabaseURL: dbtest.NewDatabase(t), Scales: []int{100, 200}, Samples: 5, Warmup: 1,
		ContentionWorkers: 3, ContentionDuration: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Len(t, res.Functions, len(SQLCases))
	for _, f := range res.Functions {
		require.Len(t, f.Points, 2, "%s: a point per scale", f.Name)
		for _, p := range f.Points {
			require.EqualValues(t, 5, p.Samples, f.Name)
			require.True(t, p.P50 > 0 && p.P95 >= p.P50 && p.P99 >= p.P95, "%s: %+v", f.Name, p)
		}
		require.Positive(t, f.Growth, f.Name)
		if f.PerTask {
			require.NotEmpty(t, f.Goals, "%s: a per-task function has a growth goal", f.Name)
		}
	}
	ready, ok := res.Function("get_next_ready_tasks")
	require.True(t, ok)
	require.Len(t, ready.Goals, 1)
	require.Len(t, res.Datasets, 2)
	require.EqualValues(t, 200, res.Datasets[1].TasksByState["complete"]+res.Datasets[1].TasksByState["steps_in_process"]+
		res.Datasets[1].TasksByState["waiting_for_retry"]+res.Datasets[1].TasksByState["error"]+res.Datasets[1].TasksByState["pending"])

	require.Len(t, res.Contention, 2)
	same, diff := res.Contention[0], res.Contention[1]
	require.Equal(t, ContentionSameTask, same.Mode)
	require.Positive(t, same.Attempts)
	require.Equal(t, same.Attempts, same.Succeeded+same.Conflicts)
	require.Equal(t, ContentionDifferentTasks, diff.Mode)
	require.Positive(t, diff.Succeeded)
	require.Zero(t, diff.Conflicts, "a worker alone on its task never loses a compare-and-swap")

	m := jsonObject(t, res)
	checkKeys(t, m, "benchmark", "scales", "samples", "functions", "datasets", "contention", "roundtrip_p50_ms",
		"postgres", "machine", "commit", "started_at", "duration_s")
	fn := m["functions"].([]any)[0]
	checkKeys(t, fn, "name", "function", "per_task", "writes", "points", "growth", "goals")
	checkKeys(t, fn.(map[string]any)["points"].([]any)[0], "scale", "samples", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")
	checkKeys(t, m["contention"].([]any)[0], "mode", "workers", "attempts", "succeeded", "conflicts", "conflict_rate",
		"attempts_per_s", "transitions_per_s", "p50_ms", "p95_ms", "p99_ms")
	checkKeys(t, m["datasets"].([]any)[0], "scale", "generate_s", "tasks_by_state", "steps", "tables")
}

// At a scale where the planner prefers indexes, no statement of a per-task
// hot-path function (one call per step or task) scans a large table
// sequentially, and the analyzer sees the statements inside the plpgsql
// functions, not just the call.
func TestExplainHotPath(t *testing.T) {
	t.Parallel()
	res, err := Explain(t.Context(), ExplainConfig{DatabaseURL: dbtest.NewDatabase(t), Tasks: 3000, SeqScanMinRows: 2000})
	require.NoError(t, err)
	require.Len(t, res.Cases, len(SQLCases))
	perTask := map[string]bool{}
	for _, c := range SQLCases {
		perTask[c.Name] = c.PerTask
	}
	for _, f := range res.SeqScans() {
		require.False(t, perTask[f.Case], "per-task hot path %s: %s in %s", f.Case, f.Detail, f.Query)
	}
	byName := map[string]ExplainCase{}
	for _, c := range res.Cases {
		require.NotEmpty(t, c.Statements, c.Name)
		byName[c.Name] = c
		for _, st := range c.Statements {
			require.NotEmpty(t, st.NodeTypes, "%s: %s", c.Name, st.Query)
			require.Positive(t, st.Nodes)
		}
	}
	var nestedUpdate bool
	for _, st := range byName["transition_task_state_atomic"].Statements {
		nestedUpdate = nestedUpdate || (st.Nested && strings.HasPrefix(st.Query, "UPDATE tasker.tasks"))
	}
	require.True(t, nestedUpdate, "the UPDATE inside transition_task_state_atomic was not captured: %+v", byName["transition_task_state_atomic"].Statements)
	require.EqualValues(t, 3000, res.TableRows["tasks"])

	m := jsonObject(t, res)
	checkKeys(t, m, "benchmark", "tasks", "seq_scan_min_rows", "misestimate_factor", "table_rows", "cases", "findings",
		"postgres", "machine", "commit")
	st := m["cases"].([]any)[0].(map[string]any)["statements"].([]any)[0]
	checkKeys(t, st, "query", "nested", "execution_ms", "planning_ms", "rows_estimated", "rows_actual", "shared_hit_blocks",
		"shared_read_blocks", "nodes", "node_types", "plan")
}

// The analyzer's rules on a plan made up to break each of them.
func TestAnalyzePlan(t *testing.T) {
	plan := map[string]any{
		"Node Type": "Sort", "Plan Rows": 5.0, "Actual Rows": 900.0, "Actual Loops": 1.0, "Sort Space Type": "Disk", "Sort Space Used": 2048.0,
		"Plans": []any{
			map[string]any{"Node Type": "Hash Join", "Plan Rows": 5.0, "Actual Rows": 900.0, "Actual Loops": 1.0, "Plans": []any{
				map[string]any{"Node Type": "Seq Scan", "Relation Name": "tasks", "Plan Rows": 5.0, "Actual Rows": 900.0, "Actual Loops": 1.0},
				map[string]any{"Node Type": "Seq Scan", "Relation Name": "named_tasks", "Plan Rows": 9.0, "Actual Rows": 9.0, "Actual Loops": 1.0},
				map[string]any{"Node Type": "Seq Scan", "Relation Name": "queues", "Plan Rows": 1.0, "Actual Rows": 0.0, "Actual Loops": 0.0},
			}},
		},
	}
	cfg := ExplainConfig{}.withDefaults()
	cfg.SeqScanMinRows = 100
	got := analyzePlan("f", ExplainStatement{Query: "SELECT 1", Plan: plan}, cfg, map[string]int64{"tasks": 5000, "named_tasks": 9, "queues": 1000})
	var kinds []string
	for _, f := range got {
		kinds = append(kinds, f.Kind+" "+f.Node)
	}
	require.ElementsMatch(t, []string{
		"disk_sort Sort",
		"seq_scan Seq Scan on tasks",    // large; named_tasks is small and queues' scan never ran
		"misestimate Seq Scan on tasks", // reported where it starts, not on the join and sort above
	}, kinds)

	st, ok, err := parseAutoExplain("duration: 1.250 ms  plan:\n" + `{"Query Text": "SELECT 1", "Plan": {"Node Type": "Result", "Plan Rows": 1, "Actual Rows": 1, "Actual Loops": 1, "Shared Hit Blocks": 3}}`)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1.25, st.ExecutionMs)
	require.EqualValues(t, 3, st.SharedHit)
	require.Equal(t, []string{"Result"}, st.NodeTypes)
	_, ok, err = parseAutoExplain("some other notice")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestCriticalPaths(t *testing.T) {
	t.Parallel()
	res, err := CriticalPaths(t.Context(), CriticalPathConfig{DatabaseURL: dbtest.NewDatabase(t), Samples: 5, Warmup: 1})
	require.NoError(t, err)
	ids := map[string]PathStat{}
	for _, p := range res.Paths {
		ids[p.ID] = p
		require.True(t, p.P50 > 0 && p.P99 >= p.P50, "%s: %+v", p.ID, p)
		require.NotEmpty(t, p.CDF, p.ID)
		require.Equal(t, 1.0, p.CDF[len(p.CDF)-1][1])
	}
	for _, id := range []string{PathAPICreate, PathDiscoverNotify, PathWorkerCycle, PathNotify, PathHandler} {
		require.Contains(t, ids, id)
	}
	require.EqualValues(t, 5, ids[PathAPICreate].Samples)
	require.EqualValues(t, 5, ids[PathDiscoverNotify].Samples)
	require.EqualValues(t, 5, ids[PathNotify].Samples)
	require.EqualValues(t, 5, ids[PathWorkerCycle].Samples, "one step per measured single-step task")
	require.Len(t, ids[PathAPICreate].Targets, 2)

	m := jsonObject(t, res)
	checkKeys(t, m, "benchmark", "samples", "paths", "postgres", "machine", "commit", "started_at")
	checkKeys(t, m["paths"].([]any)[0], "id", "name", "description", "samples", "p50_ms", "p95_ms", "p99_ms", "max_ms", "targets", "cdf")
	checkKeys(t, m["paths"].([]any)[0].(map[string]any)["targets"].([]any)[0], "label", "percentile", "limit_ms", "met")

	// The report of these results: Markdown, well-formed SVG, JSON that reads back.
	dir := t.TempDir()
	suite := &SuiteResult{Benchmark: "suite", Paths: res, SQL: &SQLResult{Benchmark: "sql", Scales: []int{10, 20}, Samples: 1,
		Functions: []SQLFunction{{Name: "get_next_ready_tasks", Function: "get_next_ready_tasks",
			Points: []SQLPoint{{Scale: 10, P50: 0.2, P95: 0.3, P99: 0.4}, {Scale: 20, P50: 0.3, P95: 0.4, P99: 0.5}}}}}}
	files, err := WriteReport(dir, suite, true)
	require.NoError(t, err)
	require.Len(t, files, 5)
	md, err := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	require.NoError(t, err)
	for _, want := range []string{"## SQL functions", "| get_next_ready_tasks | global | 0.200 / 0.300 / 0.400 |", "## Critical paths",
		"API → task UUID over HTTP", "](" + ChartPathsCDF + ")", "](" + ChartSQLP50 + ")"} {
		require.Contains(t, string(md), want)
	}
	for _, name := range []string{ChartSQLP50, ChartSQLP99, ChartPathsCDF} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			_, err := d.Token()
			if err != nil {
				require.ErrorContains(t, err, "EOF", "%s is not well-formed XML", name)
				break
			}
		}
		require.Contains(t, string(b), "<polyline")
	}
	back, err := ReadSuite(filepath.Join(dir, ReportResults))
	require.NoError(t, err)
	require.Len(t, back.Paths.Paths, len(res.Paths))
}
