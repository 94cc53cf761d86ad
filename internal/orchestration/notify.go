package orchestration

import (
	"context"

	"github.com/taskerhq/tasker/internal/queue"
)

// afterTerminal announces, once the transaction commits, that t reached a
// terminal state, on the channel queue.TaskTerminalChannel: API servers
// answer their waiting clients from it. It is sent outside the committing
// transaction (as step wake-ups are), so finishing tasks do not serialize on
// PostgreSQL's notification lock; a lost one delays a waiter only until its
// own re-check.
func (s *Service) afterTerminal(ctx context.Context, t *taskRow, ev *txEvents) {
	id := t.uuid
	ev.wake = append(ev.wake, func() {
		if _, err := s.pool.Exec(context.WithoutCancel(ctx), "SELECT pg_notify($1, $2)", queue.TaskTerminalChannel, id.String()); err != nil {
			s.log.WarnContext(ctx, "announcing a finished task failed; waiters find it by polling", "task_uuid", id, "error", err)
		}
	})
}
