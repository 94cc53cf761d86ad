package worker

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/queue"
)

// A saturated worker's claim takes a waiting wake-up for every slot that
// frees while it gathers, and leaves the rest for the next claim.
func TestGatherSaturated(t *testing.T) {
	t.Parallel()
	w := &Worker{slots: make(chan struct{}, 4)}
	for range 4 {
		w.slots <- struct{}{} // every slot busy
	}
	sub := &queue.Subscription{Queue: "q", C: make(chan queue.Notification, 16)}
	for id := int64(3); id <= 6; id++ {
		sub.C <- queue.Notification{ID: id}
	}
	// Two handlers finish: their slots free while the claim gathers.
	<-w.slots
	<-w.slots
	batch, next := w.gatherSaturated(t.Context(), sub, []queue.Notification{{ID: 1}}, &queue.Notification{ID: 2})
	require.Equal(t, []queue.Notification{{ID: 1}, {ID: 2}, {ID: 3}}, batch, "one wake-up per freed slot, in order")
	require.Equal(t, &queue.Notification{ID: 4}, next, "the first wake-up without a slot is kept for the next claim")
	require.Len(t, w.slots, 4, "the batch holds the freed slots")
	require.Len(t, sub.C, 2)

	// A backlog that runs out before the slots do: nothing is left over.
	<-w.slots
	<-w.slots
	n := <-sub.C
	batch, next = w.gatherSaturated(t.Context(), sub, []queue.Notification{*next}, &n)
	require.Equal(t, []queue.Notification{{ID: 4}, {ID: 5}, {ID: 6}}, batch)
	require.Nil(t, next)
	require.Len(t, w.slots, 4)

	// No slot frees: the claim goes with what it has once the wait ends.
	batch, next = w.gatherSaturated(t.Context(), sub, []queue.Notification{{ID: 7}}, &queue.Notification{ID: 8})
	require.Equal(t, []queue.Notification{{ID: 7}}, batch)
	require.Equal(t, &queue.Notification{ID: 8}, next)
}

// A backlogged poll takes the slots that free while it gathers, up to n.
func TestGatherSlots(t *testing.T) {
	t.Parallel()
	w := &Worker{slots: make(chan struct{}, 4)}
	for range 4 {
		w.slots <- struct{}{}
	}
	<-w.slots
	<-w.slots
	require.Equal(t, 2, w.gatherSlots(t.Context(), 3), "both freed slots, then the wait ends")
	require.Len(t, w.slots, 4)
	<-w.slots
	<-w.slots
	<-w.slots
	require.Equal(t, 2, w.gatherSlots(t.Context(), 2), "no more than asked")
	require.Len(t, w.slots, 3)
}
