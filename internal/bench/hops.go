package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
)

// Hop is the distribution of one leg of a task's way from created to
// complete, from the timestamps PostgreSQL recorded in the transition
// history (clock_timestamp() inside each transaction, so a leg that crosses
// transactions includes the earlier one's commit and the notification).
type Hop struct {
	Name    string  `json:"name"`
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Mean    float64 `json:"mean_ms"`
}

// Hop names, in the order a step goes through them.
const (
	// HopCreateToEnqueue: tasks.created_at (start of the create transaction)
	// → a root step's "enqueued" transition, inside the same transaction.
	HopCreateToEnqueue = "create → root step enqueued"
	// HopEnqueueToClaim: "enqueued" → "in_progress": commit of the enqueuing
	// transaction, NOTIFY to the worker's listener, the worker's claim.
	HopEnqueueToClaim = "enqueued → claimed"
	// HopClaimToSubmit: "in_progress" → "enqueued_for_orchestration": commit
	// of the claim, the handler, encoding and submitting the result.
	HopClaimToSubmit = "claimed → result submitted"
	// HopSubmitToComplete: "enqueued_for_orchestration" → "complete": commit
	// of the submission, NOTIFY to the orchestrator, reading the result
	// message and locking the task.
	HopSubmitToComplete = "result submitted → step complete"
	// HopCompleteToNext: the last parent's "complete" → the child's
	// "enqueued" (readiness evaluation, in the same transaction).
	HopCompleteToNext = "parents complete → next enqueued"
	// HopLastToFinal: the last step's "complete" → tasks.completed_at
	// (finalization, in the same transaction).
	HopLastToFinal = "last step complete → task complete"
	// HopOutsideDB: client latency − DB-recorded latency: template lookup
	// and BEGIN before the create transaction's timestamp, the finalizing
	// transaction's COMMIT, and observing it.
	HopOutsideDB = "client − db recorded"
)

func hopOf(name string, h *hist) Hop {
	return Hop{Name: name, Samples: h.count(), P50: h.pct(50), P95: h.pct(95), P99: h.pct(99), Mean: h.mean()}
}

type stepTimes struct {
	task                                   uuid.UUID
	enqueued, claimed, submitted, complete time.Time
	parents                                []uuid.UUID
}

// Hops computes the per-hop distributions over tasks from their transition
// history. Steps that were retried count only their last attempt.
func Hops(ctx context.Context, q db.Querier, tasks []uuid.UUID) ([]Hop, error) {
	type taskTimes struct{ created, completed time.Time }
	tt := make(map[uuid.UUID]*taskTimes, len(tasks))
	rows, err := q.Query(ctx, `SELECT task_uuid, created_at, completed_at FROM tasker.tasks
		WHERE task_uuid = ANY($1) AND completed_at IS NOT NULL`, tasks)
	if err != nil {
		return nil, fmt.Errorf("reading tasks: %w", err)
	}
	var id uuid.UUID
	var created, completed time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &created, &completed}, func() error {
		tt[id] = &taskTimes{created, completed}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading tasks: %w", err)
	}

	steps := map[uuid.UUID]*stepTimes{}
	rows, err = q.Query(ctx, `SELECT workflow_step_uuid, task_uuid, to_state, created_at
		FROM tasker.workflow_step_transitions WHERE task_uuid = ANY($1)
		ORDER BY workflow_step_transition_id`, tasks)
	if err != nil {
		return nil, fmt.Errorf("reading step transitions: %w", err)
	}
	var step, task uuid.UUID
	var to string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&step, &task, &to, &at}, func() error {
		s := steps[step]
		if s == nil {
			s = &stepTimes{task: task}
			steps[step] = s
		}
		switch state.Step(to) {
		case state.StepEnqueued:
			s.enqueued = at
		case state.StepInProgress:
			s.claimed = at
		case state.StepEnqueuedForOrchestration:
			s.submitted = at
		case state.StepComplete:
			s.complete = at
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading step transitions: %w", err)
	}

	rows, err = q.Query(ctx, `SELECT e.from_step_uuid, e.to_step_uuid
		FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps s ON s.workflow_step_uuid = e.to_step_uuid
		WHERE s.task_uuid = ANY($1)`, tasks)
	if err != nil {
		return nil, fmt.Errorf("reading step edges: %w", err)
	}
	var from, toStep uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&from, &toStep}, func() error {
		if s := steps[toStep]; s != nil {
			s.parents = append(s.parents, from)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading step edges: %w", err)
	}

	create, claim, run, apply, next, final := newHist(), newHist(), newHist(), newHist(), newHist(), newHist()
	lastComplete := map[uuid.UUID]time.Time{}
	for _, s := range steps {
		t := tt[s.task]
		if t == nil || s.enqueued.IsZero() || s.claimed.IsZero() || s.submitted.IsZero() || s.complete.IsZero() {
			continue
		}
		claim.record(s.claimed.Sub(s.enqueued))
		run.record(s.submitted.Sub(s.claimed))
		apply.record(s.complete.Sub(s.submitted))
		if s.complete.After(lastComplete[s.task]) {
			lastComplete[s.task] = s.complete
		}
		if len(s.parents) == 0 {
			create.record(s.enqueued.Sub(t.created))
			continue
		}
		var ready time.Time
		for _, p := range s.parents {
			if ps := steps[p]; ps != nil && ps.complete.After(ready) {
				ready = ps.complete
			}
		}
		if !ready.IsZero() {
			next.record(s.enqueued.Sub(ready))
		}
	}
	for task, last := range lastComplete {
		final.record(tt[task].completed.Sub(last))
	}
	return []Hop{
		hopOf(HopCreateToEnqueue, create),
		hopOf(HopEnqueueToClaim, claim),
		hopOf(HopClaimToSubmit, run),
		hopOf(HopSubmitToComplete, apply),
		hopOf(HopCompleteToNext, next),
		hopOf(HopLastToFinal, final),
	}, nil
}
