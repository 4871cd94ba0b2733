package relay

import (
	"sync"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked of each pipe, as Go's own splice does. On
// loopback, relay CPU per byte fell steeply with size: about 16 Gbit/s per
// core with 64 KiB pipes, 27 with 256 KiB, 33 with 1 MiB. Pipes of an
// unprivileged user share fs.pipe-user-pages-soft (64 MiB by default, so 64
// such pipes in use at once); past it the kernel hands out small pipes:
// slower, still correct.
const pipeSize = 1 << 20

// maxIdlePipes bounds the pipes kept for reuse; more are closed when given
// back. An empty pipe holds no pages, only its two descriptors and slot
// array, but it still counts against the per-user pipe budget.
const maxIdlePipes = 16

// pipe is a kernel pipe used as the splice buffer between two sockets.
type pipe struct {
	r, w int
	size int // capacity the kernel granted
}

// pipePool lends pipes to connections only while their bytes are in flight,
// so an idle connection holds none.
type pipePool struct {
	mu   sync.Mutex
	free []*pipe
	best int // largest capacity granted so far
	lent int // pipes held by connections
}

var pipes pipePool

// get returns an empty pipe, reused or new.
func (pp *pipePool) get() (*pipe, error) {
	pp.mu.Lock()
	pp.lent++
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free[n-1] = nil
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	p, err := newPipe()
	pp.mu.Lock()
	if err == nil {
		pp.best = max(pp.best, p.size)
	} else {
		pp.lent--
	}
	pp.mu.Unlock()
	return p, err
}

// put takes back an empty pipe. A pipe the kernel kept small (the user's
// pipe budget was spent) is not kept: a later one may be granted in full.
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	pp.lent--
	if len(pp.free) < maxIdlePipes && p.size >= pp.best {
		pp.free = append(pp.free, p)
		pp.mu.Unlock()
		return
	}
	pp.mu.Unlock()
	p.close()
}

// discard closes a lent pipe that still holds bytes nobody will read.
func (pp *pipePool) discard(p *pipe) {
	pp.mu.Lock()
	pp.lent--
	pp.mu.Unlock()
	p.close()
}

// counts reports the pipes waiting in the pool and those lent out.
func (pp *pipePool) counts() (idle, lent int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return len(pp.free), pp.lent
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	p := &pipe{r: fds[0], w: fds[1], size: 64 << 10}
	// Growing may be refused (per-user limit); the default size still works.
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		p.size = n
	} else if n, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil {
		p.size = n
	}
	return p, nil
}

// close discards a pipe, with whatever it still holds.
func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}
