package metrics

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/taskerhq/tasker/internal/db"
)

// Label values known without asking the database: they are the fixed
// outcomes the code records.
var (
	// stepResults are the result label values of tasker_step_results_processed_total.
	stepResults = []string{"success", "retry", "failure", "duplicate"}
	// finalStates are the final_state values of task finalization.
	finalStates = []string{"complete", "error"}
	// claimMethods are the worker's claim_method values.
	claimMethods = []string{"event", "poll"}
	// stepErrorTypes are the two classes every failed attempt falls into
	// unless something more specific is known (handler.ErrorTypeRetryable,
	// ErrorTypePermanent). Declaring every known type for every step would
	// multiply the zero series by six for no gain: failure rates are summed
	// over error_type, and one zero series per step is enough for them to
	// read 0. The rarer types (handler_timeout, handler_panic, …) and a
	// handler's own appear when first recorded.
	stepErrorTypes = []string{"retryable_error", "permanent_error"}
	// sqlErrorTypes are sqlErrorType's values other than a SQLSTATE class,
	// which cannot be listed usefully in advance.
	sqlErrorTypes = []string{"timeout", "canceled", "other"}
	// sqlFunctions lists every SQL function internal/db and internal/queue
	// call (a test keeps it complete).
	sqlFunctions = []string{
		"can_finalize_task", "claim_step", "claim_step_messages", "claim_steps", "claim_task_for_finalization", "enqueue_ready_steps", "enqueue_steps",
		"extend_step_leases", "get_next_ready_tasks", "get_step_readiness_status", "get_step_transitive_dependencies",
		"get_task_execution_context", "lock_result_targets", "pg_notify", "queue_archive", "queue_create", "queue_delete", "queue_metrics",
		"queue_read", "queue_read_message", "queue_send", "queue_send_batch", "queue_set_vt", "step_readiness",
		"submit_step_result", "submit_step_results", "take_messages",
		"transition_step_state_atomic", "transition_step_states", "transition_task_paths", "transition_task_state_atomic",
		"transition_task_state_path",
		// Operator actions, schedules and retention.
		"advance_schedule", "cancel_task_steps", "delete_schedule", "insert_schedule", "list_schedules", "lock_due_schedule",
		"analyze_grown_tables", "lock_message", "lock_step", "lock_task", "next_run_at", "pending_messages", "prune_queue_archive", "prune_tasks", "reset_failed_steps", "resolve_step", "unfinished_child_tasks",
	}
)

// SQLFunctions returns the SQL functions whose series DeclareKnown declares.
func SQLFunctions() []string { return append([]string(nil), sqlFunctions...) }

// Catalog is what a process knows at start about the label values it will
// record: read from the database by DeclareKnown.
type Catalog struct {
	Queues     []string
	Namespaces []string
	// Templates are namespace/name pairs.
	Templates [][2]string
	// Steps are namespace/step name pairs.
	Steps [][2]string
}

// ReadCatalog reads the queues, namespaces, templates and their steps.
func ReadCatalog(ctx context.Context, pool *pgxpool.Pool) (Catalog, error) {
	var c Catalog
	var err error
	if c.Queues, err = db.QueueNames(ctx, pool); err != nil {
		return c, err
	}
	if c.Namespaces, err = db.Namespaces(ctx, pool); err != nil {
		return c, err
	}
	if c.Templates, err = db.TemplateNames(ctx, pool); err != nil {
		return c, err
	}
	c.Steps, err = db.TemplateStepNames(ctx, pool)
	return c, err
}

// DeclareKnown reads the catalog and declares it (Declare).
func (m *Metrics) DeclareKnown(ctx context.Context, pool *pgxpool.Pool) error {
	if m == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, collectTimeout)
	defer cancel()
	c, err := ReadCatalog(ctx, pool)
	if err != nil {
		return fmt.Errorf("declaring metric series: %w", err)
	}
	m.Declare(ctx, c)
	return nil
}

