package examples_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// goCmd runs the go tool in the custom-worker module, a module of its own
// that can import only the public packages.
func goCmd(t *testing.T, ctx context.Context, env []string, args ...string) *exec.Cmd {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go tool builds the example")
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = "custom-worker"
	// -mod=mod: a dependency the repository root gained since the example's
	// go.mod was last tidied must not fail the build (a copied example runs
	// `go mod tidy` of its own anyway).
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod"), env...)
	return cmd
}

// TestCustomWorkerUnitTests runs the example's own tests (taskertest on its
// handlers and its whole workflow) against a test database.
func TestCustomWorkerUnitTests(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := goCmd(t, ctx, []string{"DATABASE_URL=" + dbtest.NewDatabase(t)}, "test", "-count=1", "./...").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestCustomWorkerEndToEnd builds the example program, starts it against a
// test database, creates a task of its own template through its REST API
// and sees it complete, with the summary stored in the program's own table.
func TestCustomWorkerEndToEnd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "custom-worker")
	out, err := goCmd(t, ctx, nil, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	url := dbtest.NewDatabase(t)
	cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	apiURL := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`api=(http://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				apiURL <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	var api string
	select {
	case api = <-apiURL:
	case err := <-exited:
		t.Fatalf("custom-worker exited before serving: %v", err)
	case <-ctx.Done():
		t.Fatal("custom-worker never started serving")
	}

	c := client.New(api)
	req, err := client.NewTaskRequest("reports", "order_report", "", map[string]any{"day": "2026-11-26", "orders": 5})
	require.NoError(t, err)
	task, err := c.CreateTask(ctx, req)
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	final, err := c.WaitForTask(wctx, task.TaskUUID, 20*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "complete", final.State, "%+v", final.Error)
	var stored struct {
		ReportID   int64 `json:"report_id"`
		TotalCents int   `json:"total_cents"`
	}
	require.NoError(t, json.Unmarshal(final.Result["store_summary"], &stored))
	require.Equal(t, 1500, stored.TotalCents)

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var orders int
	require.NoError(t, pool.QueryRow(ctx, `SELECT orders FROM order_reports WHERE id = $1 AND task_uuid = $2`,
		stored.ReportID, task.TaskUUID).Scan(&orders))
	require.Equal(t, 5, orders)

	// SIGTERM stops it cleanly.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("custom-worker did not stop on SIGTERM")
	}
	exited <- nil // for the cleanup
}
