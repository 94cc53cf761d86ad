package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
)

func TestUnavailableReason(t *testing.T) {
	ctx := context.Background()
	t.Run("refused", func(t *testing.T) {
		// Port 1 (tcpmux) has no listener on a test machine.
		_, err := pgx.Connect(ctx, "postgres://nobody:secret@127.0.0.1:1/x?connect_timeout=5")
		require.Error(t, err)
		require.True(t, db.Unavailable(err), "%v", err)
		require.Equal(t, "connection refused", db.UnavailableReason(err))
	})
	t.Run("terminated", func(t *testing.T) {
		pool := dbtest.NewPool(t)
		conn, err := pgx.Connect(ctx, pool.Config().ConnString())
		require.NoError(t, err)
		defer conn.Close(ctx)
		var pid int
		require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		_, err = pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
		// The server ends the session; the next statement on it fails.
		deadline := time.Now().Add(10 * time.Second)
		for err = conn.Ping(ctx); err == nil && time.Now().Before(deadline); err = conn.Ping(ctx) {
			time.Sleep(10 * time.Millisecond)
		}
		require.Error(t, err)
		require.True(t, db.Unavailable(err), "%v", err)
	})
	t.Run("statement errors are not outages", func(t *testing.T) {
		pool := dbtest.NewPool(t)
		_, err := pool.Exec(ctx, "SELECT * FROM no_such_table")
		require.Error(t, err)
		require.False(t, db.Unavailable(err))
		require.False(t, db.Unavailable(fmt.Errorf("wrapped: %w", db.ErrNotFound)))
		require.False(t, db.Unavailable(nil))
	})
}
