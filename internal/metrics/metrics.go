package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/taskerhq/tasker/internal/db"
)

// ScopeName is the instrumentation scope of Tasker's metrics.
const ScopeName = "github.com/taskerhq/tasker"

// msBuckets are the bucket boundaries of every histogram, in milliseconds:
// 1-2.5-5 steps per decade from 25 µs (a cached-plan SQL function on a warm
// connection) to five minutes (a long handler, a queue backlog), so one set
// resolves both the sub-millisecond SQL functions and multi-second steps to
// within a factor of 2.5. Classic buckets rather than native histograms: see
// BucketsDoc.
var msBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}

// Buckets returns the histogram bucket boundaries in milliseconds.
func Buckets() []float64 { return append([]float64(nil), msBuckets...) }

// Option configures Metrics.
type Option func(*Metrics)

// WithCorrelationIDLabel adds the correlation ID as a label on task and step
// metrics. Every correlation ID becomes a new series: only for users who
// accept unbounded cardinality (telemetry.metrics.correlation_id_label).
func WithCorrelationIDLabel(on bool) Option { return func(m *Metrics) { m.corrLabel = on } }

// WithPrometheus lets p's /metrics show every histogram series declared by
// DeclareKnown, with zero counts, until it is first recorded (the SDK
// exports a histogram only once it has a value).
func WithPrometheus(p *Prometheus) Option {
	return func(m *Metrics) {
		if p != nil {
			m.zeroOut = p.zeros
		}
	}
}

// Metrics records Tasker's metrics. A nil *Metrics records nothing, so
// components need no checks.
type Metrics struct {
	meter     metric.Meter
	corrLabel bool
	zeroOut   *zeroProducer

	tasksRequests, tasksCompletions, tasksFailures, stepsEnqueued, resultsProcessed metric.Int64Counter
	taskOperations, pruned                                                          metric.Int64Counter
	taskInit, taskFinal, resultProcessing, stepTransition                           *hist

	stepsExecutions, stepsSuccesses, stepsFailures, stepsClaimed, resultsSubmitted metric.Int64Counter
	stepExecution, stepClaim, resultSubmission                                     *hist

	sqlDuration *hist
	sqlErrors   metric.Int64Counter

	msgSent, msgRead, msgArchived, msgFailed, fallbackPoll metric.Int64Counter
	sendDuration, readDuration, queueWait                  *hist

	mu    sync.RWMutex
	attrs map[[3]string]*optSet

	hists []*hist
	// zeros are the histogram series declared by DeclareKnown; the
	// Prometheus exporter shows them with zero counts until first recorded.
	zeroMu  sync.Mutex
	zeros   []zeroSeries
	zeroSet map[zeroSeries]bool

	regMu sync.Mutex
	regs  []metric.Registration
}

