package bench

import (
	"syscall"
	"time"
)

// shortSleep sleeps for d with microsecond precision. time.Sleep rounds
// short sleeps up to about a millisecond on Linux (the runtime's timers
// wait in epoll with millisecond resolution), which would turn a 200 µs poll
// period into ~1.1 ms; nanosleep(2) keeps it near d without spinning a core.
func shortSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		if err := syscall.Nanosleep(&ts, &rem); err != syscall.EINTR {
			return
		}
		ts = rem // interrupted (e.g. by the runtime's preemption signal)
	}
}
