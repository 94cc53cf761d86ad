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
	// unservedReads counts the consecutive reads that found no live worker
	// for a namespace. A warning needs two: a worker starting at the same
	// time as this orchestrator may not have recorded itself by the first.
	unservedReads map[string]int
}

func (s *Service) presenceLoop(ctx context.Context) {
	tick := time.NewTicker(db.WorkerPresenceInterval)
	defer tick.Stop()
	for {
		live, err := db.LiveWorkersByNamespace(tracing.Suppress(ctx), s.pool, db.WorkerLiveWindow)
		if err == nil {
			s.presence.update(live)
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

// warnUnserved reports whether steps just enqueued in ns deserve a warning
// that no live worker serves it: two consecutive reads found none, and ns
// was not warned about within stalledWarnEvery.
func (p *presence) warnUnserved(ns string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unservedReads[ns] < 2 || now.Sub(p.warned[ns]) < stalledWarnEvery {
		return false
	}
	if p.warned == nil {
		p.warned = map[string]time.Time{}
	}
	p.warned[ns] = now
	return true
}

func (p *presence) update(live map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = live
	if p.unservedReads == nil {
		p.unservedReads = map[string]int{}
	}
	for ns, n := range live {
		if n > 0 {
			delete(p.unservedReads, ns)
		} else {
			p.unservedReads[ns]++
		}
	}
	for ns := range p.unservedReads {
		if _, ok := live[ns]; !ok {
			delete(p.unservedReads, ns)
		}
	}
}
