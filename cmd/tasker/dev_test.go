package main

import (
	"bytes"
	"context"
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
	for _, key := range []string{"linear_workflow/mathematical_sequence@1.0.0  [ok]", "retry_workflow/retry_exhaustion@1.0.0  [ok]",
		"nested_workflow/parent_with_child@1.0.0  [ok]", "correlation_id", "timeline", "2821109907456"} {
		require.Contains(t, s, key)
	}
	require.Equal(t, 8, strings.Count(s, "  [ok]"), s)
}
