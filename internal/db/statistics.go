package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// HotTables returns the tables the engine's hot path plans against, in the
// tasker schema.
func HotTables() []string {
	return []string{"tasks", "workflow_steps", "workflow_step_edges", "task_transitions",
		"workflow_step_transitions", "queue_messages"}
}

// AnalyzeGrownTablesParams configures AnalyzeGrownTables.
type AnalyzeGrownTablesParams struct {
	// Tables are the tasker tables to look at (HotTables() when empty).
	Tables []string
	// MinRows is the least number of live rows a table needs before its
	// growth counts: small tables plan the same either way.
	MinRows int64
}

// AnalyzeGrownTables runs ANALYZE on each of the tables whose live rows
// have more than doubled since its statistics were gathered (or that were
// never analyzed), and returns their names. Tables the current user may
// not analyze (not their owner's role) are left to autovacuum: PostgreSQL
// would skip them with a warning in its log on every call.
//
// The hot path's functions keep one generic plan per connection, made from
// the statistics at the time; ANALYZE makes them plan again. Autovacuum
// analyzes a table only on its next visit to the database (a minute apart
// by default): a new database, or a burst of tasks, grows the tables a
// hundredfold in that minute, and plans made when they were small scan
// them on every call (an open-loop benchmark at 2,000 tasks/s on a fresh
// database completed a few hundred tasks/s that way).
func (f *Funcs) AnalyzeGrownTables(ctx context.Context, q Querier, p AnalyzeGrownTablesParams) (analyzed []string, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "analyze_grown_tables"})
	defer func() { sc.End(err) }()
	tables := p.Tables
	if len(tables) == 0 {
		tables = HotTables()
	}
	rows, err := q.Query(ctx, `SELECT c.relname::text FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE n.nspname = 'tasker' AND c.relname = ANY ($1)
			AND s.n_live_tup >= $2 AND s.n_live_tup > 2 * greatest(c.reltuples, 0)
			AND pg_has_role(c.relowner, 'USAGE')
		ORDER BY c.relname`, tables, p.MinRows)
	if err != nil {
		return nil, fmt.Errorf("reading table growth: %w", err)
	}
	grown, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading table growth: %w", err)
	}
	for _, t := range grown {
		// The name comes from pg_class, filtered to the list above.
		if _, err := q.Exec(ctx, "ANALYZE tasker."+pgx.Identifier{t}.Sanitize()); err != nil {
			return analyzed, fmt.Errorf("analyzing %s: %w", t, err)
		}
		analyzed = append(analyzed, t)
	}
	return analyzed, nil
}
