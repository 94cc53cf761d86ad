package apitest

import (
	"context"
	"slices"

	"github.com/taskerhq/tasker/client"
)

// SetQueues sets what Queues reports.
func (b *Backend) SetQueues(queues ...client.QueueInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queues = slices.Clone(queues)
}

// SetWorkers sets the live workers Workers reports.
func (b *Backend) SetWorkers(workers ...client.WorkerInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.workers = slices.Clone(workers)
}

// Queues implements api.Backend.
func (b *Backend) Queues(context.Context) (*client.QueueList, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &client.QueueList{Queues: append([]client.QueueInfo{}, b.queues...)}, b.errs["Queues"]
}

// Workers implements api.Backend: the namespaces are the templates'.
func (b *Backend) Workers(context.Context) (*client.WorkerList, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := map[string]int{}
	for _, w := range b.workers {
		for _, ns := range w.Namespaces {
			live[ns]++
		}
	}
	var names []string
	for _, t := range b.templates {
		if !slices.Contains(names, t.Namespace) {
			names = append(names, t.Namespace)
		}
	}
	slices.Sort(names)
	out := &client.WorkerList{Workers: append([]client.WorkerInfo{}, b.workers...), Namespaces: []client.NamespaceWorkers{}}
	for _, ns := range names {
		out.Namespaces = append(out.Namespaces, client.NamespaceWorkers{Namespace: ns, LiveWorkers: live[ns]})
	}
	return out, b.errs["Workers"]
}
