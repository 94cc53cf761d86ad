package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// The benchmark runs end to end on a small scale. Timing values are only
// checked for being positive and ordered: they depend on the machine.
func TestE2ELinear(t *testing.T) {
	url := dbtest.NewDatabase(t)
	results, err := E2E(t.Context(), Config{
		DatabaseURL: url, MaxConns: 10, Runs: 5, Warmup: 1, FloorSamples: 20,
		TaskTimeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler),
	}, "linear")
	if err != nil {
		t.Fatalf("E2E: %v", err)
	}
	if len(results) != 1 {
		t.Fatalf("got %d results, want 1", len(results))
	}
	r := results[0]
	if r.Runs != 5 || r.Warmup != 1 || r.Errors != 0 {
		t.Fatalf("runs %d, warmup %d, errors %d (%v); want 5, 1, 0", r.Runs, r.Warmup, r.Errors, r.ErrorSamples)
	}
	if r.Template != "linear_workflow/mathematical_sequence@1.0.0" || r.Steps != 4 {
		t.Errorf("template %s with %d steps, want the linear example with 4", r.Template, r.Steps)
	}
	if r.HookMisses != 0 {
		t.Errorf("%d completions missed by the hook", r.HookMisses)
	}
	if !(r.P50 > 0 && r.P95 >= r.P50 && r.P99 >= r.P95 && r.Max >= r.P99 && r.Mean > 0) {
		t.Errorf("client latencies not positive and ordered: p50 %v p95 %v p99 %v max %v mean %v", r.P50, r.P95, r.P99, r.Max, r.Mean)
	}
	if !(r.DBP50 > 0 && r.DBP99 >= r.DBP50) {
		t.Errorf("db latencies not positive and ordered: p50 %v p99 %v", r.DBP50, r.DBP99)
	}
	if !(r.Floor.CommitP50 > 0 && r.Floor.CommitP99 >= r.Floor.CommitP50 && r.Floor.NotifyP50 > 0 && r.Floor.NotifyP99 >= r.Floor.NotifyP50 && r.Floor.RoundTripP50 > 0) {
		t.Errorf("floor not positive and ordered: %+v", r.Floor)
	}
	if !(r.XIDsPerTask > 0 && r.WALBytesPerTask > 0) {
		t.Errorf("xids per task %v, WAL bytes per task %v; want both > 0", r.XIDsPerTask, r.WALBytesPerTask)
	}
	if r.Postgres.Version == "" || r.Postgres.Fsync == "" || r.Machine.CPUs < 1 || r.Commit == "" {
		t.Errorf("environment incomplete: %+v %+v commit %q", r.Postgres, r.Machine, r.Commit)
	}
	hops := map[string]Hop{}
	for _, h := range r.Hops {
		hops[h.Name] = h
	}
	for name, want := range map[string]int64{
		HopCreateToEnqueue: 5, HopEnqueueToClaim: 20, HopClaimToSubmit: 20, HopSubmitToComplete: 20,
		HopCompleteToNext: 15, HopLastToFinal: 5, HopOutsideDB: 5,
	} {
		if got := hops[name].Samples; got != want {
			t.Errorf("hop %q: %d samples, want %d", name, got, want)
		}
	}

	for _, tc := range []struct {
		name    string
		asArray bool
	}{{"object", false}, {"array", true}} {
		t.Run("json "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "e2e.json")
			if err := WriteJSON(path, results, tc.asArray); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if tc.asArray {
				var arr []map[string]any
				if err := json.Unmarshal(b, &arr); err != nil {
					t.Fatalf("parsing %s: %v", b, err)
				}
				if len(arr) != 1 {
					t.Fatalf("array of %d, want 1", len(arr))
				}
				obj = arr[0]
			} else if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatalf("parsing %s: %v", b, err)
			}
			checkKeys(t, obj, "benchmark", "template", "runs", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms",
				"mean_ms", "db_p50_ms", "db_p95_ms", "db_p99_ms", "floor", "postgres", "machine", "commit", "started_at")
			checkKeys(t, obj["floor"], "commit_p50_ms", "commit_p99_ms", "notify_p50_ms", "notify_p99_ms")
			checkKeys(t, obj["postgres"], "version", "fsync", "synchronous_commit", "full_page_writes")
			checkKeys(t, obj["machine"], "cpus", "goos", "goarch")
			if obj["benchmark"] != "e2e" || obj["runs"] != float64(5) || obj["errors"] != float64(0) {
				t.Errorf("benchmark %v runs %v errors %v; want e2e, 5, 0", obj["benchmark"], obj["runs"], obj["errors"])
			}
			if _, err := time.Parse(time.RFC3339Nano, obj["started_at"].(string)); err != nil {
				t.Errorf("started_at: %v", err)
			}
		})
	}
}

