//go:build !linux

package serfsync

import "time"

// cpuWaited is not measured here.
func cpuWaited() (time.Duration, bool) { return 0, false }
