package serfsync

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"
)

// keyring is the agent's memberlist keyring as serf changes it.
func (n *tnode) keyring() [][]byte {
	return n.Agent.keyring.GetKeys()
}

// TestKeyringGuarded: a member holding the fleet key rotates the fleet
// onto a key of its own with serf's key-management queries. The guarded
// nodes keep the configured key, count and log the attempts, and a node
// restarted with the configured key still joins. With remote key
// management allowed, the same queries take effect.
func TestKeyringGuarded(t *testing.T) {
	key := bytes.Repeat([]byte{5}, 32)
	rogue := bytes.Repeat([]byte{6}, 32)
	b64 := base64.StdEncoding.EncodeToString
	o := fleetOpts{keys: [][]byte{key}}
	nodes := startFleet(t, 3, o)
	km := nodes[2].serf.KeyManager()
	for _, step := range []func() error{
		func() error { _, err := km.InstallKey(b64(rogue)); return err },
		func() error { _, err := km.UseKey(b64(rogue)); return err },
		func() error { _, err := km.RemoveKey(b64(key)); return err },
		func() error { _, err := km.ListKeys(); return err },
	} {
		_ = step() // the answers do not matter: the keyrings do
	}
	for _, n := range nodes[:2] {
		waitFor(t, 3*time.Second, n.name+" counts the queries", func() bool {
			s := n.Stats()
			return s["key_query"] >= 4 && s["keyring_restored"] >= 1
		})
		if got := n.keyring(); len(got) != 1 || !bytes.Equal(got[0], key) {
			t.Errorf("%s keyring: %x", n.name, got)
		}
		if n.logs.FilterMessageSnippet("restored the configured keys").Len() == 0 ||
			n.logs.FilterMessageSnippet("install-key query").Len() == 0 {
			t.Errorf("%s did not log the attempt", n.name)
		}
		t.Logf("%s: %v", n.name, n.Stats())
	}
	// Gossip is still sealed with the configured key: a node restarted
	// with it joins.
	old := nodes[1]
	port := old.BindAddr().Port()
	old.kill()
	fresh := startNode(t, o.config(old.name, old.ip, port, []string{nodes[0].BindAddr().String()}))
	nodes[1] = fresh
	waitFor(t, 5*time.Second, "restarted node with the configured key admitted", func() bool { return alive(nodes[0]) == 3 && alive(fresh) == 3 })

	// Allowed: the install takes.
	cfg := o.config("open", testIP(20), 0, []string{nodes[0].BindAddr().String()})
	cfg.RemoteKeys = true
	n := startNode(t, cfg)
	t.Cleanup(func() { _ = n.Stop() })
	waitFor(t, 5*time.Second, "open node joined", func() bool { return alive(n) == 4 })
	_, _ = km.InstallKey(b64(rogue))
	waitFor(t, 3*time.Second, "remote install on the open node", func() bool { return len(n.keyring()) == 2 })
	if n.Stats()["keyring_restored"] != 0 {
		t.Errorf("the open node restored its keyring: %v", n.Stats())
	}
	time.Sleep(keyCheckInterval + 100*time.Millisecond)
	if got := nodes[0].keyring(); len(got) != 1 {
		t.Errorf("guarded node keyring after a second install: %x", got)
	}
}

func TestSameKeys(t *testing.T) {
	a, b, c := []byte{1}, []byte{2}, []byte{3}
	for _, tc := range []struct {
		got, want [][]byte
		same      bool
	}{
		{[][]byte{a, b, c}, [][]byte{a, c, b}, true},
		{[][]byte{b, a}, [][]byte{a, b}, false},
		{[][]byte{a}, [][]byte{a, b}, false},
		{[][]byte{a, c}, [][]byte{a, b}, false},
	} {
		if sameKeys(tc.got, tc.want) != tc.same {
			t.Errorf("sameKeys(%v, %v) = %v", tc.got, tc.want, !tc.same)
		}
	}
	for msg, q := range map[string]string{
		"serf: Received install-key query": "install", "serf: Received list-keys query": "list",
		"serf: Received event": "", "memberlist: Received use-key query": "",
	} {
		if got := keyQueryOf(msg); got != q {
			t.Errorf("keyQueryOf(%q) = %q, want %q", msg, got, q)
		}
	}
}
