//go:build !linux

package bench

import "time"

// shortSleep sleeps for d; see sleep_linux.go for why Linux differs.
func shortSleep(d time.Duration) { time.Sleep(d) }
