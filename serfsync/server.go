package serfsync

import (
	"net"
	"time"

	"go.uber.org/zap"
)

// serveConn answers one sync or probe request on a state channel stream. It runs in
// the transport's routing goroutine, owns conn and never blocks on the
// worker. Until the request opens, the stream is pending (see
// pendingStreams) and reads no more than a legitimate first request.
func (a *Agent) serveConn(conn net.Conn) {
	if !a.track(conn) {
		return
	}
	defer a.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
	h, err := a.keys.readClientHello(conn)
	if err != nil {
		a.refuse(conn, err)
		return
	}
	nonceS, err := serverHello(conn)
	if err != nil {
		return
	}
	frame, err := readFrame(conn, maxRequestFrame)
	if err != nil {
		a.refuse(conn, err)
		return
	}
	s, p, err := a.keys.serverOpen(h.nonce, nonceS, frame)
	if err != nil {
		a.refuse(conn, err)
		return
	}
	if pc, ok := conn.(*peekedConn); ok {
		pc.proven()
	}
	if len(p) > 0 && p[0] == msgProbeRequest {
		req, err := decodeProbeRequest(p)
		if err != nil {
			a.stats.inc("drop_decode")
			return
		}
		ans := a.answerProbe(req)
		_ = writeFrame(conn, s.seal(ans.encode()))
		return
	}
	if len(p) > 0 && p[0] == msgCarryRequest && (a.cfg.hooks == nil || !a.cfg.hooks.noCarry) {
		a.serveCarry(conn, s, p)
		return
	}
	req, err := decodeSyncRequest(p)
	if err != nil {
		a.stats.inc("drop_decode")
		return
	}
	a.stats.inc("sync_in")
	a.mu.Lock()
	ans := a.core.answer(req)
	a.mu.Unlock()
	a.kick()
	_ = writeFrame(conn, s.seal(ans.encode()))
}

// refuse counts and logs a stream this node will not talk to.
func (a *Agent) refuse(conn net.Conn, err error) {
	if err == errAuth {
		a.stats.inc("auth_fail")
		a.stats.sampled(a.logger, zap.WarnLevel, "refused", "refused a state channel peer: wrong fleet key, label or encryption mode",
			zap.Stringer("remote", conn.RemoteAddr()))
		return
	}
	if err == errFrame {
		a.stats.inc("drop_size")
	}
	if ce := a.logger.Check(zap.DebugLevel, "state channel stream failed"); ce != nil {
		ce.Write(zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
	}
}
