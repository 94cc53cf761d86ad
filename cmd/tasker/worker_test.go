package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
)

// runRoot runs the whole command tree with env as the environment.
func runRoot(ctx context.Context, env map[string]string, args ...string) result {
	root := newRootCmd(func(k string) string { return env[k] })
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	code := execute(ctx, root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

const etlYAML = `namespace: etl
name: pipeline
version: 1.0.0
steps:
  - name: fetch
    handler: etl.fetch
  - name: store
    handler: etl.store
    depends_on: [fetch]
`

// etlSetup gives a test a database and a directory holding etlYAML.
func etlSetup(t *testing.T) (context.Context, map[string]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etl.yaml"), []byte(etlYAML), 0o600))
	return ctx, map[string]string{"DATABASE_URL": dbtest.NewDatabase(t)}, dir
}

// TestWorkerRefusesTemplatesWithoutHandlers: the stock worker runs only the
// example handlers, so a template of the user's own names handlers it lacks.
func TestWorkerRefusesTemplatesWithoutHandlers(t *testing.T) {
	t.Parallel()
	ctx, env, dir := etlSetup(t)

	res := runRoot(ctx, env, "worker", "--templates", dir, "--listen", "127.0.0.1:0")
	require.Equal(t, exitUsage, res.code, res.stderr)
	require.Contains(t, res.stderr, `"etl.fetch" (step fetch of etl/pipeline@1.0.0)`)
	require.Contains(t, res.stderr, `"etl.store"`)
	require.Contains(t, res.stderr, "examples/custom-worker")

	// Nothing was registered.
	res = runRoot(ctx, env, "worker", "--namespace", "etl", "--listen", "127.0.0.1:0")
	require.Equal(t, exitUsage, res.code, res.stderr)
	require.Contains(t, res.stderr, `unknown namespace "etl"`)

	res = runRoot(ctx, env, "worker", "--listen", "127.0.0.1:0")
	require.Equal(t, exitUsage, res.code, res.stderr)
	require.Contains(t, res.stderr, "nothing to serve")
}

// TestTemplateRegisterVersionConflict: a changed template under a registered
// version is refused; the same content again is accepted.
func TestTemplateRegisterVersionConflict(t *testing.T) {
	t.Parallel()
	ctx, env, dir := etlSetup(t)

	res := runRoot(ctx, env, "template", "register", dir)
	require.Equal(t, exitOK, res.code, res.stderr)
	res = runRoot(ctx, env, "template", "register", dir)
	require.Equal(t, exitOK, res.code, "identical content is a no-op: %s", res.stderr)

	changed := etlYAML + "    retry:\n      max_attempts: 5\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etl.yaml"), []byte(changed), 0o600))
	res = runRoot(ctx, env, "template", "register", dir)
	require.Equal(t, exitUsage, res.code, res.stderr)
	require.Contains(t, res.stderr, "etl/pipeline@1.0.0")
	require.Contains(t, res.stderr, "new version")
}
