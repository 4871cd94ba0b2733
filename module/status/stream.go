package status

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// keepalive is how often an unchanged stream sends a comment, so proxies
// and browsers keep it open.
const keepalive = 15 * time.Second

// stream sends a snapshot as a server-sent event whenever the tables
// changed, until the client goes or this config stops (the browser then
// reconnects to the new one).
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	tick := time.NewTicker(time.Duration(h.Interval))
	defer tick.Stop()
	var last []byte
	lastSent := time.Now()
	for {
		snap, err := h.snapshot()
		if err != nil {
			h.logger.Error("status snapshot", zap.Error(err))
			return nil
		}
		var msg []byte
		switch {
		case !bytes.Equal(snap, last):
			msg = fmt.Appendf(nil, "data: %s\n\n", snap)
			last = snap
		case time.Since(lastSent) >= keepalive:
			msg = []byte(": keepalive\n\n")
		}
		if msg != nil {
			if _, err := w.Write(msg); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			lastSent = time.Now()
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-h.ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
