package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
)

// A table is analyzed once it has more than doubled since its statistics
// (and reached MinRows), and not again until it doubles again.
func TestAnalyzeGrownTables(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := t.Context()
	f := db.NewFuncs(nil)
	p := db.AnalyzeGrownTablesParams{Tables: []string{"queue_messages", "tasks"}, MinRows: 1000}
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	insert := func(n int) {
		t.Helper()
		_, err := conn.Exec(ctx, `INSERT INTO tasker.queue_messages (queue_name, message) SELECT 'q', '{}' FROM generate_series(1, $1)`, n)
		require.NoError(t, err)
		// Counted in pg_stat_user_tables now, not at the next periodic flush.
		_, err = conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		require.NoError(t, err)
	}
	reltuples := func() float64 {
		var r float64
		require.NoError(t, pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'tasker.queue_messages'::regclass`).Scan(&r))
		return r
	}

	insert(500)
	got, err := f.AnalyzeGrownTables(ctx, conn, p)
	require.NoError(t, err)
	require.Empty(t, got, "below MinRows")

	insert(1000)
	got, err = f.AnalyzeGrownTables(ctx, conn, p)
	require.NoError(t, err)
	require.Equal(t, []string{"queue_messages"}, got, "never analyzed and past MinRows; tasks is empty")
	require.InDelta(t, 1500, reltuples(), 1)

	insert(1000)
	got, err = f.AnalyzeGrownTables(ctx, conn, p)
	require.NoError(t, err)
	require.Empty(t, got, "2,500 rows is not double 1,500")

	insert(600)
	got, err = f.AnalyzeGrownTables(ctx, conn, p)
	require.NoError(t, err)
	require.Equal(t, []string{"queue_messages"}, got, "3,100 rows is double 1,500")
	require.InDelta(t, 3100, reltuples(), 1)

	// A user who does not own the table cannot analyze it: it is not tried.
	insert(5000)
	role := "tasker_stats_reader_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	_, err = conn.Exec(ctx, "CREATE ROLE "+role)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	_, err = conn.Exec(ctx, "GRANT USAGE ON SCHEMA tasker TO "+role+"; GRANT SELECT ON tasker.queue_messages TO "+role)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL ROLE "+role)
	require.NoError(t, err)
	got, err = f.AnalyzeGrownTables(ctx, tx, p)
	require.NoError(t, err)
	require.Empty(t, got, "8,100 rows have grown, but the table is not this user's")
	require.NoError(t, tx.Rollback(ctx))
	got, err = f.AnalyzeGrownTables(ctx, conn, p)
	require.NoError(t, err)
	require.Equal(t, []string{"queue_messages"}, got, "its owner analyzes it")
}