// New defines every instrument on mp (nil: no-op).
func New(mp metric.MeterProvider, opts ...Option) (*Metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := &Metrics{meter: mp.Meter(ScopeName), attrs: map[[3]string]*optSet{}}
	for _, o := range opts {
		o(m)
	}
	var errs []error
	counter := func(name string) metric.Int64Counter {
		d := def(name)
		c, err := m.meter.Int64Counter(d.Instrument, metric.WithDescription(d.Help), metric.WithUnit(d.Unit))
		errs = append(errs, err)
		return c
	}
	hist := func(name string) *hist {
		d := def(name)
		h, err := m.meter.Float64Histogram(d.Instrument, metric.WithDescription(d.Help), metric.WithUnit(d.Unit),
			metric.WithExplicitBucketBoundaries(msBuckets...))
		errs = append(errs, err)
		out := &hist{Float64Histogram: h, idx: len(m.hists), def: d}
		m.hists = append(m.hists, out)
		return out
	}
	m.tasksRequests = counter("tasker_tasks_requests_total")
	m.tasksCompletions = counter("tasker_tasks_completions_total")
	m.tasksFailures = counter("tasker_tasks_failures_total")
	m.taskOperations = counter("tasker_task_operations_total")
	m.pruned = counter("tasker_pruned_rows_total")
	m.stepsEnqueued = counter("tasker_steps_enqueued_total")
	m.resultsProcessed = counter("tasker_step_results_processed_total")
	m.taskInit = hist("tasker_task_initialization_duration_milliseconds")
	m.taskFinal = hist("tasker_task_finalization_duration_milliseconds")
	m.resultProcessing = hist("tasker_step_result_processing_duration_milliseconds")
	m.stepTransition = hist("tasker_step_transition_duration_milliseconds")
	m.stepsExecutions = counter("tasker_steps_executions_total")
	m.stepsSuccesses = counter("tasker_steps_successes_total")
	m.stepsFailures = counter("tasker_steps_failures_total")
	m.stepsClaimed = counter("tasker_steps_claimed_total")
	m.resultsSubmitted = counter("tasker_steps_results_submitted_total")
	m.stepExecution = hist("tasker_step_execution_duration_milliseconds")
	m.stepClaim = hist("tasker_step_claim_duration_milliseconds")
	m.resultSubmission = hist("tasker_step_result_submission_duration_milliseconds")
	m.sqlDuration = hist("tasker_sql_function_duration_milliseconds")
	m.sqlErrors = counter("tasker_sql_function_errors_total")
	m.msgSent = counter("tasker_messages_sent_total")
	m.msgRead = counter("tasker_messages_read_total")
	m.msgArchived = counter("tasker_messages_archived_total")
	m.msgFailed = counter("tasker_messages_failed_total")
	m.fallbackPoll = counter("tasker_fallback_poll_messages_total")
	m.sendDuration = hist("tasker_message_send_duration_milliseconds")
	m.readDuration = hist("tasker_message_read_duration_milliseconds")
	m.queueWait = hist("tasker_message_queue_wait_duration_milliseconds")
	if len(m.hists) > maxHists {
		errs = append(errs, fmt.Errorf("%d histograms, more than maxHists (%d)", len(m.hists), maxHists))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("defining metrics: %w", err)
	}
	if m.zeroOut != nil {
		m.zeroOut.attach(m)
	}
	return m, nil
}

// maxHists bounds the histograms, so each label set can carry one "seen"
// flag per histogram in a fixed array.
const maxHists = 16

// hist is a histogram with its index among Metrics.hists.
type hist struct {
	metric.Float64Histogram
	idx int
	def Def
}

// observe records one value; the label set is marked as seen by h, which
// retires its zero series (the SDK's own point takes over).
func (m *Metrics) observe(ctx context.Context, h *hist, ms float64, o *optSet) {
	if !o.seen[h.idx].Load() {
		o.seen[h.idx].Store(true)
	}
	h.Record(ctx, ms, o.rec...)
}

func def(name string) Def {
	for _, d := range defs {
		if d.Name == name {
			return d
		}
	}
	panic("metrics: no definition named " + name) // a programming error caught by every test
}

// optSet holds one label set as ready-made option slices: passing an
// existing slice to a variadic parameter does not allocate, so recording with
// a label set seen before allocates nothing.
type optSet struct {
	set attribute.Set
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
	// seen[i] is set once histogram i recorded with this label set.
	seen [maxHists]atomic.Bool
}

// opt returns the cached options for up to three labels; the key's third
// value doubles as a shape tag when there is no third label.
func (m *Metrics) opt(k1, v1, k2, v2, k3, v3 string) *optSet {
	key := [3]string{v1, v2, v3}
	m.mu.RLock()
	o, ok := m.attrs[key]
	m.mu.RUnlock()
	if ok {
		return o
	}
	kv := make([]attribute.KeyValue, 0, 3)
	for _, p := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}} {
		if p[0] != "" {
			kv = append(kv, attribute.String(p[0], p[1]))
		}
	}
	set := attribute.NewSet(kv...)
	mo := metric.WithAttributeSet(set)
	o = &optSet{set: set, add: []metric.AddOption{mo}, rec: []metric.RecordOption{mo}, obs: []metric.ObserveOption{mo}}
	m.mu.Lock()
	m.attrs[key] = o
	m.mu.Unlock()
	return o
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// withCorr adds the correlation ID label (the opt-in cardinality hazard); it allocates.
func withCorr(o *optSet, corr uuid.UUID) attribute.Set {
	kv := append(o.set.ToSlice(), attribute.String("correlation_id", corr.String()))
	return attribute.NewSet(kv...)
}

