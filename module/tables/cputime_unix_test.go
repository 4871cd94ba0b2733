//go:build unix

package tables

import "syscall"

// cpuTime is the CPU time the process used so far, in nanoseconds, every
// thread included (the GC's too), or -1 when the system does not say.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
