package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// BatchCreator creates many tasks in one transaction (orchestration).
type BatchCreator interface {
	CreateTasksAndRead(ctx context.Context, reqs []client.TaskRequest, read orchestration.ReadBatchInTx) ([]*orchestration.Created, error)
}

// CreateTasks implements Backend. As with CreateTask, the answer is read in
// the creating transaction; the reads are one statement per kind of row for
// the whole batch.
func (s *Store) CreateTasks(ctx context.Context, reqs []client.TaskRequest) ([]client.Task, []bool, error) {
	if s.batch == nil {
		return nil, nil, errors.New("creating tasks: this backend's task creator cannot create batches")
	}
	var tasks []client.Task
	created, err := s.batch.CreateTasksAndRead(ctx, reqs, func(ctx context.Context, tx pgx.Tx, created []*orchestration.Created) error {
		ids := make([]uuid.UUID, len(created))
		for i, c := range created {
			ids[i] = c.TaskUUID
		}
		var err error
		tasks, err = s.getTasks(ctx, tx, ids)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	existing := make([]bool, len(created))
	for i, c := range created {
		existing[i] = c.Existing
	}
	return tasks, existing, nil
}

// getTasks reads tasks as getTask does, in the order of ids (which may
// repeat one).
func (s *Store) getTasks(ctx context.Context, q db.Querier, ids []uuid.UUID) ([]client.Task, error) {
	rows, err := db.GetTasks(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	ecs, err := s.funcs.GetTaskExecutionContexts(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	outcomes, err := db.TasksStepOutcomes(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	history, err := db.TasksTransitions(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	out := make([]client.Task, len(ids))
	for i, id := range ids {
		row, ok := rows[id]
		if !ok {
			return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		t := taskFromRow(row)
		ec, ok := ecs[id]
		assembleTask(t, ec, ok, outcomes[id])
		addHistory(t, history[id])
		out[i] = *t
	}
	return out, nil
}
