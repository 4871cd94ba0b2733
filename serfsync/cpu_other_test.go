//go:build !unix

package serfsync

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
