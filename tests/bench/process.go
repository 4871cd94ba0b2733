//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// startProcess starts a proxy pinned to cpu (-1: unpinned), so its CPU,
// threads and memory are its own.
func startProcess(name string, cpu int, logPath string, env []string, argv ...string) (*harness.Process, error) {
	return harness.StartProcess(name, logPath, env, func(c *exec.Cmd) error { return startPinned(c, cpu) }, argv...)
}

// procStatusField reads one field of /proc/<pid>/status.
func procStatusField(pid int, field string) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// rssKB is the resident set of pid in KiB (VmRSS).
func rssKB(pid int) (float64, error) {
	v := strings.TrimSuffix(procStatusField(pid, "VmRSS"), " kB")
	kb, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("VmRSS of pid %d: %q", pid, v)
	}
	return kb, nil
}

// fdCount counts the open fds of pid and the distinct kernel pipes among them.
func fdCount(pid int) (fds, pipes int, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fds++
		if strings.HasPrefix(l, "pipe:") {
			seen[l] = true
		}
	}
	return fds, len(seen), nil
}

// kernelKB is the kernel's unreclaimable slab, system-wide: sockets, pipes,
// open files, epoll items. Reclaimable caches (dentries, inodes, including
// those /proc reads create) are left out, being noise here.
func kernelKB() float64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("SUnreclaim:")); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(string(v), " kB")), 64)
			return kb
		}
	}
	return 0
}
