package relay

import (
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// turnReads bounds the reads one direction makes before the other
// direction gets its turn, so a fast sender cannot starve the reply.
const turnReads = 4

// copyMax is the most a read copies through the poller's buffer instead
// of splicing: small messages cost two calls instead of four through a
// pipe. It fits in the smallest pipe the kernel grants (two pages), which
// takes what the destination refused.
const copyMax = 8 << 10

// pumpAll pumps both directions, then fails the relay if a socket hung up
// on a direction that still needs it.
func (s *splicer) pumpAll() error {
	for i := range s.flows {
		if f := &s.flows[i]; !f.done {
			if err := s.pump(f); err != nil {
				return err
			}
		}
	}
	if s.moved {
		s.moved = false
		s.idle.touch()
	}
	for i := range s.flows {
		if err := s.listen(&s.flows[i]); err != nil {
			return err
		}
	}
	// A socket that hung up before we closed its write half was reset or
	// timed out: the direction into it can never finish.
	for i := range s.sides {
		if sd := &s.sides[i]; sd.broken && !s.flows[1-i].done {
			return sd.error("", sockError(sd.fd))
		}
	}
	return nil
}

// pump moves one direction until it blocks or its turn is over.
func (s *splicer) pump(f *flow) error {
	if len(f.pre) > 0 {
		if err := s.writePre(f); err != nil || len(f.pre) > 0 {
			return err
		}
	}
	reads := 0
	for progressed := true; progressed; {
		progressed = false
		if f.inPipe > 0 && f.dst.writable {
			n, err := splice(f.p.r, f.dst.fd, f.inPipe)
			switch {
			case err == unix.EAGAIN:
				f.dst.writable = false
			case err != nil:
				return f.dst.error("splice", err)
			case n == 0: // cannot happen with bytes in the pipe; never spin on it
				return f.dst.error("splice", io.ErrNoProgress)
			default:
				f.inPipe -= n
				add(f.count, n)
				s.moved = true
				f.full = false
				progressed = true
			}
		}
		if f.inPipe == 0 && f.eof {
			f.done = true
			s.givePipe(f)
			if s.finished() {
				// Both peers sent their FIN and dst's input was read to
				// the end: closing it, right after, sends the last FIN
				// after its bytes, as shutdown would.
				return nil
			}
			if err := shutdownWrite(f.dst.fd); err != nil {
				return f.dst.error("shutdown", err)
			}
			return nil
		}
		if f.eof || !f.src.readable || f.full || reads == turnReads {
			continue
		}
		reads++
		var err error
		if f.inPipe == 0 && f.dst.writable && !f.bulk {
			progressed, err = s.copyOnce(f)
		} else {
			progressed, err = s.spliceIn(f)
		}
		if err != nil {
			return err
		}
	}
	if f.inPipe == 0 && !f.src.readable {
		s.givePipe(f)
	}
	return nil
}

// writePre writes the prefetched bytes the target did not take at once;
// nothing is read from the client before they are gone.
func (s *splicer) writePre(f *flow) error {
	for len(f.pre) > 0 && f.dst.writable {
		n, err := send(f.dst.fd, f.pre)
		switch {
		case err == unix.EAGAIN:
			f.dst.writable = false
		case err != nil:
			return f.dst.error("write", err)
		default:
			add(f.count, n)
			s.moved = true
			f.pre = f.pre[n:]
		}
	}
	return nil
}

// copyOnce reads what src holds into the poller's buffer and writes it to
// dst; what dst refuses goes into a pipe, to be spliced when dst drains.
// A read that fills the buffer starts a bulk burst, spliced.
func (s *splicer) copyOnce(f *flow) (progressed bool, err error) {
	buf := s.p.scratch[:]
	n, err := recv(f.src.fd, buf)
	switch {
	case err == unix.EAGAIN:
		f.src.readable = false
		return false, nil
	case err != nil:
		return false, f.src.error("read", err)
	case n == 0:
		f.eof = true
		return true, nil
	}
	w, err := send(f.dst.fd, buf[:n])
	switch {
	case err == unix.EAGAIN:
		w = 0
		f.dst.writable = false
	case err != nil:
		return false, f.dst.error("write", err)
	}
	if w > 0 {
		add(f.count, w)
		s.moved = true
	}
	if w < n {
		if err := s.stash(f, buf[w:n]); err != nil {
			return false, err
		}
	}
	if n == len(buf) {
		f.bulk = true
		f.burst = n
	} else if !f.src.rdhup {
		// Edge-triggered: a short read drained the socket, and whatever
		// arrives later brings its own event. A pending FIN brings none.
		f.src.readable = false
	}
	return true, nil
}

// stash puts bytes the destination refused into a pipe, which always has
// room for copyMax bytes when empty.
func (s *splicer) stash(f *flow, b []byte) error {
	if f.p == nil {
		p, err := pipes.get()
		if err != nil {
			return fmt.Errorf("relay: pipe: %w", err)
		}
		f.p = p
	}
	for len(b) > 0 {
		n, err := write(f.p.w, b)
		if err != nil {
			return fmt.Errorf("relay: pipe: write: %w", err)
		}
		f.inPipe += n
		b = b[n:]
	}
	return nil
}

// spliceIn splices what src holds into the flow's pipe.
func (s *splicer) spliceIn(f *flow) (progressed bool, err error) {
	if f.p == nil {
		p, err := pipes.get()
		if err != nil {
			return false, fmt.Errorf("relay: pipe: %w", err)
		}
		f.p = p
		f.burst = 0
	}
	n, err := splice(f.src.fd, f.p.w, f.p.size)
	switch {
	case err == unix.EAGAIN:
		// Either the socket is drained or the pipe is full; only an
		// empty pipe tells them apart.
		if f.inPipe == 0 {
			f.src.readable = false
			f.bulk = f.burst >= copyMax
		} else {
			f.full = true
		}
		return false, nil
	case err != nil:
		return false, f.src.error("splice", err)
	case n == 0:
		f.eof = true
	default:
		f.inPipe += n
		f.burst += n
	}
	return true, nil
}

// listen registers input events for a direction's source only when they
// can matter: not while its bytes wait in the pipe for the output. Putting
// them back re-checks readiness, so no arrival is missed.
func (s *splicer) listen(f *flow) error {
	hear := !(f.src.readable && f.inPipe > 0)
	if f.done || hear == f.src.hearIn {
		return nil
	}
	ev := s.event(f.src.index)
	if !hear {
		ev.Events = sideEvents
	}
	if e := epollCtl(s.p.epfd, unix.EPOLL_CTL_MOD, f.src.fd, &ev); e != 0 {
		return f.src.error("epoll_ctl", e)
	}
	f.src.hearIn = hear
	return nil
}

// givePipe returns an empty pipe to the pool.
func (s *splicer) givePipe(f *flow) {
	if f.p != nil && f.inPipe == 0 {
		pipes.put(f.p)
		f.p = nil
	}
}

// busy reports whether a direction can move without waiting for an event.
func (s *splicer) busy() bool {
	for i := range s.flows {
		f := &s.flows[i]
		if len(f.pre) > 0 {
			if f.dst.writable {
				return true
			}
			continue
		}
		if !f.done && (f.src.readable && !f.eof && !f.full || f.inPipe > 0 && f.dst.writable) {
			return true
		}
	}
	return false
}

var sideNames = [2]string{"client", "target"}

// error names the side and the call that failed.
func (sd *side) error(call string, err error) error {
	if call == "" {
		return fmt.Errorf("relay: %s: %w", sideNames[sd.index], err)
	}
	return fmt.Errorf("relay: %s: %s: %w", sideNames[sd.index], call, err)
}

// sockError is the pending error of a socket that hung up.
func sockError(fd int) error {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
		return syscall.Errno(v)
	}
	return syscall.ECONNRESET
}
