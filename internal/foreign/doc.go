// Package foreign runs a Tasker worker whose step handlers live in another
// language runtime, reached through the C ABI of ffi/ (the Ruby worker in
// workers/ruby is its user).
//
// The Go side keeps everything that makes a step safe and observable: the
// claim, the lease heartbeat, the step's timeout, the result submission, the
// worker's spans and the process's telemetry. A Dispatcher hands each claimed
// step to the foreign runtime, which pulls it with Bridge.Next, runs its
// handler and answers with Bridge.Complete; until then the step is in flight
// in the Go worker, so its lease keeps being renewed.
//
// The foreign runtime logs and traces through the same Bridge: Log writes
// through the process's Go logger (same format, same OTLP log export) and
// StartSpan/EndSpan make spans under the step's worker.invoke_handler span,
// so a foreign handler's records join the task's one trace. Steps and spans
// are referred to by opaque handles (uint64) because the other side of the
// ABI cannot hold Go pointers.
package foreign
