package orchestration

import (
	"context"

	"github.com/taskerhq/tasker/internal/queue"
)

// afterTerminal announces, once the transaction commits, that t reached a
// terminal state, on the channel queue.TaskTerminalChannel: API servers
// answer their waiting clients from it. It is sent outside the committing
// transaction (as step wake-ups are, in the same statement), so finishing
// tasks do not serialize on PostgreSQL's notification lock; a lost one
// delays a waiter only until its own re-check.
func (s *Service) afterTerminal(_ context.Context, t *taskRow, ev *txEvents) {
	ev.wakes = append(ev.wakes, queue.Wake{Channel: queue.TaskTerminalChannel, Payload: t.uuid.String()})
}
