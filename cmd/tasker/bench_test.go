package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
)

// runBench runs `tasker bench ARGS…` as main does.
func runBench(t *testing.T, args ...string) result {
	t.Helper()
	root := newBenchCmd(func(string) string { return "" })
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	code := execute(t.Context(), root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return m
}

func requireKeys(t *testing.T, v any, keys ...string) {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%v is not an object", v)
	for _, k := range keys {
		require.Contains(t, m, k)
	}
}

// Each bench command runs at a small scale, prints the environment and
// writes JSON with its documented fields. sql and critical-paths may
// report goals as missed (exit 1) on a busy machine; that is a result, not
// a failure of the command.
func TestBenchCommands(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	dir := t.TempDir()

	res := runBench(t, "generate", "--database-url", url, "--tasks", "80", "--seed", "3", "--json", filepath.Join(dir, "gen.json"))
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stdout, "postgres  ")
	require.Contains(t, res.stdout, "commit    ")
	require.Contains(t, res.stdout, "tasks by state")
	gen := readJSON(t, filepath.Join(dir, "gen.json"))
	requireKeys(t, gen, "benchmark", "added", "seed", "state_mix", "shapes", "templates", "load_s", "tasks_per_s", "stats",
		"postgres", "machine", "commit")
	requireKeys(t, gen["stats"], "tasks", "steps", "tasks_by_state", "tasks_by_shape", "steps_by_state", "tables")
	require.EqualValues(t, 80, gen["stats"].(map[string]any)["tasks"])

	// Again, larger: the dataset grows instead of colliding with itself.
	res = runBench(t, "generate", "--database-url", url, "--tasks", "100", "--seed", "3", "--json", filepath.Join(dir, "gen.json"))
	require.Equal(t, exitOK, res.code, res.stderr)
	gen = readJSON(t, filepath.Join(dir, "gen.json"))
	require.EqualValues(t, 20, gen["added"])
	require.EqualValues(t, 100, gen["stats"].(map[string]any)["tasks"])

	res = runBench(t, "sql", "--database-url", dbtest.NewDatabase(t), "--scales", "100,150", "--samples", "3", "--warmup", "1",
		"--contention-workers", "2", "--contention-duration", "200ms", "--json", filepath.Join(dir, "sql.json"))
	require.Contains(t, []int{exitOK, exitFailed}, res.code, res.stderr)
	require.Contains(t, res.stdout, "get_step_readiness_status[linear]")
	require.Contains(t, res.stdout, "goals")
	sql := readJSON(t, filepath.Join(dir, "sql.json"))
	requireKeys(t, sql, "benchmark", "scales", "functions", "datasets", "contention", "postgres", "machine", "commit")

	res = runBench(t, "explain", "--database-url", url, "--tasks", "200", "--json", filepath.Join(dir, "explain.json"))
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stdout, "findings")
	ex := readJSON(t, filepath.Join(dir, "explain.json"))
	requireKeys(t, ex, "benchmark", "tasks", "cases", "findings", "table_rows", "postgres", "machine", "commit")

	res = runBench(t, "critical-paths", "--database-url", dbtest.NewDatabase(t), "--samples", "3", "--warmup", "1",
		"--json", filepath.Join(dir, "paths.json"))
	require.Contains(t, []int{exitOK, exitFailed}, res.code, res.stderr)
	require.Contains(t, res.stdout, "pg_notify → engine listener")
	paths := readJSON(t, filepath.Join(dir, "paths.json"))
	requireKeys(t, paths, "benchmark", "samples", "paths", "postgres", "machine", "commit")
	require.Len(t, paths["paths"], 5)

	out := filepath.Join(dir, "report")
	res = runBench(t, "report", "--database-url", dbtest.NewDatabase(t), "--out", out, "--scales", "60,120", "--samples", "3",
		"--path-samples", "3", "--contention-duration", "100ms", "--json", filepath.Join(dir, "suite.json"))
	require.Equal(t, exitOK, res.code, res.stderr)
	for _, f := range []string{"report.md", "results.json", "sql-p50.svg", "sql-p99.svg", "critical-paths-cdf.svg"} {
		require.FileExists(t, filepath.Join(out, f))
	}
	suite := readJSON(t, filepath.Join(out, "results.json"))
	requireKeys(t, suite, "benchmark", "sql", "explain", "critical_paths")
	requireKeys(t, readJSON(t, filepath.Join(dir, "suite.json")), "benchmark", "sql", "explain", "critical_paths")

	again := filepath.Join(dir, "again")
	res = runBench(t, "report", "--from", filepath.Join(out, "results.json"), "--out", again)
	require.Equal(t, exitOK, res.code, res.stderr)
	first, err := os.ReadFile(filepath.Join(out, "report.md"))
	require.NoError(t, err)
	second, err := os.ReadFile(filepath.Join(again, "report.md"))
	require.NoError(t, err)
	require.Equal(t, string(first), string(second), "a report rebuilt from its results is the same")
}

