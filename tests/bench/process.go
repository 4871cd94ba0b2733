package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a proxy under test, run as a child so its CPU, threads and
// memory are its own.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// startProcess starts argv pinned to cpu (-1: unpinned) with its output in
// logPath. The child dies with the bench (Pdeathsig) and sits in its own
// process group, so Ctrl-C reaches only the bench, which stops it in order.
func startProcess(name string, cpu int, logPath string, env []string, argv ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startPinned(cmd, cpu); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks politely, then kills: nothing outlives the bench.
func (p *process) stop() {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the last lines of the process output, for error messages.
// Caddy's info and debug lines are skipped: they say nothing about a failure.
func (p *process) logTail(lines int) string {
	b, _ := os.ReadFile(p.log)
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, `"level":"info"`) && !strings.Contains(l, `"level":"debug"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > lines {
		keep = keep[len(keep)-lines:]
	}
	if len(keep) == 0 || keep[0] == "" {
		return "(no warning or error in " + p.log + ")"
	}
	return strings.Join(keep, "\n")
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
