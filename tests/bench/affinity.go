//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuSet is the kernel's cpu_set_t (1024 CPUs).
type cpuSet [16]uint64

func (s *cpuSet) set(cpu int)      { s[cpu/64] |= 1 << (uint(cpu) % 64) }
func (s *cpuSet) has(cpu int) bool { return s[cpu/64]&(1<<(uint(cpu)%64)) != 0 }

func oneCPU(cpu int) cpuSet {
	var s cpuSet
	s.set(cpu)
	return s
}

// setAffinity pins one thread (tid 0: the calling thread).
func setAffinity(tid int, s cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(s), uintptr(unsafe.Pointer(&s)))
	if e != 0 {
		return e
	}
	return nil
}

func getAffinity(tid int) (cpuSet, error) {
	var s cpuSet
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(s), uintptr(unsafe.Pointer(&s)))
	if e != 0 {
		return s, e
	}
	return s, nil
}

// allowedCPUs lists the CPUs this process may run on, in order.
func allowedCPUs() []int {
	s, err := getAffinity(0)
	if err != nil {
		return []int{0}
	}
	var cpus []int
	for c := 0; c < len(s)*64; c++ {
		if s.has(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// pinProcess moves every thread of pid to cpu.
func pinProcess(pid, cpu int) error {
	return setProcessAffinity(pid, oneCPU(cpu))
}

// setProcessAffinity gives every thread of pid the mask s. Threads created
// later inherit the mask of their creator, so a second pass catches any
// thread born during the first.
func setProcessAffinity(pid int, s cpuSet) error {
	for pass := 0; pass < 2; pass++ {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return fmt.Errorf("pin pid %d: %w", pid, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := setAffinity(tid, s); err != nil && err != syscall.ESRCH {
				return fmt.Errorf("set affinity of pid %d thread %d: %w", pid, tid, err)
			}
		}
	}
	return nil
}

// startPinned starts cmd with its affinity set from birth: a forked child
// inherits the mask of the forking thread, so the proxy never runs a single
// instruction on the load core.
func startPinned(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := getAffinity(0)
	if err != nil {
		return err
	}
	if err := setAffinity(0, oneCPU(cpu)); err != nil {
		return err
	}
	startErr := cmd.Start()
	if err := setAffinity(0, old); err != nil {
		// A thread left on the proxy core would skew every result.
		panic(fmt.Sprintf("restore thread affinity: %v", err))
	}
	return startErr
}

// cpusAllowedList reads the affinity the kernel reports for pid, e.g. "0".
func cpusAllowedList(pid int) string {
	return procStatusField(pid, "Cpus_allowed_list")
}
