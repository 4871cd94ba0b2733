package serfsync

import (
	"bytes"
	"log"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stdLogger turns serf's and memberlist's std log lines ("[WARN] memberlist: ...")
// into zap entries at the matching level.
func stdLogger(z *zap.Logger) *log.Logger {
	return log.New(zapWriter{z}, "", 0)
}

type zapWriter struct{ z *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	lvl, rest := levelOf(msg)
	if ce := w.z.Check(lvl, rest); ce != nil {
		ce.Write()
	}
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
