package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/worker"
)

// TestTimedOutHandlerKeepsItsSlot: a handler that ignores its cancelled
// context after the step's timeout keeps its slot until it returns, is
// reported once overdue, and no second attempt of its step runs beside it.
func TestTimedOutHandlerKeepsItsSlot(t *testing.T) {
	t.Parallel()
	// With one slot the retry cannot even be claimed meanwhile; with two it
	// is claimed and waits for the first attempt to return.
	for _, concurrency := range []int{1, 2} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			t.Parallel()
			timedOutHandler(t, concurrency)
		})
	}
}

func timedOutHandler(t *testing.T, concurrency int) {
	b := setup(t)
	ctx := context.Background()
	type run struct {
		attempt    int
		start, end time.Time
	}
	var mu sync.Mutex
	var runs []run
	release := make(chan struct{})
	b.replaceHandler(t, "single.square", handler.Func(func(_ context.Context, s *handler.StepContext) (any, error) {
		r := run{attempt: s.Attempt, start: time.Now()}
		if s.Attempt == 1 {
			<-release // a handler that does not honour its context
		}
		r.end = time.Now()
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
		return "ok", nil
	}))
	tpl := *b.templates["single_workflow/single_step"]
	tpl.Name = "single_stubborn"
	tpl.Steps = append(tpl.Steps[:0:0], tpl.Steps...)
	tpl.Steps[0].Timeout = 200 * time.Millisecond
	tpl.Steps[0].Retry.BackoffBase = 10 * time.Millisecond
	tpl.Steps[0].Retry.BackoffCap = 20 * time.Millisecond
	registerTemplate(t, b, &tpl)

	sink := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelWarn}))
	orch := b.start(t, engineOpts{orchestrate: true})
	w, err := engine.Start(ctx, engine.Config{Pool: b.pool, Telemetry: base.Telemetry{Logger: logger},
		Worker: &worker.Config{Namespaces: []string{"single_workflow"}, Dispatcher: worker.RegistryDispatcher{Registry: b.registry},
			Concurrency: concurrency, PollInterval: 50 * time.Millisecond, OverdueHandlerWarning: 100 * time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Stop()) })

	created, err := orch.Orchestrator.CreateTask(ctx, newRequest(t, "single_workflow/single_stubborn", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	// The first attempt times out and is reported overdue; its retry is
	// claimed (the timeout result was submitted) but does not run.
	require.Eventually(t, func() bool { return w.Worker.OverdueByNamespace()["single_workflow"] == 1 },
		10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, r := range sink.records(t) {
			if r["msg"] == "handler still running after its step timed out; its slot stays taken until it returns" {
				return r["task_uuid"] == created.TaskUUID.String()
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, map[string]int64{"single_workflow": 1}, w.Worker.ActiveByNamespace(), "the step still counts as running")
	mu.Lock()
	require.Empty(t, runs, "no attempt finished and no second attempt ran beside the first")
	mu.Unlock()

	close(release)
	task := waitTerminal(t, orch.Backend(), created.TaskUUID, 30*time.Second)
	require.Equal(t, "complete", task.State)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, 2)
	require.Equal(t, 1, runs[0].attempt)
	require.Equal(t, 2, runs[1].attempt)
	require.False(t, runs[1].start.Before(runs[0].end), "the retry started only after the first attempt returned")
	require.Zero(t, w.Worker.OverdueByNamespace()["single_workflow"])
}

// TestShutdownDoesNotWaitForeverForAnOverdueHandler: a handler that never
// returns holds its slot, but not the worker's shutdown past its grace.
func TestShutdownDoesNotWaitForeverForAnOverdueHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	b.replaceHandler(t, "single.square", handler.Func(func(context.Context, *handler.StepContext) (any, error) {
		<-never
		return "ok", nil
	}))
	tpl := *b.templates["single_workflow/single_step"]
	tpl.Name = "single_never"
	tpl.Steps = append(tpl.Steps[:0:0], tpl.Steps...)
	tpl.Steps[0].Timeout = 100 * time.Millisecond
	registerTemplate(t, b, &tpl)
	orch := b.start(t, engineOpts{orchestrate: true})
	w, err := engine.Start(ctx, engine.Config{Pool: b.pool,
		Worker: &worker.Config{Namespaces: []string{"single_workflow"}, Dispatcher: worker.RegistryDispatcher{Registry: b.registry},
			PollInterval: 50 * time.Millisecond, ShutdownGrace: 200 * time.Millisecond}})
	require.NoError(t, err)
	_, err = orch.Orchestrator.CreateTask(ctx, newRequest(t, "single_workflow/single_never", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.Worker.OverdueByNamespace()["single_workflow"] > 0 },
		10*time.Second, 10*time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop() }()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop while a handler never returned")
	}
}
