package serfsync

import (
	"fmt"
	"os"
	"time"
)

// cpuWaited is how long this process's threads have waited on a run
// queue: runnable, but kept off the CPU (by other processes, on a host
// with no core to spare). It sums each thread's second schedstat field;
// ok is false when the kernel does not show it.
func cpuWaited() (d time.Duration, ok bool) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err != nil {
			return 0, false
		}
		d += time.Duration(wait)
		ok = true
	}
	return d, ok
}
