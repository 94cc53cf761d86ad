package api

import (
	"sync"

	"github.com/google/uuid"
)

// TaskSignals fans the orchestrators' task-terminal notifications (NOTIFY
// channel queue.TaskTerminalChannel, fed by the process's listener) out to
// the requests waiting for those tasks, so that a long-poll or an event
// stream learns at once that its task finished instead of asking the
// database over and over. It is safe for concurrent use.
type TaskSignals struct {
	mu      sync.Mutex
	waiters map[uuid.UUID]map[chan struct{}]struct{}
}

// NewTaskSignals returns an empty hub.
func NewTaskSignals() *TaskSignals {
	return &TaskSignals{waiters: map[uuid.UUID]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives a value when the task may have
// changed, and the function that ends the subscription.
func (h *TaskSignals) Subscribe(id uuid.UUID) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.waiters[id] == nil {
		h.waiters[id] = map[chan struct{}]struct{}{}
	}
	h.waiters[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.waiters[id], ch)
		if len(h.waiters[id]) == 0 {
			delete(h.waiters, id)
		}
	}
}

// Notify handles one notification: payload is a task UUID; anything else
// (the listener's "" after a reconnect, when notifications may have been
// lost) wakes every waiter to look again.
func (h *TaskSignals) Notify(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id, err := uuid.Parse(payload); err == nil {
		for ch := range h.waiters[id] {
			wake(ch)
		}
		return
	}
	for _, chs := range h.waiters {
		for ch := range chs {
			wake(ch)
		}
	}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
