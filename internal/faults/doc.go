// Package faults holds the fault-injection suite: the real tasker binary
// (server and worker processes) against a PostgreSQL cluster the suite
// controls, under a stream of task creations from retrying clients, while
// processes are killed, the database restarts, stops or drops every
// connection, and the telemetry collector disappears. Its tests assert that
// every request is exactly one task and every task completes, and report how
// often handlers ran again and how long recovery took (docs/reliability.md).
package faults
