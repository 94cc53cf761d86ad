package engine_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// cutAfterCommit cuts the store's database off as soon as the creating
// transaction has committed, as a restart or pg_terminate_backend would.
type cutAfterCommit struct {
	inner *orchestration.Service
	cut   func()
}

func (c cutAfterCommit) CreateTaskAndRead(ctx context.Context, req client.TaskRequest, read orchestration.ReadInTx) (*orchestration.Created, error) {
	created, err := c.inner.CreateTaskAndRead(ctx, req, read)
	c.cut()
	return created, err
}

// A committed task is answered from what the creating transaction read, so a
// database lost right after the commit cannot turn it into an error (which a
// retrying client would turn into a duplicate).
func TestCreateTaskAnswersFromTheCreatingTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	svc, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	storePool, err := pgxpool.NewWithConfig(ctx, b.pool.Config().Copy())
	require.NoError(t, err)
	store := api.NewStore(storePool, cutAfterCommit{inner: svc, cut: storePool.Close}, nil)

	task, _, err := store.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err, "a committed task must not be reported as a failure")

	// Nothing runs the task, so a read now sees what the creation left.
	got, err := api.NewStore(b.pool, svc, nil).GetTask(ctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, got, task)
	require.Equal(t, 4, task.TotalSteps)
	require.Equal(t, "steps_in_process", task.State)
	require.NotEmpty(t, task.Transitions)
}

// A read that fails inside the creating transaction rolls the task back: the
// caller is told of a failure only when nothing was committed.
func TestCreateTaskReadFailureRollsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	svc, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	before := tableCounts(t, b)
	_, err = svc.CreateTaskAndRead(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 6}),
		func(context.Context, pgx.Tx, *orchestration.Created) error { return context.DeadlineExceeded })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, before, tableCounts(t, b))
}
