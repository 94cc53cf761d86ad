package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDevOnce runs the README's first command end to end: an ephemeral
// PostgreSQL, the engine, the API and every example workflow.
func TestDevOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"dev", "--once", "--listen", "127.0.0.1:0"})
	code := execute(ctx, root)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	s := out.String()
	require.Contains(t, s, "every demo task ended as expected")
	require.Contains(t, s, "PostgreSQL stopped")
	require.Contains(t, s, "8 of 8 example tasks ended as expected")
	require.Regexp(t, `ok  linear_workflow/mathematical_sequence@1.0.0 +complete .* correlation_id [0-9a-f-]{36}`, s)
	require.Regexp(t, `ok  retry_workflow/retry_exhaustion@1.0.0 +error .*fails by design`, s)
	require.Contains(t, s, "Next steps")
	require.Contains(t, s, "/ui/ (tasks with their DAGs")
	require.Contains(t, s, "examples/custom-worker")
	require.NotContains(t, s, "timeline", "timelines only with --verbose")
	require.Equal(t, 8, strings.Count(s, "\n  ok  "), s)
	require.NotContains(t, errOut.String(), "ERROR", "logs go to a file by default")
}

// TestDevVerboseAndListenCheck: --verbose prints timelines and results; a
// taken --listen address fails before PostgreSQL starts.
func TestDevVerboseAndListenCheck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"dev", "--once", "--listen", ln.Addr().String()})
	require.Equal(t, exitUsage, execute(ctx, root))
	require.Contains(t, errOut.String(), "--listen")
	require.NotContains(t, out.String(), "PostgreSQL", "nothing was started")

	root = newRootCmd(func(string) string { return "" })
	out.Reset()
	errOut.Reset()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"dev", "--once", "--verbose", "--listen", "127.0.0.1:0", "--log-level", "error"})
	require.Equal(t, 0, execute(ctx, root), "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	for _, key := range []string{"timeline", "2821109907456", "task_uuid"} {
		require.Contains(t, out.String(), key)
	}
}
