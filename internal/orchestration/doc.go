// Package orchestration is Tasker's orchestration core: the TaskInitializer
// (task creation and the first enqueue), the StepEnqueuer (discovery of ready
// steps), the ResultProcessor (applying worker results, retries with
// backoff), the TaskFinalizer, the readiness poller that resumes tasks whose
// retry backoff elapsed, and the fallback poller for missed notifications.
//
// Every decision about one task is made inside one transaction holding that
// task's row lock, so any number of orchestrators can share a database.
package orchestration
