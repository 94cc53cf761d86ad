package orchestration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Service is one orchestrator.
type Service struct {
	cfg    Config
	pool   *pgxpool.Pool
	funcs  *db.Funcs
	queues *queue.Client
	log    *slog.Logger
	tr     *tracing.Tracer
	m      *metrics.Metrics

	wakeReadiness chan struct{}
	tplMu         sync.Mutex
	tplCache      map[string]cachedTemplate
	timersMu      sync.Mutex
	timers        map[*time.Timer]struct{}
	// runAtWake is when the timer wakeAtNextRunAt set fires (guarded by timersMu).
	runAtWake time.Time
	presence  presence
}

// New returns an orchestrator over pool.
func New(pool *pgxpool.Pool, cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Service{
		cfg:           cfg,
		pool:          pool,
		funcs:         db.NewFuncs(cfg.Observer),
		queues:        queue.NewClient(cfg.Observer),
		log:           cfg.Logger.With("component", "orchestration"),
		tr:            cfg.Tracer,
		m:             cfg.Metrics,
		wakeReadiness: make(chan struct{}, 1),
		tplCache:      map[string]cachedTemplate{},
		timers:        map[*time.Timer]struct{}{},
	}, nil
}

// ProcessorUUID identifies this orchestrator in transition history.
func (s *Service) ProcessorUUID() uuid.UUID { return s.cfg.ProcessorUUID }

// Setup creates the orchestration queues. Run calls it; it is exported for
// processes that only create tasks.
func (s *Service) Setup(ctx context.Context) error {
	for _, q := range []string{queue.TaskRequests, queue.StepResults} {
		if err := s.queues.Create(ctx, s.pool, q); err != nil {
			return err
		}
	}
	return nil
}

// Run consumes the orchestration queues and runs the pollers until ctx is
// done. listener must not be running yet: Run subscribes to it and the caller
// starts it (one listener is shared by every consumer in a process).
func (s *Service) Subscribe(listener *queue.Listener) (*Consumers, error) {
	results, err := listener.Subscribe(queue.StepResults, 1024)
	if err != nil {
		return nil, err
	}
	requests, err := listener.Subscribe(queue.TaskRequests, 256)
	if err != nil {
		return nil, err
	}
	return &Consumers{results: results, requests: requests}, nil
}

// Consumers are the orchestration queue subscriptions of one Service.
type Consumers struct {
	results, requests *queue.Subscription
}

type work struct {
	queue string
	id    int64
}

// Run processes messages and runs the readiness and fallback pollers until
// ctx is done; it returns once every goroutine it started has stopped.
func (s *Service) Run(ctx context.Context, c *Consumers) error {
	if err := s.Setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing to report
		}
		return err
	}
	jobs := make(chan work, 1024)
	results := make(chan int64, 4096)
	var wg sync.WaitGroup
	for range s.cfg.ResultWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-results:
					s.processResults(ctx, gather(id, results, s.cfg.ResultBatch))
				case w := <-jobs:
					s.processMessage(ctx, w)
				}
			}
		})
	}
	wg.Go(func() { s.forwardResults(ctx, c.results, results) })
	wg.Go(func() { s.forward(ctx, c.requests, jobs) })
	wg.Go(func() { s.fallbackLoop(ctx, c, results, jobs) })
	wg.Go(func() { s.presenceLoop(ctx) })
	wg.Go(func() { s.readinessLoop(ctx) })
	wg.Go(func() { s.pruneLoop(ctx) })
	wg.Go(func() { s.scheduleLoop(ctx) })
	wg.Go(func() { s.statsLoop(ctx) })
	<-ctx.Done()
	wg.Wait()
	s.stopTimers()
	return nil
}

// gather is group commit for result messages: it takes first and whatever
// else is waiting, up to limit, without waiting for more. An idle
// orchestrator processes a result at once; a busy one processes the results
// that arrived during its previous batch together.
func gather(first int64, ch <-chan int64, limit int) []int64 {
	batch := []int64{first}
	for len(batch) < limit {
		select {
		case id := <-ch:
			batch = append(batch, id)
		default:
			return batch
		}
	}
	return batch
}

func (s *Service) forward(ctx context.Context, sub *queue.Subscription, jobs chan<- work) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-sub.C:
			select {
			case jobs <- work{queue: sub.Queue, id: n.ID}:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (s *Service) forwardResults(ctx context.Context, sub *queue.Subscription, results chan<- int64) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-sub.C:
			select {
			case results <- n.ID:
			case <-ctx.Done():
				return
			}
		}
	}
}

