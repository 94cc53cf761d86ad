// Package bench holds Tasker's benchmarks (goals in docs/benchmarks.md): the
// programs behind `tasker bench`, not Go tests. Each one measures a path of
// the real engine against a real PostgreSQL, reports p50/p95/p99 from
// HdrHistogram (1 µs .. 60 s, 3 significant digits), and records the
// machine, the PostgreSQL settings and the commit.
//
// Generate builds a synthetic dataset (generated templates of four shapes,
// tasks in a mix of states with the steps, history and queue messages each
// state implies) with COPY. SQL times every hot-path SQL function (the
// SQLCases table) as that dataset grows, and CAS transition contention.
// Explain captures the plans of the statements inside those functions with
// auto_explain and reports what looks wrong. CriticalPaths times the
// engine's critical paths. Suite runs the last three and WriteReport turns
// the results into Markdown with SVG charts.
//
// E2E is the closed-loop create → complete benchmark: one task in flight at a
// time, created in-process with orchestration.Service.CreateTask on an engine
// started the way `tasker dev` starts it (orchestration plus a Go worker with
// the example handlers). Each task gets two latencies:
//
//   - client: from just before CreateTask to the moment the completing
//     transaction has committed. By default ("hook") that moment is taken
//     in-process, from the orchestrator's "task.completed" lifecycle record,
//     which it emits right after the commit; no polling load is added. With
//     Completion "poll" a dedicated connection reads the task's state every
//     PollInterval instead (the load that adds is part of what is measured).
//   - db: tasks.completed_at − tasks.created_at as PostgreSQL recorded them
//     (the create transaction's start to the clock inside the completing
//     transaction, before its commit), exact and independent of the client.
//
// After the runs, the step and task transition history of the measured tasks
// gives the per-hop breakdown (enqueue → claim → result submitted →
// complete → next enqueue).
//
// Throughput pushes a load (closed, burn-down or continuous) through a
// topology of orchestrators and workers (Topology: separate engines sharing
// the database) under each telemetry mode, and reports steps per second.
// LatencyUnderLoad offers tasks open loop at fixed rates and reports each
// rate's achieved rate, create → complete percentiles and saturation.
package bench
