//go:build linux

package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Run calls f on an OS thread inside the host's namespace: sockets f opens
// belong to that namespace and may be used from any goroutine afterwards.
// The thread returns to its namespace afterwards rather than exiting: a
// child process started from it with Pdeathsig would die with it.
func (h *Host) Run(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/run/netns/"+h.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter namespace %s: %w", h.NS, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // otherwise the thread exits with the goroutine
		}
		done <- err
	}()
	return <-done
}

// Dial connects to addr from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Run(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// DialTimeout is Dial bounded by d.
func (h *Host) DialTimeout(network, addr string, d time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.Dial(ctx, network, addr)
}

// Listen opens a listener inside the host's namespace, with SO_REUSEPORT
// as application instances sharing a port have.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Run(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	return ln, err
}

// Neigh is the MAC of the host's neighbour entry for ip on Dev, "" when
// it has none (or it is incomplete or failed).
func (h *Host) Neigh(ip string) (string, error) {
	out, err := exec.Command("ip", "-n", h.NS, "-j", "neigh", "show", ip, "dev", Dev).Output()
	if err != nil {
		return "", fmt.Errorf("ip neigh in %s: %w", h.NS, err)
	}
	var rows []struct {
		Lladdr string `json:"lladdr"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return "", fmt.Errorf("ip neigh in %s: %w: %s", h.NS, err, out)
	}
	if len(rows) == 0 {
		return "", nil
	}
	return rows[0].Lladdr, nil
}

// Addrs lists the host's addresses on Dev as prefixes ("192.0.2.100/32").
func (h *Host) Addrs() ([]string, error) {
	out, err := exec.Command("ip", "-n", h.NS, "-j", "addr", "show", "dev", Dev).Output()
	if err != nil {
		return nil, fmt.Errorf("ip addr in %s: %w", h.NS, err)
	}
	var rows []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("ip addr in %s: %w: %s", h.NS, err, out)
	}
	var list []string
	for _, r := range rows {
		for _, a := range r.AddrInfo {
			list = append(list, fmt.Sprintf("%s/%d", a.Local, a.Prefixlen))
		}
	}
	return list, nil
}

// Holds reports whether the host has prefix ("192.0.2.100/32") on Dev.
func (h *Host) Holds(prefix string) bool {
	list, _ := h.Addrs()
	for _, a := range list {
		if a == prefix {
			return true
		}
	}
	return false
}

func readMAC(ns string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", Dev).Output()
	if err != nil {
		return "", fmt.Errorf("ip link in %s: %w", ns, err)
	}
	var rows []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 {
		return "", fmt.Errorf("ip link in %s: %s", ns, out)
	}
	return rows[0].Address, nil
}