// processResults processes a batch of result messages. When the batch
// fails, each message is tried on its own, so one message that cannot be
// processed delays only itself.
func (s *Service) processResults(ctx context.Context, ids []int64) {
	err := s.ProcessResultMessages(ctx, ids)
	if err == nil || ctx.Err() != nil {
		return
	}
	if len(ids) == 1 {
		s.messageFailed(ctx, queue.StepResults, ids[0], err)
		return
	}
	s.log.DebugContext(ctx, "result batch failed; processing its messages one by one", "messages", len(ids), "error", err)
	for _, id := range ids {
		if err := s.ProcessResultMessage(ctx, id); err != nil && ctx.Err() == nil {
			s.messageFailed(ctx, queue.StepResults, id, err)
		}
	}
}

func (s *Service) processMessage(ctx context.Context, w work) {
	var err error
	switch w.queue {
	case queue.StepResults:
		err = s.ProcessResultMessage(ctx, w.id)
	case queue.TaskRequests:
		err = s.ProcessTaskRequestMessage(ctx, w.id)
	}
	if err != nil && ctx.Err() == nil {
		s.messageFailed(ctx, w.queue, w.id, err)
	}
}

// messageFailed counts and logs a message that could not be processed and
// hides it for a while, so a poison message cannot spin a core.
func (s *Service) messageFailed(ctx context.Context, q string, id int64, err error) {
	s.m.MessageFailed(ctx, q)
	s.log.WarnContext(ctx, "processing message failed; it will be retried", "queue", q, "msg_id", id, "error", err)
	if _, verr := s.queues.SetVT(context.WithoutCancel(ctx), s.pool, q, id, s.cfg.FailedMessageDelay); verr != nil {
		s.log.WarnContext(ctx, "delaying failed message", "queue", q, "msg_id", id, "error", verr)
	}
}

// taskRow is the locked row of the task being worked on.
type taskRow struct {
	uuid          uuid.UUID
	state         state.Task
	correlationID uuid.UUID
	namespace     string
	name          string
	// traceContext is the creating request's trace context (tasks.trace_context).
	traceContext []byte
}

func (s *Service) lockTask(ctx context.Context, tx pgx.Tx, id uuid.UUID, skipLocked bool) (*taskRow, error) {
	t, err := s.funcs.LockTask(ctx, tx, db.LockTaskParams{TaskUUID: id, SkipLocked: skipLocked})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &taskRow{uuid: t.UUID, state: t.State, correlationID: t.CorrelationID, namespace: t.Namespace,
		name: t.Name, traceContext: t.TraceContext}, nil
}

// moveTask walks the task through each state in path by compare-and-swap:
// one statement for the whole path, one history row per hop.
func (s *Service) moveTask(ctx context.Context, q db.Querier, t *taskRow, reason string, path ...state.Task) error {
	hops := taskHops(t.uuid, t.state, reason, path)
	if len(hops) == 0 {
		return nil
	}
	if err := checkHops(hops); err != nil {
		return fmt.Errorf("task %s: %w", t.uuid, err)
	}
	from, to := t.state, hops[len(hops)-1].To
	var ok bool
	var err error
	if len(hops) == 1 {
		ok, err = s.funcs.TransitionTaskStateAtomic(ctx, q, t.uuid, string(from), string(to), s.cfg.ProcessorUUID,
			map[string]any{"reason": hops[0].Reason})
	} else {
		states, reasons := make([]string, len(hops)), make([]string, len(hops))
		for i, h := range hops {
			states[i], reasons[i] = string(h.To), h.Reason
		}
		ok, err = s.funcs.TransitionTaskStatePath(ctx, q, t.uuid, string(from), states, reasons, s.cfg.ProcessorUUID)
	}
	if err != nil {
		return fmt.Errorf("task %s: %w", t.uuid, err)
	}
	if !ok {
		return fmt.Errorf("task %s: state changed concurrently (expected %s)", t.uuid, from)
	}
	s.log.DebugContext(ctx, "task transition", "correlation_id", t.correlationID, "task_uuid", t.uuid,
		"namespace", t.namespace, "operation", "task_transition", "from_state", from, "to_state", to)
	t.state = to
	return nil
}

// stopTimers cancels pending retry wake-ups.
func (s *Service) stopTimers() {
	s.timersMu.Lock()
	defer s.timersMu.Unlock()
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
}

// wakeAt makes the readiness poller run at t (a retry's backoff end).
func (s *Service) wakeAt(d time.Duration) {
	s.timersMu.Lock()
	defer s.timersMu.Unlock()
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		s.timersMu.Lock()
		delete(s.timers, tm)
		s.timersMu.Unlock()
		s.nudgeReadiness()
	})
	s.timers[tm] = struct{}{}
}

func (s *Service) nudgeReadiness() {
	select {
	case s.wakeReadiness <- struct{}{}:
	default:
	}
}

func (s *Service) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Funcs exposes the SQL function wrappers (the API's reads, tests, benchmarks).
func (s *Service) Funcs() *db.Funcs { return s.funcs }
