package main

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/taskertest"
)

func TestFetchOrders(t *testing.T) {
	res := taskertest.RunStep(t, handler.Typed(fetchOrders), taskertest.StepOpts{
		Context: reportRequest{Day: "2026-11-26", Orders: 3}})
	var orders []order
	if err := res.Decode(&orders); err != nil {
		t.Fatal(err)
	}
	if len(orders) != 3 || orders[2].AmountCents != 300 {
		t.Fatalf("unexpected orders %+v", orders)
	}
	res = taskertest.RunStep(t, handler.Typed(fetchOrders), taskertest.StepOpts{Context: reportRequest{Day: "yesterday"}})
	if !res.Permanent() {
		t.Fatalf("a malformed day must fail permanently, got %+v", res.Err)
	}
}

func TestSummarise(t *testing.T) {
	res := taskertest.RunStep(t, handler.Func(summarise), taskertest.StepOpts{
		Context:           map[string]any{"day": "2026-11-26"},
		DependencyResults: map[string]any{"fetch_orders": []order{{1, 100}, {2, 250}}},
	})
	var s summary
	if err := res.Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.TotalCents != 350 || s.LargestItem != 250 || s.Orders != 2 {
		t.Fatalf("unexpected summary %+v", s)
	}
}

// TestWholeWorkflow runs the template end to end against the database of
// DATABASE_URL.
func TestWholeWorkflow(t *testing.T) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Fatal("DATABASE_URL is required")
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `CREATE TABLE IF NOT EXISTS order_reports (
		id bigserial PRIMARY KEY, day date NOT NULL, orders int NOT NULL, total_cents bigint NOT NULL,
		task_uuid uuid NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	tpls, err := loadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	run := taskertest.RunTask(t, pool, tpls[0], registerHandlers(pool), reportRequest{Day: "2026-11-26", Orders: 4}, nil)
	if run.Task.State != "complete" {
		t.Fatalf("task ended %s: %+v", run.Task.State, run.Task.Error)
	}
	var stored struct {
		TotalCents int `json:"total_cents"`
	}
	if err := run.StepResult("store_summary", &stored); err != nil {
		t.Fatal(err)
	}
	if stored.TotalCents != 1000 {
		t.Fatalf("total %d, want 1000", stored.TotalCents)
	}
}
