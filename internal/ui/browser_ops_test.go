package ui_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

// listRows lists the task list's rows as task UUID → state, in page order.
func (p *page) listRows() []string {
	p.t.Helper()
	return eval[[]string](p, `[...document.querySelectorAll("table.tasks tbody tr")].map(r => r.dataset.task + ":" + r.dataset.state)`)
}

func tsOf(t *testing.T, s string) int64 {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return at.UnixNano()
}

// confirm accepts the console's confirmation dialog.
func (p *page) confirm() {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.ctx, chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok"))))
}

// opsChecks drives the list filters, pagination and the task actions.
func opsChecks(t *testing.T, s *stack, p *page, failed, waiting uuid.UUID, all int) {
	t.Run("TasksListFilters", func(t *testing.T) {
		p.t = t
		p.open("#/tasks", "table.tasks")
		require.Len(t, p.listRows(), all)
		// Newest first.
		created := eval[[]string](p, `[...document.querySelectorAll("table.tasks tbody tr")].map(r => r.dataset.created)`)
		require.True(t, slices.IsSortedFunc(created, func(a, b string) int { return cmp.Compare(tsOf(t, b), tsOf(t, a)) }), "%v", created)
		p.screenshot("tasks")
		require.NoError(t, chromedp.Do(p.ctx, chromedp.SetValue(chromedp.CSS("#f-state"), "error"),
			chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`))))
		p.poll(`location.hash.includes("state=error") && document.querySelectorAll("table.tasks tbody tr").length === 1`)
		require.Equal(t, []string{failed.String() + ":error"}, p.listRows())
		p.screenshot("tasks-filtered")
	})

	t.Run("Pagination", func(t *testing.T) {
		p.t = t
		p.open("#/tasks?limit=2", "table.tasks")
		first := p.listRows()
		require.Len(t, first, 2)
		seen := map[string]bool{}
		for page := 0; ; page++ {
			rows := p.listRows()
			for _, r := range rows {
				require.False(t, seen[r], "row %s on two pages", r)
				seen[r] = true
			}
			more := eval[bool](p, `document.querySelector("a[data-next]") !== null`)
			if !more {
				break
			}
			require.Less(t, page, all, "pages never end")
			require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("a[data-next]"))))
			p.poll(fmt.Sprintf(`document.querySelector("table.tasks tbody tr") && document.querySelector("table.tasks tbody tr").dataset.task !== %q`, strings.Split(rows[0], ":")[0]))
		}
		require.Len(t, seen, all)
	})

	t.Run("LiveUpdates", func(t *testing.T) {
		p.t = t
		id := s.create(t, unserved+"/mathematical_sequence")
		s.waitFor(t, id, "with a step enqueued", func(task *client.Task) bool { return task.EnqueuedSteps == 1 })
		p.open("#/tasks/"+id.String(), "#timeline svg")
		// The page follows the task's event stream, so a change made
		// elsewhere shows without reloading.
		p.poll(`document.getElementById("main").dataset.live === "events"`)
		_, err := s.api.CancelTask(context.Background(), id, client.CancelRequest{Reason: "from the test"})
		require.NoError(t, err)
		p.poll(`document.querySelector("h1 .badge").dataset.state === "cancelled"`)
		p.poll(`document.getElementById("main").dataset.live === ""`)
	})

	t.Run("Cancel", func(t *testing.T) {
		p.t = t
		p.open("#/tasks/"+waiting.String(), "#cancel-task")
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#cancel-task"))))
		p.confirm()
		p.poll(`document.querySelector("h1 .badge").dataset.state === "cancelled"`)
		task, err := s.backend.GetTask(context.Background(), waiting)
		require.NoError(t, err)
		require.Equal(t, "cancelled", task.State)
	})

	t.Run("RetryAndResolve", func(t *testing.T) {
		p.t = t
		p.open("#/tasks/"+failed.String(), "#retry-task")
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#retry-task"))))
		p.confirm()
		// The step fails three more times and the task ends in error again.
		s.waitFor(t, failed, "retried and failed again", func(task *client.Task) bool {
			steps := s.steps(t, failed)
			return task.State == "error" && steps[0].Attempts == 6
		})
		p.open("#/tasks/"+failed.String(), `tr[data-step="always_fail"] button[data-action="resolve"]`)
		require.Len(t, p.bars(), 6)
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(`tr[data-step="always_fail"] button[data-action="resolve"]`)),
			chromedp.WaitVisible(chromedp.CSS("#resolve-result")),
			chromedp.SetValue(chromedp.CSS("#resolve-result"), `{"resolved_by": "console test"}`)))
		p.confirm()
		task := s.terminal(t, failed)
		deadline := time.Now().Add(30 * time.Second)
		for task.State == "error" && time.Now().Before(deadline) {
			task = s.terminal(t, failed)
			time.Sleep(20 * time.Millisecond)
		}
		require.NotEqual(t, "error", task.State)
		steps := s.steps(t, failed)
		require.Equal(t, "resolved_manually", steps[0].State)
		require.JSONEq(t, `{"resolved_by": "console test"}`, string(steps[0].Result))
		p.open("#/tasks/"+failed.String(), "#timeline svg")
		p.poll(`document.querySelector('#dag .dag-node[data-step="always_fail"]').dataset.state === "resolved_manually"`)
		p.screenshot("task-resolved")
	})
}