func (m *Metrics) add(ctx context.Context, c metric.Int64Counter, n int64, corr uuid.UUID, o *optSet) {
	if m.corrLabel && corr != uuid.Nil {
		c.Add(ctx, n, metric.WithAttributeSet(withCorr(o, corr)))
		return
	}
	c.Add(ctx, n, o.add...)
}

func (m *Metrics) record(ctx context.Context, h *hist, d time.Duration, corr uuid.UUID, o *optSet) {
	if m.corrLabel && corr != uuid.Nil {
		o.seen[h.idx].Store(true)
		h.Record(ctx, msOf(d), metric.WithAttributeSet(withCorr(o, corr)))
		return
	}
	m.observe(ctx, h, msOf(d), o)
}

// TaskRequested records a created task and how long its initialization took.
func (m *Metrics) TaskRequested(ctx context.Context, corr uuid.UUID, ns, template string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.opt("namespace", ns, "template", template, "", "\x00req")
	m.add(ctx, m.tasksRequests, 1, corr, o)
	m.record(ctx, m.taskInit, d, corr, o)
}

// TaskOperation records an operator action (cancel, retry, resolve) on a task.
func (m *Metrics) TaskOperation(ctx context.Context, corr uuid.UUID, ns, template, operation string) {
	if m == nil {
		return
	}
	m.add(ctx, m.taskOperations, 1, corr, m.opt("namespace", ns, "template", template, "operation", operation))
}

// Pruned records n rows of table deleted by the retention pruner.
func (m *Metrics) Pruned(ctx context.Context, table string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.add(ctx, m.pruned, n, uuid.Nil, m.opt("table", table, "", "", "", "\x00prune"))
}

// TaskFinalized records a task reaching complete or error.
func (m *Metrics) TaskFinalized(ctx context.Context, corr uuid.UUID, ns, template, finalState string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.opt("namespace", ns, "template", template, "", "\x00req")
	if finalState == "complete" {
		m.add(ctx, m.tasksCompletions, 1, corr, o)
	} else {
		m.add(ctx, m.tasksFailures, 1, corr, o)
	}
	m.record(ctx, m.taskFinal, d, corr, m.opt("namespace", ns, "final_state", finalState, "", "\x00fin"))
}

