package relay

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the user-space copy. A read first lands in a small per-direction
// probe buffer, so an idle connection holds no large buffer; only a read that
// fills it takes a pooled burst buffer for the reads that follow.
const (
	probeSize = 512
	burstSize = 32 << 10
)

var burstPool = sync.Pool{New: func() any { b := make([]byte, burstSize); return &b }}

// copier relays between two arbitrary net.Conns with one extra goroutine.
type copier struct {
	outcome
	idle  idleClock
	timer *time.Timer // guarded by outcome.mu until set
}

// joinCopy is the portable relay: one goroutine per direction.
func joinCopy(client, target net.Conn, o *Options) error {
	r := &copier{outcome: outcome{client: client, target: target}}
	if o.IdleTimeout > 0 {
		r.idle.start(o.IdleTimeout)
		// One timer per connection, re-armed only when it fires.
		r.mu.Lock()
		r.timer = time.AfterFunc(o.IdleTimeout, r.checkIdle)
		r.mu.Unlock()
		defer r.timer.Stop() // after finish: checkIdle re-arms no more
	}
	var wg sync.WaitGroup
	wg.Add(1)
	toTarget := o.ToTarget
	go func() {
		defer wg.Done()
		r.pump(target, client, toTarget)
	}()
	r.pump(client, target, o.ToClient)
	wg.Wait()
	return r.finish()
}

// checkIdle runs when the idle timer fires.
func (r *copier) checkIdle() {
	if d := r.idle.remaining(); d > 0 {
		r.mu.Lock()
		if !r.closed {
			r.timer.Reset(d)
		}
		r.mu.Unlock()
		return
	}
	r.fail(ErrIdleTimeout)
}

// pump copies src to dst until EOF, then half-closes dst.
func (r *copier) pump(dst, src net.Conn, count *atomic.Int64) {
	probe := make([]byte, probeSize)
	buf := probe
	var burst *[]byte
	defer func() {
		if burst != nil {
			burstPool.Put(burst)
		}
	}()
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			r.idle.touch()
			w, werr := dst.Write(buf[:n])
			add(count, w)
			if werr != nil {
				r.fail(werr)
				return
			}
		}
		if rerr == io.EOF {
			r.closeWrite(dst)
			return
		}
		if rerr != nil {
			r.fail(rerr)
			return
		}
		switch {
		case n == len(buf) && burst == nil:
			burst = burstPool.Get().(*[]byte)
			buf = *burst
		case n < len(buf) && burst != nil:
			burstPool.Put(burst)
			burst, buf = nil, probe
		}
	}
}

// closeWrite passes an EOF on to dst. A connection without a write half to
// close cannot carry the EOF, so the relay ends there.
func (r *copier) closeWrite(dst net.Conn) {
	cw, ok := dst.(interface{ CloseWrite() error })
	if !ok {
		r.fail(nil)
		return
	}
	if err := cw.CloseWrite(); err != nil {
		r.fail(err)
	}
}