func checkKeys(t *testing.T, v any, keys ...string) {
	t.Helper()
	obj, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%v is not an object", v)
		return
	}
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			t.Errorf("key %q missing from %v", k, obj)
		}
	}
}

func TestE2EPollCompletion(t *testing.T) {
	url := dbtest.NewDatabase(t)
	results, err := E2E(t.Context(), Config{
		DatabaseURL: url, MaxConns: 10, Runs: 3, Warmup: 0, FloorSamples: 5, Completion: CompletionPoll,
	}, "single")
	if err != nil {
		t.Fatalf("E2E: %v", err)
	}
	r := results[0]
	if r.Runs != 3 || r.Errors != 0 || !(r.P50 > 0) || r.Completion != CompletionPoll || r.PollIntervalUs != 200 {
		t.Fatalf("unexpected result %+v", r)
	}
}

func TestResolveTemplate(t *testing.T) {
	for in, want := range map[string][3]string{
		"linear":                            {"linear_workflow", "mathematical_sequence", ""},
		"mixed_dag":                         {"mixed_dag_workflow", "complex_dag", ""},
		"single_workflow/single_step@1.0.0": {"single_workflow", "single_step", "1.0.0"},
	} {
		ns, name, version, err := ResolveTemplate(in)
		if err != nil || [3]string{ns, name, version} != want {
			t.Errorf("ResolveTemplate(%q) = %s %s %s %v, want %v", in, ns, name, version, err, want)
		}
	}
	if _, _, _, err := ResolveTemplate("nope"); err == nil {
		t.Error("ResolveTemplate(nope) succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{DatabaseURL: "x", Runs: -1},
		{DatabaseURL: "x", Warmup: -1},
		{DatabaseURL: "x", EvenNumber: 3},
		{DatabaseURL: "x", Completion: "listen"},
	} {
		if err := c.withDefaults().validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (Config{DatabaseURL: "x"}).withDefaults().validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestHistogram(t *testing.T) {
	h := newHist()
	if h.pct(50) != 0 || h.max() != 0 || h.mean() != 0 {
		t.Error("empty histogram reports values")
	}
	for i := 1; i <= 100; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	h.record(-time.Second)    // clamped to 1µs
	h.record(2 * time.Minute) // clamped to 60s
	if h.count() != 102 {
		t.Errorf("count %d", h.count())
	}
	if p50, p99, max := h.pct(50), h.pct(99), h.max(); !(p50 > 0 && p99 >= p50 && max >= p99) {
		t.Errorf("p50 %v p99 %v max %v", p50, p99, max)
	}
}

// TestThroughputModes runs every mode once on a small load (a real Jaeger
// receives the full mode's telemetry) and checks the report's shape.
func TestThroughputModes(t *testing.T) {
	t.Parallel()
	res, err := Throughput(context.Background(), ThroughputConfig{
		DatabaseURL: dbtest.NewDatabase(t), Template: "single", Tasks: 20, Submitters: 4, Rounds: 1,
	})
	require.NoError(t, err)
	require.Len(t, res.Modes, 3)
	for _, m := range res.Modes {
		require.Zero(t, m.Errors, m.Mode)
		require.Len(t, m.Rounds, 1)
		require.Positive(t, m.Median, m.Mode)
		require.Positive(t, m.Ratio, m.Mode)
	}
	require.InDelta(t, 1.0, res.Modes[0].Ratio, 1e-9, "off is the baseline")
	require.Equal(t, 1, res.Steps)
}
