package serfsync

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// serf answers key-management queries (install, use, remove and list a
// key) from any member holding the fleet key and has no switch to refuse
// them: one stolen key would let its holder rotate the fleet onto a key of
// its own and lock out every node restarted with the configured one.
// Unless Config.RemoteKeys allows it, the keyring is guarded: every such
// query is counted (key_query) and logged, and a keyring that no longer
// holds exactly the configured keys, the configured primary first, is put
// back (keyring_restored). serf logs each query as it starts handling it,
// so the guard looks at once and for a while after, and every
// keyCheckInterval regardless.

const (
	keyCheckInterval = time.Second
	keyWatchFor      = 500 * time.Millisecond // after a query: how long to watch closely
	keyWatchEvery    = 5 * time.Millisecond
)

// keyQueryOf names the key-management query a serf log line announces
// ("install", "use", "remove", "list"), or "".
func keyQueryOf(msg string) string {
	q, ok := strings.CutPrefix(msg, "serf: Received ")
	if !ok {
		return ""
	}
	q, ok = strings.CutSuffix(q, "-key query")
	if !ok {
		q, ok = strings.CutSuffix(q, "-keys query")
	}
	if !ok {
		return ""
	}
	return q
}

// keyQueries signals the keyring guard that a key query arrived.
type keyQueries struct {
	once sync.Once
	ch   chan struct{}
}

func (k *keyQueries) c() chan struct{} {
	k.once.Do(func() { k.ch = make(chan struct{}, 1) })
	return k.ch
}

func (k *keyQueries) notify() {
	select {
	case k.c() <- struct{}{}:
	default:
	}
}

// guardKeyring starts the guard over kr; nothing without keys or with
// remote key management allowed.
func (a *Agent) guardKeyring(kr *memberlist.Keyring) {
	a.keyring = kr
	if kr == nil || a.cfg.RemoteKeys {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		tick := time.NewTicker(keyCheckInterval)
		defer tick.Stop()
		var until time.Time
		var watch <-chan time.Time
		for {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			case <-a.stats.keys.c():
				until = time.Now().Add(keyWatchFor)
			case <-watch:
			}
			a.restoreKeys(kr)
			watch = nil
			if time.Now().Before(until) {
				watch = time.After(keyWatchEvery)
			}
		}
	}()
}

// restoreKeys puts the configured keys back if the keyring differs.
func (a *Agent) restoreKeys(kr *memberlist.Keyring) {
	want := a.cfg.Keys
	got := kr.GetKeys()
	if sameKeys(got, want) {
		return
	}
	for _, k := range want {
		if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, k) }) {
			_ = kr.AddKey(k)
		}
	}
	_ = kr.UseKey(want[0])
	for _, k := range got {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			_ = kr.RemoveKey(k)
		}
	}
	a.stats.inc("keyring_restored")
	a.logger.Error("the fleet keyring was changed by a member's key query: restored the configured keys (remote key management is off)",
		zap.Int("keys_found", len(got)))
}

// sameKeys: one primary (first) and one set of keys.
func sameKeys(got, want [][]byte) bool {
	if len(got) != len(want) || len(got) == 0 || !bytes.Equal(got[0], want[0]) {
		return false
	}
	for _, k := range want {
		if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, k) }) {
			return false
		}
	}
	return true
}
