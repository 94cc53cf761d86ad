package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
)

// collectTimeout bounds the database reads behind observable gauges, so a
// slow database slows a scrape, never blocks it.
const collectTimeout = 2 * time.Second

func (m *Metrics) register(cb metric.Callback, insts ...metric.Observable) error {
	reg, err := m.meter.RegisterCallback(cb, insts...)
	if err != nil {
		return err
	}
	m.regMu.Lock()
	m.regs = append(m.regs, reg)
	m.regMu.Unlock()
	return nil
}

// Close unregisters every gauge callback (their pools may be closing).
func (m *Metrics) Close() error {
	if m == nil {
		return nil
	}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	var first error
	for _, r := range m.regs {
		if err := r.Unregister(); err != nil && first == nil {
			first = err
		}
	}
	m.regs = nil
	return first
}

func (m *Metrics) gauge(name string) (metric.Int64ObservableGauge, error) {
	d := def(name)
	return m.meter.Int64ObservableGauge(d.Instrument, metric.WithDescription(d.Help), metric.WithUnit(d.Unit))
}

func (m *Metrics) obsCounter(name string) (metric.Int64ObservableCounter, error) {
	d := def(name)
	return m.meter.Int64ObservableCounter(d.Instrument, metric.WithDescription(d.Help), metric.WithUnit(d.Unit))
}

// ObservePool reports the pool's connections and saturation at collection.
func (m *Metrics) ObservePool(pool *pgxpool.Pool) error {
	if m == nil {
		return nil
	}
	conns, err1 := m.gauge("tasker_db_pool_connections")
	maxc, err2 := m.gauge("tasker_db_pool_max_connections")
	acq, err3 := m.obsCounter("tasker_db_pool_acquires_total")
	empty, err4 := m.obsCounter("tasker_db_pool_empty_acquires_total")
	wait, err5 := m.obsCounter("tasker_db_pool_acquire_wait_milliseconds_total")
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			return fmt.Errorf("defining pool metrics: %w", err)
		}
	}
	acquired := metric.WithAttributes(attribute.String("state", "acquired"))
	idle := metric.WithAttributes(attribute.String("state", "idle"))
	constructing := metric.WithAttributes(attribute.String("state", "constructing"))
	return m.register(func(_ context.Context, o metric.Observer) error {
		s := pool.Stat()
		o.ObserveInt64(conns, int64(s.AcquiredConns()), acquired)
		o.ObserveInt64(conns, int64(s.IdleConns()), idle)
		o.ObserveInt64(conns, int64(s.ConstructingConns()), constructing)
		o.ObserveInt64(maxc, int64(s.MaxConns()))
		o.ObserveInt64(acq, s.AcquireCount())
		o.ObserveInt64(empty, s.EmptyAcquireCount())
		o.ObserveInt64(wait, s.AcquireDuration().Milliseconds())
		return nil
	}, conns, maxc, acq, empty, wait)
}

// ObserveTasks reports tasks by non-terminal state and steps ready for a
// worker, read from the database at collection.
func (m *Metrics) ObserveTasks(pool *pgxpool.Pool) error {
	if m == nil {
		return nil
	}
	active, err := m.gauge("tasker_tasks_active")
	if err != nil {
		return err
	}
	ready, err := m.gauge("tasker_steps_ready")
	if err != nil {
		return err
	}
	return m.register(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, collectTimeout)
		defer cancel()
		counts, err := db.UnfinishedTasksByState(ctx, pool)
		if err != nil {
			return err
		}
		for _, c := range counts {
			o.ObserveInt64(active, c.Tasks, m.opt("state", string(c.State), "", "", "", "\x00state").obs...)
		}
		enqueued, err := db.EnqueuedStepsByNamespace(ctx, pool)
		if err != nil {
			return err
		}
		for ns, n := range enqueued {
			o.ObserveInt64(ready, n, m.opt("namespace", ns, "", "", "", "\x00ns").obs...)
		}
		return nil
	}, active, ready)
}

// ObserveQueues reports every queue's depth, claimable messages and the age
// of its oldest claimable message, read at collection.
func (m *Metrics) ObserveQueues(pool *pgxpool.Pool) error {
	if m == nil {
		return nil
	}
	depth, err1 := m.gauge("tasker_queue_depth")
	claimable, err2 := m.gauge("tasker_queue_claimable_messages")
	d := def("tasker_queue_oldest_claimable_age_seconds")
	age, err3 := m.meter.Float64ObservableGauge(d.Instrument, metric.WithDescription(d.Help), metric.WithUnit(d.Unit))
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return fmt.Errorf("defining queue metrics: %w", err)
		}
	}
	return m.register(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, collectTimeout)
		defer cancel()
		stats, err := db.QueueStats(ctx, pool)
		if err != nil {
			return err
		}
		for _, st := range stats {
			qo := m.opt("queue", st.Queue, "", "", "", "\x00q")
			o.ObserveInt64(depth, st.Depth, qo.obs...)
			o.ObserveInt64(claimable, st.Claimable, qo.obs...)
			o.ObserveFloat64(age, st.OldestClaimableAge.Seconds(), qo.obs...)
		}
		return nil
	}, depth, claimable, age)
}

// ObserveListener reports the notifications each subscription received and dropped.
func (m *Metrics) ObserveListener(l *queue.Listener) error {
	if m == nil {
		return nil
	}
	recv, err := m.obsCounter("tasker_notifications_received_total")
	if err != nil {
		return err
	}
	dropped, err := m.obsCounter("tasker_notifications_dropped_total")
	if err != nil {
		return err
	}
	return m.register(func(_ context.Context, o metric.Observer) error {
		for _, s := range l.Subscriptions() {
			qo := m.opt("queue", s.Queue, "", "", "", "\x00q")
			o.ObserveInt64(recv, s.Received.Load(), qo.obs...)
			o.ObserveInt64(dropped, s.Dropped.Load(), qo.obs...)
		}
		return nil
	}, recv, dropped)
}

// ObserveActiveExecutions reports running handlers per namespace from fn.
func (m *Metrics) ObserveActiveExecutions(fn func() map[string]int64) error {
	return m.observePerNamespace("tasker_steps_active_executions", fn)
}

// ObserveOverdueHandlers reports timed-out handlers that have not returned,
// per namespace, from fn.
func (m *Metrics) ObserveOverdueHandlers(fn func() map[string]int64) error {
	return m.observePerNamespace("tasker_handlers_overdue", fn)
}

// ObserveLiveWorkers reports live workers per namespace from fn.
func (m *Metrics) ObserveLiveWorkers(fn func() map[string]int64) error {
	return m.observePerNamespace("tasker_workers_live", fn)
}

func (m *Metrics) observePerNamespace(name string, fn func() map[string]int64) error {
	if m == nil {
		return nil
	}
	g, err := m.gauge(name)
	if err != nil {
		return err
	}
	return m.register(func(_ context.Context, o metric.Observer) error {
		for ns, n := range fn() {
			o.ObserveInt64(g, n, m.opt("namespace", ns, "", "", "", "\x00ns").obs...)
		}
		return nil
	}, g)
}
