package orchestration

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/tracing"
)

// stalledWarnEvery bounds the warnings about one unserved namespace.
const stalledWarnEvery = time.Minute

// presence is orchestration's view of which namespaces live workers serve,
// refreshed every db.WorkerPresenceInterval so the hot path only reads a map.
type presence struct {
	mu     sync.Mutex
	live   map[string]int64 // nil until the first read
	warned map[string]time.Time
}

func (s *Service) presenceLoop(ctx context.Context) {
	tick := time.NewTicker(db.WorkerPresenceInterval)
	defer tick.Stop()
	for {
		live, err := db.LiveWorkersByNamespace(tracing.Suppress(ctx), s.pool, db.WorkerLiveWindow)
		if err == nil {
			s.presence.mu.Lock()
			s.presence.live = live
			s.presence.mu.Unlock()
		} else if ctx.Err() == nil {
			s.log.WarnContext(ctx, "reading live workers failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// LiveWorkers returns the number of live workers per registered namespace as
// last read (empty before the first read).
func (s *Service) LiveWorkers() map[string]int64 {
	s.presence.mu.Lock()
	defer s.presence.mu.Unlock()
	return maps.Clone(s.presence.live)
}

// unserved reports whether steps just enqueued in ns have no live worker to
// run them, and whether that deserves a warning now (at most one per
// namespace per stalledWarnEvery).
func (s *Service) unserved(ns string) (stalled, warn bool) {
	s.presence.mu.Lock()
	defer s.presence.mu.Unlock()
	if s.presence.live == nil || s.presence.live[ns] > 0 {
		return false, false
	}
	if _, ok := s.presence.live[ns]; !ok {
		// Registered after the last read: wait for the next one.
		return false, false
	}
	now := time.Now()
	if s.presence.warned == nil {
		s.presence.warned = map[string]time.Time{}
	}
	if now.Sub(s.presence.warned[ns]) < stalledWarnEvery {
		return true, false
	}
	s.presence.warned[ns] = now
	return true, true
}
