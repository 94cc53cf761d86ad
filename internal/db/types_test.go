package db_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
)

// uuid.UUID values, arrays, pointers and NULLs go to and from the
// database through the binary path RegisterTypes installs, and come back
// exactly as they do through pgx's own (driver.Valuer / sql.Scanner) path.
func TestUUIDTypes(t *testing.T) {
	ctx := t.Context()
	url := dbtest.NewDatabase(t)
	plain, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close(ctx) })
	fast, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fast.Close(ctx) })
	db.RegisterTypes(fast.TypeMap())

	a, b := uuid.New(), uuid.New()
	type result struct {
		One, Null  uuid.UUID
		Text       string
		Arr, WithN []uuid.UUID
		N          int
		Ptr, NilP  *uuid.UUID
		IsNull     bool
	}
	run := func(c *pgx.Conn) result {
		var r result
		r.Null = a // NULL leaves a uuid.UUID as it was
		require.NoError(t, c.QueryRow(ctx, `SELECT $1::uuid, $1::uuid::text, NULL::uuid, $2::uuid[], cardinality($2::uuid[]),
			$3::uuid, $4::uuid IS NULL, NULL::uuid, ARRAY[$1::uuid, NULL]`, a, []uuid.UUID{a, b}, &b, (*uuid.UUID)(nil)).
			Scan(&r.One, &r.Text, &r.Null, &r.Arr, &r.N, &r.Ptr, &r.IsNull, &r.NilP, &r.WithN))
		return r
	}
	want := result{One: a, Text: a.String(), Null: a, Arr: []uuid.UUID{a, b}, N: 2, Ptr: &b, IsNull: true,
		WithN: []uuid.UUID{a, uuid.Nil}}
	require.Equal(t, want, run(plain), "pgx's own path")
	require.Equal(t, want, run(fast), "the registered path")
}
