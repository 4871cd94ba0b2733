package serfsync

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// useSnapshot lets serf record the fleet's members in the snapshot file
// and rejoin them at start. Without it, a node whose config has no join
// list is alone after a restart until a peer's reconnect finds it (10–19 s
// on lan). A node that left gracefully rejoins too: Caddy stopping is not
// the node leaving the fleet for good.
func (a *Agent) useSnapshot(sc *serf.Config) {
	path := a.cfg.SnapshotPath
	if path == "" {
		return
	}
	if err := writable(path); err != nil {
		a.logger.Warn("fleet snapshot unavailable: a restart without a join list waits for peers to reconnect",
			zap.String("path", path), zap.Error(err))
		return
	}
	sc.SnapshotPath = path
	sc.RejoinAfterLeave = true
}

// writable makes the snapshot's directory and checks the file opens for
// appending, as serf will open it.
func writable(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
