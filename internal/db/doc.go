// Package db owns the PostgreSQL side of Tasker: the connection pool, the
// embedded migrations, and every SQL statement the engine runs but the
// queue's own (internal/queue calls the tasker.queue_* functions), one file
// per table family (task creation, task locks, operator actions, schedules,
// templates, overview reads, retention). Services hold the decisions and
// call these functions with parameter structs; the calls of SQL functions
// and the statements of the hot path are timed and observed the same way
// (Funcs, Call).
package db