// Bad flags exit 2 naming the flag, before anything is started.
func TestBenchBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"generate", "--tasks", "0"}, "--tasks"},
		{[]string{"generate", "--state-mix", "complete=60,bogus=5"}, "--state-mix"},
		{[]string{"generate", "--shapes", "linear,star"}, "--shapes"},
		{[]string{"generate", "--step-variance", "6"}, "--step-variance"},
		{[]string{"sql", "--scales", "1000,100"}, "--scales"},
		{[]string{"sql", "--samples", "0"}, "--samples"},
		{[]string{"explain", "--misestimate-factor", "1"}, "--misestimate-factor"},
		{[]string{"critical-paths", "--samples", "-1"}, "--samples"},
		{[]string{"report"}, "--out"},
		{[]string{"report", "--out", t.TempDir(), "--from", "/nonexistent.json"}, "--from"},
	} {
		res := runBench(t, tc.args...)
		require.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		require.Contains(t, res.stderr, tc.flag, tc.args)
	}
}

// The load benchmarks run at a tiny size: every load of throughput (one of
// them on 2 orchestrators + 2 workers) and latency-under-load, which also
// writes its chart beside the JSON. Figures are not checked, only that the
// commands run the load and report it.
func TestBenchLoadCommands(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	dir := t.TempDir()
	for _, load := range [][]string{
		{"--load", "closed"},
		{"--load", "burn-down", "--batch", "3", "--orchestrators", "2", "--workers", "2"},
		{"--load", "continuous", "--duration", "500ms", "--warmup", "200ms", "--backlog", "4"},
	} {
		path := filepath.Join(dir, load[1]+".json")
		args := append([]string{"throughput", "--database-url", url, "--modes", "off", "--rounds", "1", "--tasks", "6",
			"--template", "single", "--floor-samples", "3", "--json", path}, load...)
		res := runBench(t, args...)
		require.Equal(t, exitOK, res.code, "%v: %s", load, res.stderr)
		require.Contains(t, res.stdout, "floor     commit")
		require.Contains(t, res.stdout, load[1])
		tp := readJSON(t, path)
		requireKeys(t, tp, "benchmark", "load", "topology", "modes", "floor", "postgres", "machine", "commit")
		require.Equal(t, load[1], tp["load"])
		modes := tp["modes"].([]any)
		require.Len(t, modes, 1)
		requireKeys(t, modes[0], "median_steps_per_second", "task_p50_ms", "task_p95_ms", "task_p99_ms", "tasks_measured")
		if load[1] != "continuous" {
			require.EqualValues(t, 6, modes[0].(map[string]any)["tasks_measured"], "every task completed and was measured")
		}
	}

	path := filepath.Join(dir, "latency.json")
	res := runBench(t, "latency-under-load", "--database-url", url, "--rate", "20,40", "--duration", "500ms", "--warmup", "100ms",
		"--floor-samples", "3", "--json", path)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stdout, "TARGET/S")
	lat := readJSON(t, path)
	requireKeys(t, lat, "benchmark", "template", "rates", "saturates_at", "floor", "postgres", "machine", "commit")
	rates := lat["rates"].([]any)
	require.Len(t, rates, 2)
	for i, want := range []float64{20, 40} {
		r := rates[i].(map[string]any)
		requireKeys(t, r, "created_per_second", "completed_per_second", "p50_ms", "p95_ms", "p99_ms", "saturated")
		require.EqualValues(t, want, r["target_rate"])
		require.Positive(t, r["tasks"], "arrivals were created and measured")
	}
	svg, err := os.ReadFile(filepath.Join(dir, "latency.svg"))
	require.NoError(t, err)
	require.Contains(t, string(svg), "<svg")
}

// Bad flags of the load benchmarks exit 2 naming the flag.
func TestBenchLoadBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"throughput", "--load", "steady"}, "--load"},
		{[]string{"throughput", "--modes", "off,loud"}, "--modes"},
		{[]string{"throughput", "--orchestrators", "0"}, "--orchestrators"},
		{[]string{"throughput", "--workers", "17"}, "--workers"},
		{[]string{"throughput", "--batch", "1001"}, "--batch"},
		{[]string{"throughput", "--template", "nope"}, "--template"},
		{[]string{"latency-under-load"}, "--rate"},
		{[]string{"latency-under-load", "--rate", "10,-5"}, "--rate"},
		{[]string{"latency-under-load", "--rate", "10", "--duration", "0s"}, "--duration"},
		{[]string{"latency-under-load", "--rate", "10", "--creators", "0"}, "--creators"},
	} {
		res := runBench(t, tc.args...)
		require.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		require.Contains(t, res.stderr, tc.flag, tc.args)
	}
}
