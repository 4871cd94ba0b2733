package serfsync

import (
	"bytes"
	"log"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stdLogger turns serf's and memberlist's std log lines ("[WARN] memberlist: ...")
// into zap entries at the matching level. Their warnings and errors are
// mostly about what peers sent, so anyone who can reach the gossip port
// could fill the log: those are counted (gossip_error) and sampled.
func stdLogger(z *zap.Logger, st *stats) *log.Logger {
	return log.New(zapWriter{z, st}, "", 0)
}

type zapWriter struct {
	z  *zap.Logger
	st *stats
}

func (w zapWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	lvl, rest := levelOf(msg)
	if keyQueryOf(rest) != "" {
		// A member holding the fleet key asks to manage keys: see keyguard.go.
		w.st.inc("key_query")
		w.st.keys.notify()
		lvl = zap.WarnLevel
	}
	if lvl < zap.WarnLevel {
		if ce := w.z.Check(lvl, rest); ce != nil {
			ce.Write()
		}
		return len(p), nil
	}
	w.st.inc("gossip_error")
	w.st.sampled(w.z, lvl, logKind(rest), rest)
	return len(p), nil
}

func levelOf(msg string) (zapcore.Level, string) {
	for _, l := range []struct {
		prefix string
		level  zapcore.Level
	}{
		{"[ERR] ", zap.ErrorLevel},
		{"[ERROR] ", zap.ErrorLevel},
		{"[WARN] ", zap.WarnLevel},
		{"[INFO] ", zap.InfoLevel},
		{"[DEBUG] ", zap.DebugLevel},
	} {
		if len(msg) >= len(l.prefix) && msg[:len(l.prefix)] == l.prefix {
			return l.level, msg[len(l.prefix):]
		}
	}
	return zap.InfoLevel, msg
}

// logKind names the kind of a serf or memberlist line: its subsystem and
// fixed text, up to the first detail ("memberlist: Decrypt packet failed"
// for "memberlist: Decrypt packet failed: no installed keys ... from=...").
// Digits are dropped, so sizes and message types make no new kinds.
func logKind(msg string) string {
	sub, text, ok := strings.Cut(msg, ": ")
	if !ok {
		sub, text = "", msg
	}
	for _, sep := range []string{": ", " from=", " %", " '", " \""} {
		if i := strings.Index(text, sep); i >= 0 {
			text = text[:i]
		}
	}
	text = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, text)
	if len(text) > 64 {
		text = text[:64]
	}
	return sub + ": " + text
}

// logInterval is how often each kind of peer error is logged at most; the
// lines in between are counted and the next one logged says how many.
const logInterval = 10 * time.Second

// maxLogKinds bounds the kinds remembered; beyond it they share one.
const maxLogKinds = 256

// logSampler lets the first line of each kind through per logInterval.
type logSampler struct {
	mu    sync.Mutex
	kinds map[string]*logWindow
}

type logWindow struct {
	start      time.Time
	suppressed uint64
}

// allow reports whether a line of kind is logged now, and how many of its
// kind were not since the last one that was.
func (s *logSampler) allow(kind string, now time.Time) (bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kinds == nil {
		s.kinds = map[string]*logWindow{}
	}
	w := s.kinds[kind]
	if w == nil {
		if len(s.kinds) >= maxLogKinds {
			for k, o := range s.kinds {
				if now.Sub(o.start) >= logInterval && o.suppressed == 0 {
					delete(s.kinds, k)
				}
			}
		}
		if len(s.kinds) >= maxLogKinds {
			kind = "other"
			w = s.kinds[kind]
		}
		if w == nil {
			s.kinds[kind] = &logWindow{start: now}
			return true, 0
		}
	}
	if now.Sub(w.start) < logInterval {
		w.suppressed++
		return false, 0
	}
	n := w.suppressed
	w.start, w.suppressed = now, 0
	return true, n
}

// sampled logs msg at lvl unless a line of its kind was logged within
// logInterval; those it holds back are counted (log_suppressed).
func (s *stats) sampled(z *zap.Logger, lvl zapcore.Level, kind, msg string, fields ...zap.Field) {
	ce := z.Check(lvl, msg)
	if ce == nil {
		return
	}
	ok, n := s.logs.allow(kind, time.Now())
	if !ok {
		s.inc("log_suppressed")
		return
	}
	if n > 0 {
		fields = append(fields, zap.Uint64("suppressed", n))
	}
	ce.Write(fields...)
}
