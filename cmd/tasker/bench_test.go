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
