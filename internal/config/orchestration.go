package config

import "time"

// Orchestration configures the orchestrators of `tasker server` and
// `tasker dev`: how long finished work is kept and how often the background
// loops look for work that is due.
type Orchestration struct {
	// Retention is how long a finished task (complete, error, cancelled,
	// resolved manually), with its steps and history, and an archived queue
	// message are kept. Negative keeps everything; zero is refused (it would
	// delete every task the moment it finishes).
	Retention Duration `toml:"retention_seconds"`
	// PruneInterval is how often an orchestrator deletes what has outlived
	// Retention.
	PruneInterval Duration `toml:"prune_interval_seconds"`
	// PruneBatch is how many rows one pruning transaction deletes, so that
	// pruning never holds many locks or a long transaction.
	PruneBatch int `toml:"prune_batch"`
	// ScheduleInterval is how often due cron schedules are looked for: a
	// firing happens within this much of its time.
	ScheduleInterval Duration `toml:"schedule_interval_seconds"`
}

// minLoopInterval is the shortest interval of an orchestrator's loops, the
// same bound the orchestrator itself enforces.
const minLoopInterval = 10 * time.Millisecond

func defaultOrchestration() Orchestration {
	return Orchestration{
		Retention:        Duration(7 * 24 * time.Hour),
		PruneInterval:    Duration(time.Minute),
		PruneBatch:       500,
		ScheduleInterval: Duration(time.Second),
	}
}

func (v *validator) orchestration(o Orchestration) {
	if o.Retention == 0 {
		v.bad("orchestration.retention_seconds", "0 would delete every task as it finishes; give a number of seconds greater than 0, or -1 to keep everything")
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"orchestration.prune_interval_seconds", o.PruneInterval}, {"orchestration.schedule_interval_seconds", o.ScheduleInterval}} {
		if time.Duration(d.val) < minLoopInterval {
			v.bad(d.key, "%s is less than 0.01 seconds", d.val)
		}
	}
	v.atLeastOne("orchestration.prune_batch", o.PruneBatch)
}
