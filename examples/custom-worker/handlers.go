package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/handler"
)

// reportRequest is the task context: which day to report on.
type reportRequest struct {
	Day    string `json:"day"`
	Orders int    `json:"orders"`
}

type order struct {
	ID          int `json:"id"`
	AmountCents int `json:"amount_cents"`
}

type summary struct {
	Day         string `json:"day"`
	Orders      int    `json:"orders"`
	TotalCents  int    `json:"total_cents"`
	LargestItem int    `json:"largest_cents"`
}

// fetchOrders stands in for a call to an order service: it makes the day's
// orders up from the request, deterministically.
func fetchOrders(_ context.Context, _ *handler.StepContext, req reportRequest) ([]order, error) {
	if _, err := time.Parse(time.DateOnly, req.Day); err != nil {
		// Retrying cannot fix the task's input.
		return nil, handler.Permanent(fmt.Errorf("day must be YYYY-MM-DD: %w", err))
	}
	if req.Orders < 0 || req.Orders > 10_000 {
		return nil, handler.Permanent(fmt.Errorf("orders must be in 0..10000, got %d", req.Orders))
	}
	out := make([]order, req.Orders)
	for i := range out {
		out[i] = order{ID: i + 1, AmountCents: 100 * (i + 1)}
	}
	return out, nil
}

func summarise(_ context.Context, step *handler.StepContext) (any, error) {
	orders, err := handler.DependencyResult[[]order](step, "fetch_orders")
	if err != nil {
		return nil, handler.Permanent(err)
	}
	day, err := handler.Input[string](step, "day")
	if err != nil {
		return nil, handler.Permanent(err)
	}
	s := summary{Day: day, Orders: len(orders)}
	for _, o := range orders {
		s.TotalCents += o.AmountCents
		s.LargestItem = max(s.LargestItem, o.AmountCents)
	}
	return s, nil
}

// storeSummary writes the summary to the application's own table. A database
// error is returned as is, so the step is retried.
func storeSummary(pool *pgxpool.Pool) handler.Func {
	return func(ctx context.Context, step *handler.StepContext) (any, error) {
		s, err := handler.DependencyResult[summary](step, "summarise")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		if pool == nil {
			return nil, errors.New("no database to store the summary in")
		}
		var id int64
		err = pool.QueryRow(ctx, `INSERT INTO order_reports (day, orders, total_cents, task_uuid)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (task_uuid) DO UPDATE SET orders = EXCLUDED.orders
			RETURNING id`, s.Day, s.Orders, s.TotalCents, step.TaskUUID).Scan(&id)
		if err != nil {
			return nil, fmt.Errorf("storing the summary: %w", err)
		}
		return map[string]any{"report_id": id, "total_cents": s.TotalCents}, nil
	}
}

// registerHandlers adds the handlers the templates name.
func registerHandlers(pool *pgxpool.Pool) *handler.Registry {
	reg := handler.NewRegistry()
	reg.MustRegister("reports.fetch_orders", handler.Typed(fetchOrders))
	reg.MustRegister("reports.summarise", handler.Func(summarise))
	reg.MustRegister("reports.store_summary", storeSummary(pool))
	return reg
}
