package orchestration

import (
	"context"
	"time"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/tracing"
)

// statsInterval is how often the orchestrator looks for hot tables that
// outgrew their statistics; statsMinRows is the size below which growth
// does not count.
const (
	statsInterval = 5 * time.Second
	statsMinRows  = 1000
)

// statsLoop analyzes the hot tables that have more than doubled since
// their last ANALYZE (see db.AnalyzeGrownTables), so that the hot path's
// cached plans follow a growing database between autovacuum's visits.
// Tables the database user does not own are left to autovacuum.
func (s *Service) statsLoop(ctx context.Context) {
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		analyzed, err := s.funcs.AnalyzeGrownTables(tracing.Suppress(ctx), s.pool, db.AnalyzeGrownTablesParams{MinRows: statsMinRows})
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "analyzing grown tables failed; their statistics are left to autovacuum",
					"operation", "analyze_grown_tables", "error", err)
			}
			return
		}
		if len(analyzed) > 0 {
			s.log.DebugContext(ctx, "analyzed grown tables", "operation", "analyze_grown_tables", "tables", analyzed)
		}
	}
}
