package orchestration

import (
	"cmp"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/taskerhq/tasker/internal/base"
)

// Config configures a Service. Zero values mean the documented default.
type Config struct {
	// ProcessorUUID identifies this orchestrator in transition history. Default: a new UUIDv7.
	ProcessorUUID uuid.UUID
	// ResultWorkers is how many result batches (and task requests) are
	// processed at once. Default 2: each batch takes every result waiting
	// when it starts, so few workers make big batches; with 8 a saturated
	// engine ran batches of 2 results and drained a backlog 35 % slower
	// than with 2 (bench throughput --result-workers).
	ResultWorkers int
	// ResultBatch is the most result messages one transaction processes:
	// results that arrive while a batch is being processed are processed
	// together in the next. Default 64.
	ResultBatch int
	// ReadinessInterval is how often the readiness poller looks for tasks whose
	// retry backoff elapsed. It is also woken at the exact retry time by this
	// process's own timers. Default 1s.
	ReadinessInterval time.Duration
	// ReadinessBatch is how many tasks one readiness poll takes. Default 50.
	ReadinessBatch int
	// FallbackInterval is how often orchestration queues are read for messages
	// whose notification was missed. Default 1s.
	FallbackInterval time.Duration
	// FallbackMinAge keeps the fallback poller off messages a notification is
	// about to deliver. Default 500ms.
	FallbackMinAge time.Duration
	// RetryJitter is the ± fraction applied to retry backoff. Default 0.15;
	// negative disables jitter.
	RetryJitter float64
	// FailedMessageDelay hides a message whose processing failed before it is
	// tried again. Default 2s.
	FailedMessageDelay time.Duration
	// Retention is how long a finished task (complete, error, cancelled,
	// resolved manually) is kept, with its steps and history, and how long
	// archived queue messages are kept. Default 7 days; negative keeps
	// everything.
	Retention time.Duration
	// PruneInterval is how often the pruner looks for what has outlived
	// Retention. Default 1 minute.
	PruneInterval time.Duration
	// ScheduleInterval is how often due cron schedules are looked for: a
	// firing happens within this much of its time. Default 1s.
	ScheduleInterval time.Duration
	// PruneBatch is how many tasks (or archived messages) one pruning
	// transaction deletes, so that pruning never holds many locks or a long
	// transaction. Default 500.
	PruneBatch int
	base.Telemetry
}

// DefaultRetention is Config.Retention's default.
const DefaultRetention = 7 * 24 * time.Hour

func (c Config) withDefaults() Config {
	if c.ProcessorUUID == uuid.Nil {
		c.ProcessorUUID = uuid.Must(uuid.NewV7())
	}
	c.ResultWorkers = cmp.Or(c.ResultWorkers, 2)
	c.ResultBatch = cmp.Or(c.ResultBatch, 64)
	c.ReadinessInterval = cmp.Or(c.ReadinessInterval, time.Second)
	c.ReadinessBatch = cmp.Or(c.ReadinessBatch, 50)
	c.FallbackInterval = cmp.Or(c.FallbackInterval, time.Second)
	c.FallbackMinAge = cmp.Or(c.FallbackMinAge, 500*time.Millisecond)
	c.FailedMessageDelay = cmp.Or(c.FailedMessageDelay, 2*time.Second)
	c.Retention = cmp.Or(c.Retention, DefaultRetention)
	c.PruneInterval = cmp.Or(c.PruneInterval, time.Minute)
	c.PruneBatch = cmp.Or(c.PruneBatch, 500)
	c.ScheduleInterval = cmp.Or(c.ScheduleInterval, time.Second)
	if c.RetryJitter == 0 {
		c.RetryJitter = 0.15
	}
	if c.RetryJitter < 0 {
		c.RetryJitter = 0
	}
	c.Telemetry = c.Telemetry.WithDefaults()
	return c
}

func (c Config) validate() error {
	switch {
	case c.ResultWorkers < 1:
		return fmt.Errorf("orchestration.result_workers: must be ≥ 1, got %d", c.ResultWorkers)
	case c.ResultBatch < 1:
		return fmt.Errorf("orchestration.result_batch: must be ≥ 1, got %d", c.ResultBatch)
	case c.ReadinessInterval < 10*time.Millisecond:
		return fmt.Errorf("orchestration.readiness_interval: must be ≥ 10ms, got %s", c.ReadinessInterval)
	case c.FallbackInterval < 10*time.Millisecond:
		return fmt.Errorf("orchestration.fallback_interval: must be ≥ 10ms, got %s", c.FallbackInterval)
	case c.ReadinessBatch < 1:
		return fmt.Errorf("orchestration.readiness_batch: must be ≥ 1, got %d", c.ReadinessBatch)
	case c.PruneInterval < 10*time.Millisecond:
		return fmt.Errorf("orchestration.prune_interval: must be ≥ 10ms, got %s", c.PruneInterval)
	case c.ScheduleInterval < 10*time.Millisecond:
		return fmt.Errorf("orchestration.schedule_interval: must be ≥ 10ms, got %s", c.ScheduleInterval)
	case c.PruneBatch < 1:
		return fmt.Errorf("orchestration.prune_batch: must be ≥ 1, got %d", c.PruneBatch)
	case c.RetryJitter > 1:
		return fmt.Errorf("orchestration.retry_jitter: must be in [0, 1], got %g", c.RetryJitter)
	}
	return nil
}
