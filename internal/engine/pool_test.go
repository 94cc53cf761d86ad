package engine_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/dbtest"
)

func dbtestPool(t *testing.T) *pgxpool.Pool { return dbtest.NewPool(t) }
