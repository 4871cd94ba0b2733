// Package serfsync keeps a fleet of nodes in agreement over HashiCorp serf:
// membership, the VIPADISTRIBUTE definitions each routing node broadcasts,
// and the listener reports each target node sends to the routing nodes. It
// knows nothing of Caddy; many agents can run in one process.
//
// # Versioned state, not events
//
// Serf loses broadcasts (memberlist v0.7.0 can drop a queued broadcast when
// a newer one of equal length takes its btree slot) and delivers events in
// arrival order, so nothing here depends on one message arriving. Each node
// owns two pieces of state: its listener report (a canonical sorted set of
// VIPA, port, ready and, from report version 2, the connections the node
// holds on the port from the VIPA's routing node; from version 3, whether
// the node quiesced the line and the weight it gives itself) and its
// definitions. Each has a version
// gen.seq.hash: gen is random per agent start, seq grows by one per change,
// hash is 8 bytes of SHA-256 over the canonical body. The node's serf tags
// carry only these digests ("r", "d") and its advertise address ("adv"),
// about 100 of serf's 512 bytes; one goroutine sets them, debounced, and
// retries a SetTags that times out.
//
// # The state channel
//
// Bodies travel over a direct TCP exchange on the gossip port itself: the
// transport handed to memberlist routes streams that start with "VIPA" to
// this package and all others to memberlist (see muxTransport). Serf
// queries were the alternative; they are gossiped to every node even when
// filtered, so they cost a gossip round (~200 ms in the LAN profile) per
// hop, their payloads are capped at 1 KB, and answers would need paging.
// The direct exchange costs one TCP round trip plus a handshake, needs no
// second port, and sees exactly the network memberlist sees. With fleet
// keys it is sealed with AES-256-GCM under a per-stream key derived from
// the fleet key, the label and fresh nonces of both sides (channel.go), so
// it is authenticated, private and not replayable; a keyed node refuses a
// peer without the key.
//
// A stream proves nothing until its first frame opens under a fleet key,
// so until then it costs the server little and is bounded: the server reads
// a hello (at most 278 bytes) and a first frame no longer than the longest
// request (277 bytes sealed), and closes a stream announcing more;
// frames are read into buffers that grow as bytes arrive, never at the
// announced size. At most 256 streams on the gossip port may be unproven at
// once (silent, in the hello, before their first frame opens; memberlist's
// until closed); one more closes the oldest, counted as stream_shed. A real
// peer's handshake takes a round trip, so a flood of stalled streams evicts
// itself, not the fleet. What peers send wrong is counted, and logged at
// most once per kind every 10 s (log.go), so junk on the gossip port is no
// log flood.
//
// One exchange, the sync, does everything: the requester sends its own
// versions and the versions it holds of the peer; the peer answers with its
// versions and the bodies the requester lacks. A peer that learns from the
// request that the requester has news schedules a sync back at once.
//
// # Paths
//
//   - Fast path: SetReport on a target syncs with the routing nodes of the
//     VIPAs in its old and new report; each routing node sees the new
//     version in the request and fetches it: two exchanges, about a
//     millisecond on a LAN. SetDefinitions does the same with every member.
//   - Tag path: a member event (tag update, join) makes the worker compare
//     the digests of the members it names with what it holds and sync where
//     it holds less. A digest of the empty body needs no fetch. Events are
//     applied member by member, so a join storm of n nodes costs each node
//     O(n), not O(n²); a peer whose sync is under way is compared when the
//     sync ends, so no sync is sent twice.
//   - Reconcile: every reconcile period (lan 3 s, fast 2 s, wan 10 s) the
//     whole member list is read and swept, and a node that defines VIPAs
//     syncs with every member, spread over the period. So a lost tag,
//     request or answer costs at most a period, never correctness. Failed
//     syncs retry with backoff. At most 8 syncs run at once, at most 4 of
//     them anti-entropy; waiting ones go news first, then what tags
//     announce, then the anti-entropy, the longest waiting first within
//     each, so a fleet's worth of routine syncs never delays a change.
//
// # Core and shell
//
// The protocol's state and decisions are one type with no I/O (core.go):
// it takes inputs (serf's word on members, a sync request to answer, a
// sync's answer or failure, a reconcile tick, the local report or
// definitions), each with the time passed in, and a step returns the
// actions they lead to (syncs to run, tags to publish, definitions and
// rows to hand on, when to step again). It runs no goroutine, reads no
// clock and opens no socket, so a whole fleet of cores runs in one
// deterministic simulation (sim_test.go: 500 nodes through loss,
// duplication, reordering, partitions and restarts). The Agent is the shell around
// it: serf and its events, the transport and the state channel, the
// fetchers, the tagger and the timers, each turning what happens into
// the core's inputs and its actions into I/O, under one lock.
//
// # Cost
//
// A fleet's start is a storm of gossip, and a hundred agents sharing two
// cores (the scale test) starve unless a packet is cheap: the transport
// (transport.go) reads each packet into one buffer and copies its length,
// where memberlist's allocates and zeroes 64 KB per packet, and on lan and
// fast gossip is not compressed (memberlist's LZW writer allocates 64 KB
// per packet to save bytes a LAN does not miss). A starved fleet is a
// slow one: syncs wait for CPU and members are falsely declared failed,
// losing their rows until they refute.
//
// # Keys
//
// serf answers key-management queries from any member holding the fleet
// key and has no switch to refuse them. Unless Config.RemoteKeys, a guard
// keeps the configured keys (keyguard.go): serf logs each query as it
// handles it, the guard then watches the keyring closely and puts back the
// configured keys, primary first, counting and logging each query and each
// change undone. The state channel's keys are derived at start and never
// follow the keyring.
//
// # Restarts
//
// With Config.SnapshotPath serf records the members it sees in a file and
// rejoins them at start (RejoinAfterLeave: a graceful stop is a restart to
// come, not a farewell), so a node without a join list is back in its
// fleet within a round trip instead of waiting for a peer's reconnect.
//
// # Report versions
//
// Version 1 lines are port and ready; version 2 adds conns, the
// established connections the target's kernel holds on its advertise
// address and the port from the routing node's advertise address, for the
// routing node's CRT drift check. A sender writes version 1 when no line
// carries a count, so one set of lines has one encoding; a receiver reads
// both, a version 1 line having no count (vipa.NoConns, not checked). A
// node that knows only version 1 drops version 2 bodies as malformed:
// upgrade routing nodes first. Counts are refreshed at a low rate (10 s)
// and a report changes only when one does, so versions do not churn.
//
// Version 3 adds the target's word on itself: a flags byte per line says
// the line is quiesced (the routing node's row turns quiesced: no new
// connections) and whether a count and a weight (1 byte, 1-100, the
// target's own weight for distmethod targetweight) follow. A sender writes
// version 3 only when some line is quiesced or weighted, or when some
// lines count connections and others do not (version 2 would send 0 for
// those, and the routing node would check its CRT against 0), and version
// 2 or 1 otherwise, so a fleet without quiesced targets or targetweight
// VIPAs sends what older nodes read; a receiver reads all three, and
// refuses a body in a version other than the one its lines need, or with
// an unknown flag. A
// node that knows only versions 1 and 2 drops version 3 bodies as
// malformed: the targets it would learn from are then absent from its DPT
// until it is upgraded, so again upgrade routing nodes first. The weight
// moves only by whole steps the target judges material, so it does not
// churn versions either.
//
// # Definitions versions
//
// Version 3 carries each definition's VIPA, since, ports, destip,
// distmethod and port all flag. Version 4 adds its distribution options
// (vipa.Options: destination weights and hotstandby roles, the hotstandby
// switches, timedaffinity, optlocal, max_conns, slow_start), so a standby
// routes exactly as the routing node it replaces. A sender writes version
// 4 only when some definition has an option, and a receiver refuses a
// version 4 body without one (one meaning, one body). A node that knows
// only version 3 drops version 4 bodies as malformed (drop_decode, logged
// once per version): it does not learn that routing node's definitions,
// so it neither reports to it nor backs it up until it is upgraded.
// Upgrade the other nodes before routing nodes whose definitions carry
// options.
//
// # Backup routing nodes
//
// A node that can own a VIPA another node routes (a backup, or a routing
// node waiting to get its VIPA back) says so in the tag "v" (SetVIPADyn):
// per VIPA its rank and, during a manual move, the node it hands the VIPA
// to. The tag needs no body and no version of its own: a node that does
// not know it ignores it, so a mixed fleet keeps working (its older
// targets just do not feed the standbys). Such a node is a standby for
// those VIPAs: it asks for reports as a routing node does, takes the
// lines of those VIPAs by the rules below, judged against the routing
// node's definition, and targets send their report to the standbys as to
// the routing node, so a takeover starts from a current DPT. When a
// routing node fails or leaves, its definition stays in every node's view
// (an orphan, still the owner) while a live node stands by for its VIPA
// and no live node defines it, so targets keep reporting until a standby
// defines the VIPA itself; which one does is package vipadyn's rule.
//
// # Carried state
//
// What a routing node decided itself is in no report: the drains it
// applies to targets and its rows' health. A standby asks the live
// routing node of each VIPA it stands by for every CarryPeriod (1 s) over
// the state channel, on one stream kept open to each routing node, naming
// the hash of what it holds; the answer carries
// the body only when it changed (carry.go has the format and bounds). The
// standby hands it on through OnOwnerState and keeps it after the routing
// node is gone, so a takeover starts from it. A node that predates the
// request drops it as malformed; the standby backs off (up to 30 s).
//
// # Probes
//
// A backup routing node must learn that its VIPA's owner is gone faster
// than SWIM's suspicion says so (probe.go): it pings the owner directly
// (memberlist's ping, sealed with the fleet key like all gossip), asks other
// members over the state channel to ping it too (a probe request: the
// answer says whether the owner answered them), and tries a TCP connection
// to its gossip port. The decision on those answers is package vipadyn's
// Watch; this package only carries them.
//
// # Rules on receipt
//
// A body is accepted only if its hash verifies, it decodes within bounds
// (decoders accept only canonical bodies, so one hash names one meaning),
// and its seq does not go back within its gen; a new gen replaces the
// node's old version whole, so a restarted process's old rows vanish.
// Each definition of an accepted body must also pass package vipa's rules
// (stricter than the wire's bounds: a destination is a node name or an
// address); one that fails is dropped alone, logged and counted, and the
// sender never sends one (it logs an error instead). A body that does not
// decode is logged once per version.
// Each line of an accepted report becomes a DPT row only if this node owns the
// VIPA, the port is in the owner's definition, the sender is a candidate
// (destip all, its name or its advertise address; the routing node always),
// Ready is in 1..65536, and the report's address is the sender's advertise
// address from its tags, an address no other live member (nor this node)
// advertises: two members claiming one address are both flagged, neither
// trusted for it, logged once. Everything else is dropped and counted
// (Stats).
// Failed, leaving and left members are forgotten at once: OnMemberGone,
// and a later return is fetched and reported afresh.
//
// # Conflicts
//
// When two nodes define one VIPA, every node marks both definitions with a
// Conflict and picks the same owner: the definition with the earliest
// Since, the time its routing node began defining the VIPA (carried in the
// definition, kept across reloads that keep the VIPA, new with a restart),
// then the lowest routing node name. So a newcomer never displaces an
// established routing node, and every node decides alike from what the
// definitions carry. The definers log an error. Targets follow the owner;
// the other definer builds no DPT for that VIPA until the owner leaves,
// when it takes over. Since is the definer's word: a member holding the
// fleet key could still claim an earlier one; the conflict is then logged
// by the established definer and shown on every node. A backup routing a
// VIPA it took over (its vipadyn tag ranks it) is no definer: no conflict,
// and a defining node's definition owns the VIPA before it.
//
// # Callbacks
//
// OnDefinitions, OnReport and OnMemberGone run on the agent's one worker
// goroutine, never on serf's event path (serf writes its event channel while
// holding its member lock; a slow reader gets the node declared failed) and
// never concurrently.
package serfsync
