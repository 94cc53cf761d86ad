package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDevRuby: with --ruby the linear and diamond examples run in a Ruby
// worker process (the Go worker no longer serves them, so they complete only
// if Ruby ran them) and the nested example's Go parent starts a Ruby child.
func TestDevRuby(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"dev", "--once", "--ruby", "--listen", "127.0.0.1:0"})
	code := execute(ctx, root)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	s := out.String()
	require.Regexp(t, `Ruby worker \(pid \d+, .*libtasker.so\) serves linear_workflow, diamond_workflow`, s)
	require.Contains(t, s, "8 of 8 example tasks ended as expected")
	require.Regexp(t, `ok  linear_workflow/mathematical_sequence@1.0.0 +complete`, s)
	require.Regexp(t, `ok  diamond_workflow/diamond_pattern@1.0.0 +complete`, s)
	require.Regexp(t, `ok  nested_workflow/parent_with_child@1.0.0 +complete`, s)
}

func TestDevRubyRejectsAnUnknownNamespace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"dev", "--once", "--ruby", "--ruby-namespaces", "nope", "--listen", "127.0.0.1:0"})
	require.Equal(t, exitUsage, execute(ctx, root), "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	require.Contains(t, errOut.String(), `--ruby-namespaces: "nope"`)
}
