package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/metrics"
)

// A `tasker server` just started, before any task, serves every metric
// family an orchestration process reports on /metrics: counters at 0 and
// histograms empty for the label sets it knows, so dashboards show 0 and not
// "No data". The only family it lacks is the worker's own gauge.
func TestServerExportsEveryFamilyAtStart(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())

	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"server", "--database-url", dbURL, "--listen", addr, "--examples", "--log-level", "error"})
	done := make(chan int, 1)
	go func() { done <- execute(ctx, root) }()
	t.Cleanup(func() {
		cancel()
		require.Equal(t, exitOK, <-done, "stderr:\n%s", errOut.String())
	})

	workerOnly := map[string]bool{"tasker_steps_active_executions": true, "tasker_handlers_overdue": true}
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing = missing[:0]
		families := scrapeServer(t, "http://"+addr+"/metrics")
		for _, name := range metrics.Names() {
			if _, ok := families[name]; !ok && !workerOnly[name] {
				missing = append(missing, name)
			}
		}
		if families != nil && len(missing) == 0 {
			f := families["tasker_messages_failed_total"]
			require.NotEmpty(t, f.GetMetric())
			for _, m := range f.GetMetric() {
				require.Zero(t, m.GetCounter().GetValue())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("families missing from a fresh tasker server: %v\nstderr:\n%s", missing, errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeServer parses /metrics, or returns nil while the server is not up.
func scrapeServer(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}
