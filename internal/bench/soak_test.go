package bench_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/bench"
	"github.com/taskerhq/tasker/internal/dbtest"
)

// A short soak against the real binary: both processes are sampled from
// their own /metrics and the database, and the tasks flow.
func TestSoakSmoke(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "tasker")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/tasker").CombinedOutput()
	require.NoError(t, err, string(out))

	var seen []bench.SoakSample
	rep, err := bench.RunSoak(context.Background(), bench.SoakConfig{
		Binary: bin, DatabaseURL: dbtest.NewDatabase(t), Duration: 3 * time.Second, Interval: time.Second, Rate: 10,
		LogDir:   t.TempDir(),
		OnSample: func(s bench.SoakSample) { seen = append(seen, s) },
	})
	require.NoError(t, err)
	require.Equal(t, seen, rep.Samples)
	require.GreaterOrEqual(t, len(rep.Samples), 2)
	last := rep.Samples[len(rep.Samples)-1]
	for name, p := range map[string]bench.ProcessSample{"server": last.Server, "worker": last.Worker} {
		require.Positive(t, p.RSSBytes, name)
		require.Positive(t, p.Goroutines, name)
		require.Positive(t, p.OpenFDs, name)
		require.Positive(t, p.DBConns, name)
	}
	require.Positive(t, last.Created)
	require.Positive(t, last.Tables["tasks"])
	require.Positive(t, rep.MaxServerRSS)
	require.Zero(t, rep.Errors)
}
