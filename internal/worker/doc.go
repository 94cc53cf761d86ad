// Package worker is the worker runtime: it is woken by NOTIFY (or finds
// steps by polling), claims a step under a lease, hydrates its context, hands
// it to a Dispatcher (Go handlers in-process, or a foreign runtime such as the
// Ruby bridge), and submits the result to orchestration in one statement.
// Leases are kept alive by a heartbeat while handlers run; a step whose
// worker died is reclaimed by another worker once its lease expires.
package worker