// StepEnqueued records one step sent to queue.
func (m *Metrics) StepEnqueued(ctx context.Context, ns, stepName, queue string) {
	if m == nil {
		return
	}
	m.stepsEnqueued.Add(ctx, 1, m.opt("namespace", ns, "step_name", stepName, "", "\x00step").add...)
	m.msgSent.Add(ctx, 1, m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// ResultProcessed records one applied worker result (success, retry, failure or duplicate).
func (m *Metrics) ResultProcessed(ctx context.Context, ns, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.resultsProcessed.Add(ctx, 1, m.opt("namespace", ns, "result", result, "", "\x00res").add...)
	m.observe(ctx, m.resultProcessing, msOf(d), m.opt("namespace", ns, "", "", "", "\x00ns"))
}

// StepTransition records the orchestration overhead between a step's result
// and its dependents' enqueue.
func (m *Metrics) StepTransition(ctx context.Context, ns string, d time.Duration) {
	if m == nil {
		return
	}
	m.observe(ctx, m.stepTransition, msOf(d), m.opt("namespace", ns, "", "", "", "\x00ns"))
}

// StepClaimed records a claim by method (event or poll).
func (m *Metrics) StepClaimed(ctx context.Context, ns, method, queue string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.opt("namespace", ns, "claim_method", method, "", "\x00claim")
	m.stepsClaimed.Add(ctx, 1, o.add...)
	m.observe(ctx, m.stepClaim, msOf(d), o)
	m.msgRead.Add(ctx, 1, m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// StepExecuted records a handler run; errType is "" for success.
func (m *Metrics) StepExecuted(ctx context.Context, corr uuid.UUID, ns, stepName, errType string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.opt("namespace", ns, "step_name", stepName, "", "\x00step")
	m.add(ctx, m.stepsExecutions, 1, corr, o)
	m.record(ctx, m.stepExecution, d, corr, o)
	if errType == "" {
		m.add(ctx, m.stepsSuccesses, 1, corr, o)
		return
	}
	m.add(ctx, m.stepsFailures, 1, corr, m.opt("namespace", ns, "step_name", stepName, "error_type", errType))
}

// ResultSubmitted records a result sent to orchestration; the worker's
// message on workerQueue was acknowledged by the same statement.
func (m *Metrics) ResultSubmitted(ctx context.Context, ns, workerQueue string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.opt("namespace", ns, "", "", "", "\x00ns")
	m.resultsSubmitted.Add(ctx, 1, o.add...)
	m.observe(ctx, m.resultSubmission, msOf(d), o)
	m.msgSent.Add(ctx, 1, m.opt("queue", "orchestration_step_results", "", "", "", "\x00q").add...)
	m.msgArchived.Add(ctx, 1, m.opt("queue", workerQueue, "", "", "", "\x00q").add...)
}

// MessagesRead records messages a consumer took from queue.
func (m *Metrics) MessagesRead(ctx context.Context, queue string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.msgRead.Add(ctx, int64(n), m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// QueueWait records how long a message waited in queue before it was read.
// Record it with the context of the span that processes the message: a
// sampled span becomes the exemplar of its bucket.
func (m *Metrics) QueueWait(ctx context.Context, queue string, d time.Duration) {
	if m == nil {
		return
	}
	m.observe(ctx, m.queueWait, msOf(d), m.opt("queue", queue, "", "", "", "\x00q"))
}

// MessageArchived records an acknowledgement.
func (m *Metrics) MessageArchived(ctx context.Context, queue string) {
	if m == nil {
		return
	}
	m.msgArchived.Add(ctx, 1, m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// MessageFailed records a message whose processing failed.
func (m *Metrics) MessageFailed(ctx context.Context, queue string) {
	if m == nil {
		return
	}
	m.msgFailed.Add(ctx, 1, m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// FallbackPollHits records messages found by a fallback poller.
func (m *Metrics) FallbackPollHits(ctx context.Context, queue string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.fallbackPoll.Add(ctx, int64(n), m.opt("queue", queue, "", "", "", "\x00q").add...)
}

// StartCall implements db.Observer for callers outside db.Instr.
func (m *Metrics) StartCall(ctx context.Context, call db.Call) (context.Context, func(error)) {
	if m == nil {
		return ctx, nopDone
	}
	start := time.Now()
	return ctx, func(err error) { m.RecordCall(ctx, call, time.Since(start), err) }
}

// IsNil lets db.Instr skip a nil *Metrics.
func (m *Metrics) IsNil() bool { return m == nil }

// RecordCall implements db.Recorder: latency and errors of every SQL
// function, and send/read latency and counts of queue calls.
func (m *Metrics) RecordCall(ctx context.Context, call db.Call, dur time.Duration, err error) {
	if m == nil {
		return
	}
	d := msOf(dur)
	m.observe(ctx, m.sqlDuration, d, m.opt("function", call.Function, "", "", "", "\x00fn"))
	if err != nil {
		m.sqlErrors.Add(ctx, 1, m.opt("function", call.Function, "error_type", sqlErrorType(err), "", "\x00err").add...)
	}
	if call.Queue == "" {
		return
	}
	qo := m.opt("queue", call.Queue, "", "", "", "\x00q")
	switch call.Messaging {
	case "send":
		m.observe(ctx, m.sendDuration, d, qo)
		if call.Function == "queue_send" && err == nil {
			m.msgSent.Add(ctx, 1, qo.add...)
		}
	case "receive":
		m.observe(ctx, m.readDuration, d, qo)
	case "settle":
		if call.Function == "queue_archive" && err == nil {
			m.msgArchived.Add(ctx, 1, qo.add...)
		}
	}
}

func nopDone(error) {}

func sqlErrorType(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && len(pgErr.Code) >= 2:
		return "sqlstate_" + pgErr.Code[:2]
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

var (
	_ db.Observer = (*Metrics)(nil)
	_ db.Recorder = (*Metrics)(nil)
)
