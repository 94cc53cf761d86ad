package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
)

// SQLCase is one hot-path SQL function call the sql and explain benchmarks
// make. Adding a function to both is adding an entry to SQLCases.
type SQLCase struct {
	// Name is what the reports call it (the function, plus a variant in brackets).
	Name string
	// Function is the SQL function.
	Function string
	// PerTask marks a call about one task, step or message: its cost must
	// not grow with the tables.
	PerTask bool
	// Writes marks a call that changes data: each sample runs in a
	// transaction that is rolled back, so every sample sees the same dataset.
	Writes bool
	// Vacuum names a table the sql benchmark vacuums between batches of
	// samples (untimed): a call that always touches the same rows (the head
	// of a queue) would otherwise pile up the dead versions its own
	// rolled-back samples leave, which a live system's committed calls do not.
	Vacuum string
	// Candidates counts what the dataset offers to call it on; 0 skips it.
	Candidates func(s *Samples) int
	// Call makes one call with arguments drawn by r, through the wrapper
	// the engine uses.
	Call func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error
}

// Samples are the dataset's rows the cases draw their arguments from.
type Samples struct {
	Tasks        []uuid.UUID
	TasksByShape map[string][]uuid.UUID
	// Running are steps_in_process tasks.
	Running []uuid.UUID
	// PendingTasks are pending tasks with their root steps and worker queue.
	PendingTasks []PendingTask
	// Enqueued are visible worker messages of enqueued steps.
	Enqueued []QueuedStep
	// InProgress are claimed steps with their attempt and message.
	InProgress []QueuedStep
	// Awaiting are steps whose result waits for orchestration.
	Awaiting []uuid.UUID
	// Dependent are steps with at least one parent.
	Dependent []uuid.UUID
	// Queues are the worker queues.
	Queues []string
}

// PendingTask is a task no orchestrator has picked up yet.
type PendingTask struct {
	Task  uuid.UUID
	Roots []uuid.UUID
	Queue string
}

