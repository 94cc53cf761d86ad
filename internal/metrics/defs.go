// Package metrics defines every Tasker metric once — name, kind, unit,
// labels, where it is recorded and what it means — records them on the hot
// paths without allocating, and serves them to Prometheus. The reference in
// docs/observability/metrics-reference.md is generated from Definitions.
package metrics

// Kind is an instrument kind.
type Kind string

// Instrument kinds.
const (
	Counter   Kind = "counter"
	Histogram Kind = "histogram"
	Gauge     Kind = "gauge (observable)"
	// ObservableCounter is a cumulative total read at collection time.
	ObservableCounter Kind = "counter (observable)"
)

// Def describes one metric.
type Def struct {
	// Name is the metric's name in Prometheus exposition (before _bucket/_sum/_count).
	Name string
	// Instrument is the OpenTelemetry instrument name.
	Instrument string
	Kind       Kind
	// Unit is the UCUM unit given to OpenTelemetry ("ms", "s", or "" for counts).
	Unit   string
	Labels []string
	Domain string
	// Where names the code that records it.
	Where string
	Help  string
}

// Definitions lists every metric, by domain. It is read-only.
func Definitions() []Def { return defs }

var defs = []Def{
	// Orchestration
	{"tasker_tasks_requests_total", "tasker.tasks.requests", Counter, "", []string{"namespace", "template"}, "orchestration",
		"TaskInitializer (API, task request queue, child tasks)", "Task creation requests accepted (the task was created)."},
	{"tasker_tasks_completions_total", "tasker.tasks.completions", Counter, "", []string{"namespace", "template"}, "orchestration",
		"TaskFinalizer", "Tasks that reached complete."},
	{"tasker_tasks_failures_total", "tasker.tasks.failures", Counter, "", []string{"namespace", "template"}, "orchestration",
		"TaskFinalizer", "Tasks that reached error (a step failed permanently)."},
	{"tasker_task_operations_total", "tasker.task.operations", Counter, "", []string{"namespace", "template", "operation"}, "orchestration",
		"operator actions (API, CLI, Go)", "Operator actions applied to tasks; operation is cancel, retry or resolve."},
	{"tasker_pruned_rows_total", "tasker.pruned.rows", Counter, "", []string{"table"}, "orchestration",
		"retention pruner", "Rows deleted because they outlived the retention; table is tasks (with their steps and history) or queue_archive."},
	{"tasker_steps_enqueued_total", "tasker.steps.enqueued", Counter, "", []string{"namespace", "step_name"}, "orchestration",
		"StepEnqueuer (enqueue_steps)", "Steps sent to a worker queue, retries included."},
	{"tasker_step_results_processed_total", "tasker.step_results.processed", Counter, "", []string{"namespace", "result"}, "orchestration",
		"ResultProcessor", "Worker results applied; result is success, retry, failure or duplicate (a redelivery that changed nothing)."},
	{"tasker_task_initialization_duration_milliseconds", "tasker.task.initialization.duration", Histogram, "ms", []string{"namespace", "template"}, "orchestration",
		"TaskInitializer", "Time to validate a request, create the task and enqueue its root steps (one transaction)."},
	{"tasker_task_finalization_duration_milliseconds", "tasker.task.finalization.duration", Histogram, "ms", []string{"namespace", "final_state"}, "orchestration",
		"TaskFinalizer", "Time to claim and finalize a task."},
	{"tasker_step_result_processing_duration_milliseconds", "tasker.step_result.processing.duration", Histogram, "ms", []string{"namespace"}, "orchestration",
		"ResultProcessor", "Time to apply one result, discover and enqueue the next steps, or finalize, until commit."},
	{"tasker_tasks_active", "tasker.tasks.active", Gauge, "", []string{"state"}, "orchestration",
		"orchestration process, read from tasks at collection", "Tasks not yet in a terminal state, by state."},
	{"tasker_steps_ready", "tasker.steps.ready", Gauge, "", []string{"namespace"}, "orchestration",
		"orchestration process, read from workflow_steps at collection", "Steps enqueued for a worker and not yet claimed: work ready to run."},
	{"tasker_step_transition_duration_milliseconds", "tasker.step.transition.duration", Histogram, "ms", []string{"namespace"}, "orchestration",
		"ResultProcessor", "Orchestration overhead between two steps: from a worker submitting a step's result to its dependents being enqueued (committed)."},
	// Worker
	{"tasker_steps_executions_total", "tasker.steps.executions", Counter, "", []string{"namespace", "step_name"}, "worker",
		"worker execute", "Step attempts run by a handler."},
	{"tasker_steps_successes_total", "tasker.steps.successes", Counter, "", []string{"namespace", "step_name"}, "worker",
		"worker execute", "Attempts whose handler succeeded."},
	{"tasker_steps_failures_total", "tasker.steps.failures", Counter, "", []string{"namespace", "step_name", "error_type"}, "worker",
		"worker execute", "Attempts that failed, by error type (handler_timeout, handler_panic, retryable_error, permanent_error, …)."},
	{"tasker_steps_claimed_total", "tasker.steps.claimed", Counter, "", []string{"namespace", "claim_method"}, "worker",
		"worker claim", "Steps claimed; claim_method is event (woken by NOTIFY) or poll (found by the fallback poller)."},
	{"tasker_steps_results_submitted_total", "tasker.steps.results_submitted", Counter, "", []string{"namespace"}, "worker",
		"worker submit", "Results stored and sent to orchestration."},
	{"tasker_step_execution_duration_milliseconds", "tasker.step.execution.duration", Histogram, "ms", []string{"namespace", "step_name"}, "worker",
		"worker execute", "Handler run time of one attempt."},
	{"tasker_step_claim_duration_milliseconds", "tasker.step.claim.duration", Histogram, "ms", []string{"namespace", "claim_method"}, "worker",
		"worker claim", "Time to claim a step (hide its message, take its lease, hydrate its context)."},
	{"tasker_step_result_submission_duration_milliseconds", "tasker.step_result.submission.duration", Histogram, "ms", []string{"namespace"}, "worker",
		"worker submit", "Time to store a result and send it to orchestration."},
	{"tasker_steps_active_executions", "tasker.steps.active_executions", Gauge, "", []string{"namespace"}, "worker",
		"worker process, read at collection", "Handlers running in this worker now."},
	{"tasker_handlers_overdue", "tasker.handlers.overdue", Gauge, "", []string{"namespace"}, "worker",
		"worker process, read at collection", "Handlers still running after their step's timeout cancelled them; each keeps its slot until it returns."},
	{"tasker_workers_live", "tasker.workers.live", Gauge, "", []string{"namespace"}, "worker",
		"orchestration process, from tasker.workers (refreshed every 5s)", "Workers whose presence heartbeat is fresh, per registered namespace; 0 means its steps wait for a worker."},
	{"tasker_queue_depth", "tasker.queue.depth", Gauge, "", []string{"queue"}, "worker",
		"any process, read from the queue at collection", "Messages in a queue, hidden (being worked on) or not."},
	// Database
	{"tasker_db_pool_connections", "tasker.db.pool.connections", Gauge, "", []string{"state"}, "database",
		"pgx pool statistics at collection", "Pool connections by state: acquired (in use), idle, constructing."},
	{"tasker_db_pool_max_connections", "tasker.db.pool.max_connections", Gauge, "", nil, "database",
		"pgx pool statistics at collection", "The pool's size limit; acquired near this means saturation."},
	{"tasker_db_pool_acquires_total", "tasker.db.pool.acquires", ObservableCounter, "", nil, "database",
		"pgx pool statistics at collection", "Connections acquired from the pool."},
	{"tasker_db_pool_empty_acquires_total", "tasker.db.pool.empty_acquires", ObservableCounter, "", nil, "database",
		"pgx pool statistics at collection", "Acquires that had to wait because no connection was idle: the saturation signal."},
	{"tasker_db_pool_acquire_wait_milliseconds_total", "tasker.db.pool.acquire_wait", ObservableCounter, "ms", nil, "database",
		"pgx pool statistics at collection", "Total time spent acquiring connections; its rate over acquires is the mean wait."},
	{"tasker_sql_function_duration_milliseconds", "tasker.sql.function.duration", Histogram, "ms", []string{"function"}, "database",
		"every SQL function wrapper (internal/db, internal/queue)", "Latency of each SQL function call, e.g. get_step_readiness_status."},
	{"tasker_sql_function_errors_total", "tasker.sql.function.errors", Counter, "", []string{"function", "error_type"}, "database",
		"every SQL function wrapper", "SQL function calls that failed, by function and error type (SQLSTATE class or timeout/canceled)."},
	// Messaging
	{"tasker_messages_sent_total", "tasker.messages.sent", Counter, "", []string{"queue"}, "messaging",
		"enqueue_steps, submit_step_result, queue send", "Messages sent, per queue."},
	{"tasker_messages_read_total", "tasker.messages.read", Counter, "", []string{"queue"}, "messaging",
		"worker claims, orchestration consumers", "Messages taken by a consumer, per queue."},
	{"tasker_messages_archived_total", "tasker.messages.archived", Counter, "", []string{"queue"}, "messaging",
		"acknowledgements", "Messages acknowledged (archived, or deleted on the hot path), per queue."},
	{"tasker_messages_failed_total", "tasker.messages.failed", Counter, "", []string{"queue"}, "messaging",
		"consumers", "Messages whose processing failed (retried later) or that were discarded as malformed."},
	{"tasker_message_send_duration_milliseconds", "tasker.message.send.duration", Histogram, "ms", []string{"queue"}, "messaging",
		"send calls", "Latency of a send (insert + NOTIFY) call."},
	{"tasker_message_read_duration_milliseconds", "tasker.message.read.duration", Histogram, "ms", []string{"queue"}, "messaging",
		"claim and read calls", "Latency of a read or claim call."},
	{"tasker_message_queue_wait_duration_milliseconds", "tasker.message.queue_wait.duration", Histogram, "ms", []string{"queue"}, "messaging",
		"worker claims, orchestration result consumer", "Time a message waited in its queue, from enqueue to the read that took it (on the database clock); a rising tail means consumers are short."},
	{"tasker_queue_claimable_messages", "tasker.queue.claimable_messages", Gauge, "", []string{"queue"}, "messaging",
		"read from the queue at collection", "Messages a consumer could take right now (visible)."},
	{"tasker_queue_oldest_claimable_age_seconds", "tasker.queue.oldest_claimable_age", Gauge, "s", []string{"queue"}, "messaging",
		"read from the queue at collection", "Age of the oldest message that is claimable now; hidden (in-progress) messages do not count, so a rising value means nobody is consuming."},
	{"tasker_notifications_received_total", "tasker.notifications.received", ObservableCounter, "", []string{"queue"}, "messaging",
		"LISTEN connection", "NOTIFY wake-ups received."},
	{"tasker_notifications_dropped_total", "tasker.notifications.dropped", ObservableCounter, "", []string{"queue"}, "messaging",
		"LISTEN connection", "Wake-ups dropped because the consumer was full; the fallback poller finds those messages."},
	{"tasker_fallback_poll_messages_total", "tasker.fallback_poll.messages", Counter, "", []string{"queue"}, "messaging",
		"worker and orchestration fallback pollers", "Messages found by a fallback poller rather than a notification (missed wake-ups, expired leases)."},
}

// Names lists every metric's Prometheus name.
func Names() []string {
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = d.Name
	}
	return out
}
