// Package tables holds the routing node's two tables and the distribution
// methods that read them.
//
// The DPT (destination port table) has one row per (VIPA, port, target node)
// whose node has at least one application listening on that port. Readers get
// an immutable, copy-on-write snapshot without taking a lock, so the
// per-connection lookup never waits for a report being applied.
//
// The CRT (connection routing table) has one entry per live routed
// connection. It is sharded, and each shard is an intrusive doubly-linked
// list, so inserting and removing an entry allocates nothing and an entry
// costs little more than its own fields.
//
// The package knows nothing of Caddy or serf: callers translate reports and
// connections into Row and Entry values.
package tables