// QueuedStep is a step with its worker message.
type QueuedStep struct {
	Step    uuid.UUID
	Attempt int
	Queue   string
	MsgID   int64
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// benchWorker names the worker the benchmarks claim and submit as.
const benchWorker = "tasker-bench"

// SQLCases are the benchmarked calls. Each draws a fresh random argument
// per sample, so a per-task call touches rows all over the tables.
var SQLCases = []SQLCase{
	{
		Name: "get_next_ready_tasks", Function: "get_next_ready_tasks",
		Candidates: func(*Samples) int { return 1 },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, _ *Samples, _ *rand.Rand) error {
			// 50: the readiness poller's batch.
			_, err := f.GetNextReadyTasks(ctx, q, 50)
			return err
		},
	},
	readinessCase(ShapeLinear), readinessCase(ShapeDiamond), readinessCase(ShapeTree), readinessCase(ShapeMixedDAG),
	{
		Name: "get_task_execution_context", Function: "get_task_execution_context", PerTask: true,
		Candidates: func(s *Samples) int { return len(s.Tasks) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, _, err := f.GetTaskExecutionContext(ctx, q, pick(r, s.Tasks))
			return err
		},
	},
	{
		Name: "can_finalize_task", Function: "can_finalize_task", PerTask: true,
		Candidates: func(s *Samples) int { return len(s.Tasks) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, err := f.CanFinalizeTask(ctx, q, pick(r, s.Tasks))
			return err
		},
	},
	{
		Name: "claim_task_for_finalization", Function: "claim_task_for_finalization", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.Tasks) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, err := f.ClaimTaskForFinalization(ctx, q, pick(r, s.Tasks), benchProcessor)
			return err
		},
	},
	{
		Name: "transition_task_state_atomic", Function: "transition_task_state_atomic", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.Running) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			return mustMove(f.TransitionTaskStateAtomic(ctx, q, pick(r, s.Running), "steps_in_process", "evaluating_results",
				benchProcessor, map[string]any{"reason": "step_result_received"}))
		},
	},
	{
		Name: "transition_task_state_path", Function: "transition_task_state_path", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.Running) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			return mustMove(f.TransitionTaskStatePath(ctx, q, pick(r, s.Running), "steps_in_process",
				[]string{"evaluating_results", "enqueuing_steps", "steps_in_process"},
				[]string{"step_result_received", "ready_steps_found", "steps_enqueued"}, benchProcessor))
		},
	},
	{
		Name: "transition_step_state_atomic", Function: "transition_step_state_atomic", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.Awaiting) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			return mustMove(f.TransitionStepStateAtomic(ctx, q, pick(r, s.Awaiting), "enqueued_for_orchestration", "complete",
				map[string]any{"reason": "result_success"}, 0))
		},
	},
	{
		Name: "get_step_transitive_dependencies", Function: "get_step_transitive_dependencies", PerTask: true,
		Candidates: func(s *Samples) int { return len(s.Dependent) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, err := f.GetStepTransitiveDependencies(ctx, q, pick(r, s.Dependent))
			return err
		},
	},
	{
		Name: "enqueue_steps", Function: "enqueue_steps", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.PendingTasks) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			p := pick(r, s.PendingTasks)
			out, err := f.EnqueueStepsQuiet(ctx, q, p.Task, p.Roots, p.Queue, nil)
			if err == nil && len(out) != len(p.Roots) {
				err = fmt.Errorf("enqueue_steps enqueued %d of %d root steps", len(out), len(p.Roots))
			}
			return err
		},
	},
	{
		Name: "claim_step", Function: "claim_step", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.Enqueued) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			m := pick(r, s.Enqueued)
			out, err := f.ClaimStep(ctx, q, m.Queue, m.MsgID, 30*time.Second, benchWorker)
			if err == nil && (len(out) != 1 || out[0].Outcome != db.ClaimClaimed) {
				err = fmt.Errorf("claim_step of message %d: %+v, want one claim", m.MsgID, out)
			}
			return err
		},
	},
	{
		// The workers' fallback poll: it reads the oldest visible messages,
		// so its cost may follow the depth of the queue.
		Name: "claim_steps[10]", Function: "claim_steps", Writes: true, Vacuum: "queue_messages",
		Candidates: func(s *Samples) int { return len(s.Queues) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, err := f.ClaimSteps(ctx, q, pick(r, s.Queues), 10, 30*time.Second, benchWorker, 0)
			return err
		},
	},
	{
		Name: "extend_step_leases", Function: "extend_step_leases", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.InProgress) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			m := pick(r, s.InProgress)
			n, err := f.ExtendStepLeases(ctx, q, []db.LeaseRef{{StepUUID: m.Step, Attempt: m.Attempt, MsgID: m.MsgID}}, 30*time.Second)
			if err == nil && n != 1 {
				err = fmt.Errorf("extend_step_leases extended %d leases, want 1", n)
			}
			return err
		},
	},
	{
		Name: "submit_step_result", Function: "submit_step_result", PerTask: true, Writes: true,
		Candidates: func(s *Samples) int { return len(s.InProgress) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			m := pick(r, s.InProgress)
			_, ok, err := f.SubmitStepResult(ctx, q, db.StepResultSubmission{StepUUID: m.Step, Attempt: m.Attempt, Success: true,
				Results: benchResult, WorkerID: benchWorker, Queue: m.Queue, MsgID: m.MsgID, ResultQueue: queue.StepResults,
				DeferNotify: true})
			if err == nil && !ok {
				err = fmt.Errorf("submit_step_result for step %s attempt %d was refused", m.Step, m.Attempt)
			}
			return err
		},
	},
}

var benchProcessor = uuid.NewSHA1(uuid.NameSpaceOID, []byte("tasker-bench-processor"))

var benchResult = json.RawMessage(`{"success": true, "status": "completed", "result": {"value": 1}, "metadata": {"execution_time_ms": 0.5}}`)

func readinessCase(shape string) SQLCase {
	return SQLCase{
		Name: "get_step_readiness_status[" + shape + "]", Function: "get_step_readiness_status", PerTask: true,
		Candidates: func(s *Samples) int { return len(s.TasksByShape[shape]) },
		Call: func(ctx context.Context, q db.Querier, f *db.Funcs, s *Samples, r *rand.Rand) error {
			_, err := f.GetStepReadinessStatus(ctx, q, pick(r, s.TasksByShape[shape]), nil)
			return err
		},
	}
}

