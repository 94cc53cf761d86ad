package rubyproc_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/rubyproc"
)

func TestRepoRootHoldsTheWorker(t *testing.T) {
	root, err := rubyproc.RepoRoot()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, rubyproc.WorkerRel))
	require.FileExists(t, filepath.Join(root, rubyproc.ExamplesRel))
}

// A worker that cannot load the library exits before serving; Start says so
// and passes on what it printed.
func TestStartReportsAWorkerThatExitsBeforeServing(t *testing.T) {
	root, err := rubyproc.RepoRoot()
	require.NoError(t, err)
	var out syncBuffer
	_, err = rubyproc.Start(context.Background(), rubyproc.Config{Root: root,
		Library: filepath.Join(t.TempDir(), "missing.so"), DatabaseURL: "postgres://127.0.0.1:1/none",
		Namespaces: []string{"linear_workflow"}, Requires: []string{rubyproc.ExamplesRel}, Output: &out})
	require.ErrorContains(t, err, "exited before serving")
	require.Contains(t, out.String(), "missing.so does not exist")
}

func TestCheckRuby(t *testing.T) {
	ruby, err := rubyproc.CheckRuby(context.Background())
	require.NoError(t, err, "scripts/test-setup.sh installs ruby and ruby-ffi")
	_, err = os.Stat(ruby)
	require.NoError(t, err)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