// Declare exports every counter at 0 for each label set c and the fixed
// outcomes make known, and (with WithPrometheus) every histogram with zero
// counts, following the Prometheus advice on missing series: a dashboard
// then shows 0 instead of "No data", and a rate() over a counter that has
// not fired yet is 0 rather than absent. Label sets that appear later (a
// template registered after start, a handler's own error type) show up when
// first recorded. Declaring twice is harmless.
func (m *Metrics) Declare(ctx context.Context, c Catalog) {
	if m == nil {
		return
	}
	zero := func(o *optSet, hs ...*hist) {
		m.zeroMu.Lock()
		defer m.zeroMu.Unlock()
		if m.zeroSet == nil {
			m.zeroSet = map[zeroSeries]bool{}
		}
		for _, h := range hs {
			if zs := (zeroSeries{h: h, o: o}); !m.zeroSet[zs] {
				m.zeroSet[zs] = true
				m.zeros = append(m.zeros, zs)
			}
		}
	}
	for _, t := range c.Templates {
		o := m.opt("namespace", t[0], "template", t[1], "", "\x00req")
		m.tasksRequests.Add(ctx, 0, o.add...)
		m.tasksCompletions.Add(ctx, 0, o.add...)
		m.tasksFailures.Add(ctx, 0, o.add...)
		zero(o, m.taskInit)
		for _, op := range taskOperations {
			m.taskOperations.Add(ctx, 0, m.opt("namespace", t[0], "template", t[1], "operation", op).add...)
		}
	}
	for _, table := range prunedTables {
		m.pruned.Add(ctx, 0, m.opt("table", table, "", "", "", "\x00prune").add...)
	}
	for _, ns := range c.Namespaces {
		for _, fs := range finalStates {
			zero(m.opt("namespace", ns, "final_state", fs, "", "\x00fin"), m.taskFinal)
		}
		for _, r := range stepResults {
			m.resultsProcessed.Add(ctx, 0, m.opt("namespace", ns, "result", r, "", "\x00res").add...)
		}
		o := m.opt("namespace", ns, "", "", "", "\x00ns")
		m.resultsSubmitted.Add(ctx, 0, o.add...)
		zero(o, m.resultProcessing, m.stepTransition, m.resultSubmission)
		for _, cm := range claimMethods {
			co := m.opt("namespace", ns, "claim_method", cm, "", "\x00claim")
			m.stepsClaimed.Add(ctx, 0, co.add...)
			zero(co, m.stepClaim)
		}
	}
	for _, st := range c.Steps {
		o := m.opt("namespace", st[0], "step_name", st[1], "", "\x00step")
		m.stepsEnqueued.Add(ctx, 0, o.add...)
		m.stepsExecutions.Add(ctx, 0, o.add...)
		m.stepsSuccesses.Add(ctx, 0, o.add...)
		zero(o, m.stepExecution)
		for _, et := range stepErrorTypes {
			m.stepsFailures.Add(ctx, 0, m.opt("namespace", st[0], "step_name", st[1], "error_type", et).add...)
		}
	}
	for _, fn := range sqlFunctions {
		zero(m.opt("function", fn, "", "", "", "\x00fn"), m.sqlDuration)
		for _, et := range sqlErrorTypes {
			m.sqlErrors.Add(ctx, 0, m.opt("function", fn, "error_type", et, "", "\x00err").add...)
		}
	}
	for _, q := range c.Queues {
		o := m.opt("queue", q, "", "", "", "\x00q")
		m.msgSent.Add(ctx, 0, o.add...)
		m.msgRead.Add(ctx, 0, o.add...)
		m.msgArchived.Add(ctx, 0, o.add...)
		m.msgFailed.Add(ctx, 0, o.add...)
		m.fallbackPoll.Add(ctx, 0, o.add...)
		zero(o, m.sendDuration, m.readDuration, m.queueWait)
	}
}

// zeroSeries is one declared histogram label set.
type zeroSeries struct {
	h *hist
	o *optSet
}

// zeroProducer adds, at each Prometheus collection, an empty histogram point
// for every declared series not yet recorded. The SDK's own points are
// collected first; a series is marked seen before its first Record, so the
// two never show the same series twice.
type zeroProducer struct {
	start time.Time
	m     atomic.Pointer[Metrics]
}

func (z *zeroProducer) attach(m *Metrics) { z.m.Store(m) }

// Produce implements sdkmetric.Producer.
func (z *zeroProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	m := z.m.Load()
	if m == nil {
		return nil, nil
	}
	m.zeroMu.Lock()
	series := append([]zeroSeries(nil), m.zeros...)
	m.zeroMu.Unlock()
	now := time.Now()
	byHist := map[*hist][]metricdata.HistogramDataPoint[float64]{}
	var order []*hist
	for _, s := range series {
		if s.o.seen[s.h.idx].Load() {
			continue
		}
		if _, ok := byHist[s.h]; !ok {
			order = append(order, s.h)
		}
		byHist[s.h] = append(byHist[s.h], metricdata.HistogramDataPoint[float64]{
			Attributes: s.o.set, StartTime: z.start, Time: now,
			Bounds: msBuckets, BucketCounts: make([]uint64, len(msBuckets)+1),
		})
	}
	if len(order) == 0 {
		return nil, nil
	}
	sm := metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: ScopeName}}
	for _, h := range order {
		sm.Metrics = append(sm.Metrics, metricdata.Metrics{
			Name: h.def.Instrument, Description: h.def.Help, Unit: h.def.Unit,
			Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: byHist[h]},
		})
	}
	return []metricdata.ScopeMetrics{sm}, nil
}

// taskOperations are the operator actions tasker_task_operations_total counts.
var taskOperations = []string{"cancel", "retry", "resolve"}

// prunedTables are what tasker_pruned_rows_total counts.
var prunedTables = []string{"tasks", "queue_archive"}