// mustMove turns a refused compare-and-swap into an error: the benchmark
// draws only rows in the from state, so a refusal means it measured the
// wrong thing.
func mustMove(ok bool, err error) error {
	if err == nil && !ok {
		return fmt.Errorf("the row was not in the expected state")
	}
	return err
}

// LoadSamples reads the rows the cases draw from.
func LoadSamples(ctx context.Context, q db.Querier) (*Samples, error) {
	s := &Samples{TasksByShape: map[string][]uuid.UUID{}}
	wrap := func(what string, err error) error { return fmt.Errorf("reading %s to benchmark: %w", what, err) }
	rows, err := q.Query(ctx, `SELECT t.task_uuid, t.state, nt.name FROM tasker.tasks t
		JOIN tasker.named_tasks nt USING (named_task_uuid) ORDER BY t.task_uuid`)
	if err != nil {
		return nil, wrap("tasks", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var st, name string
		if err := rows.Scan(&id, &st, &name); err != nil {
			rows.Close()
			return nil, wrap("tasks", err)
		}
		s.Tasks = append(s.Tasks, id)
		if shape := ShapeOfTemplate(name); shape != "" {
			s.TasksByShape[shape] = append(s.TasksByShape[shape], id)
		}
		if st == "steps_in_process" {
			s.Running = append(s.Running, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("tasks", err)
	}
	rows, err = q.Query(ctx, `SELECT t.task_uuid, array_agg(s.workflow_step_uuid ORDER BY s.workflow_step_uuid), 'worker_' || ns.name || '_queue'
		FROM tasker.tasks t
		JOIN tasker.named_tasks nt USING (named_task_uuid)
		JOIN tasker.task_namespaces ns USING (task_namespace_uuid)
		JOIN tasker.workflow_steps s ON s.task_uuid = t.task_uuid
		WHERE t.state = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = s.workflow_step_uuid)
		GROUP BY t.task_uuid, ns.name ORDER BY t.task_uuid`)
	if err != nil {
		return nil, wrap("pending tasks", err)
	}
	s.PendingTasks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PendingTask, error) {
		var p PendingTask
		err := r.Scan(&p.Task, &p.Roots, &p.Queue)
		return p, err
	})
	if err != nil {
		return nil, wrap("pending tasks", err)
	}
	queued := func(st string) ([]QueuedStep, error) {
		rows, err := q.Query(ctx, `SELECT s.workflow_step_uuid, s.attempts, m.queue_name, m.msg_id
			FROM tasker.queue_messages m JOIN tasker.workflow_steps s ON s.workflow_step_uuid = (m.message ->> 'step_uuid')::uuid
			WHERE s.state = $1 AND m.queue_name LIKE 'worker\_%' ORDER BY m.msg_id`, st)
		if err != nil {
			return nil, wrap(st+" steps", err)
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueuedStep, error) {
			var m QueuedStep
			var attempt int32
			err := r.Scan(&m.Step, &attempt, &m.Queue, &m.MsgID)
			m.Attempt = int(attempt)
			return m, err
		})
	}
	if s.Enqueued, err = queued("enqueued"); err != nil {
		return nil, err
	}
	if s.InProgress, err = queued("in_progress"); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		what string
		sql  string
		into *[]uuid.UUID
	}{
		{"awaiting steps", `SELECT workflow_step_uuid FROM tasker.workflow_steps WHERE state = 'enqueued_for_orchestration' ORDER BY 1`, &s.Awaiting},
		{"dependent steps", `SELECT DISTINCT to_step_uuid FROM tasker.workflow_step_edges ORDER BY 1`, &s.Dependent},
	} {
		rows, err := q.Query(ctx, x.sql)
		if err != nil {
			return nil, wrap(x.what, err)
		}
		if *x.into, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return nil, wrap(x.what, err)
		}
	}
	rows, err = q.Query(ctx, `SELECT queue_name FROM tasker.queues WHERE queue_name LIKE 'worker\_bench\_gen\_%' ORDER BY 1`)
	if err != nil {
		return nil, wrap("queues", err)
	}
	if s.Queues, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, wrap("queues", err)
	}
	return s, nil
}
