package relay

import (
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// turnReads bounds the splices one direction makes before the other
// direction gets its turn, so a fast sender cannot starve the reply.
const turnReads = 4

// turn holds both descriptors (so a concurrent Close cannot recycle them)
// and pumps both directions.
func (s *splicer) turn() error {
	s.turnErr = nil
	if err := s.sides[0].rc.Control(s.withClient); err != nil {
		return err
	}
	return s.turnErr
}

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
			if err := unix.Shutdown(f.dst.fd, unix.SHUT_WR); err != nil {
				return f.dst.error("shutdown", err)
			}
			return nil
		}
		if !f.eof && f.src.readable && !f.full && reads < turnReads {
			if f.p == nil {
				p, err := pipes.get()
				if err != nil {
					return fmt.Errorf("relay: pipe: %w", err)
				}
				f.p = p
			}
			reads++
			n, err := splice(f.src.fd, f.p.w, f.p.size)
			switch {
			case err == unix.EAGAIN:
				// Either the socket is drained or the pipe is full; only an
				// empty pipe tells them apart.
				if f.inPipe == 0 {
					f.src.readable = false
				} else {
					f.full = true
				}
			case err != nil:
				return f.src.error("splice", err)
			case n == 0:
				f.eof = true
				progressed = true
			default:
				f.inPipe += n
				progressed = true
			}
		}
	}
	if f.inPipe == 0 && !f.src.readable {
		s.givePipe(f)
	}
	return nil
}

// listen registers input events for a direction's source only when they
// can matter: not while its bytes wait in the pipe for the output. Putting
// them back re-checks readiness, so no arrival is missed.
func (s *splicer) listen(f *flow) error {
	hear := !(f.src.readable && f.inPipe > 0)
	if f.done || hear == f.src.hearIn {
		return nil
	}
	ev := unix.EpollEvent{Events: sideEvents, Fd: int32(f.src.index)}
	if hear {
		ev.Events |= inEvents
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, f.src.fd, &ev); err != nil {
		return f.src.error("epoll_ctl", err)
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

// splice moves up to n bytes without blocking. SPLICE_F_MOVE is only a hint.
func splice(from, to, n int) (int, error) {
	for {
		m, err := unix.Splice(from, nil, to, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err != unix.EINTR {
			return int(m), err
		}
	}
}

// sockError is the pending error of a socket that hung up.
func sockError(fd int) error {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
		return syscall.Errno(v)
	}
	return syscall.ECONNRESET
}
