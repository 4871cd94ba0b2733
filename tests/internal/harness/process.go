//go:build linux

package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a child process of a measurement command: Caddy, HAProxy.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // its stdout and stderr

	done chan struct{}
	err  error // exit status, valid once done is closed
}

// StartProcess runs argv with its output appended to logPath. The child
// dies with the command (Pdeathsig) and sits in its own process group, so
// Ctrl-C reaches only the command, which stops its children in order.
// start starts the prepared command (nil: cmd.Start), e.g. pinned to a CPU.
func StartProcess(name, logPath string, env []string, start func(*exec.Cmd) error, argv ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Alive reports whether the child still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the exit status once the child has exited.
func (p *Process) Err() error {
	if p.Alive() {
		return nil
	}
	return p.err
}

// Signal sends sig unless the child has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Alive() {
		return fmt.Errorf("process %d already exited (%v)", p.Pid(), p.err)
	}
	return p.Cmd.Process.Signal(sig)
}

// Stop asks politely, then kills: nothing outlives the command.
func (p *Process) Stop() {
	if !p.Alive() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	p.Reap(3 * time.Second)
}

// Reap waits for a signalled child to exit, killing it after d, so its
// ports are free for the next start.
func (p *Process) Reap(d time.Duration) {
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// LogTail returns the last warning and error lines of a Caddy or HAProxy
// log for an error message; Caddy's info and debug lines say nothing about
// a failure.
func LogTail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" && !strings.Contains(l, `"level":"info"`) && !strings.Contains(l, `"level":"debug"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > lines {
		keep = keep[len(keep)-lines:]
	}
	if len(keep) == 0 {
		return "(no warning or error in " + path + ")"
	}
	return strings.Join(keep, "\n")
}
