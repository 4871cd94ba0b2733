// Package vipadyn decides who owns each VIPA: the configured routing node
// while it is alive, else the alive backup routing node of highest rank.
// It is plain state, without goroutines, clock or sockets: the caller feeds
// it the fleet as serf and the heartbeats show it, and acts on the changes
// it returns.
//
// # The rule
//
// A node claims a VIPA (routes it, adds its address) and says so by
// publishing the VIPA's definition; every node sees the claims of the live
// members. For each VIPA, every node computes the same owner:
//
//   - the best live claimant, if any; best is the configured routing node
//     (rank 0), then the higher rank, then the lower node name. So when two
//     nodes claim at once (a partition heals) exactly one remains: the
//     others give the VIPA up at once, once they know the better one's
//     claims are current (Member.Known): claims held from before a member
//     went silent may be those of a process killed since.
//   - with no live claimant, the node a releasing owner named (a manual
//     move), else the best live candidate: a member whose tags say it can
//     own the VIPA. A node claims only once it knows the claims of every
//     live candidate, so a returning routing node never snatches a VIPA a
//     backup holds.
//
// A configured routing node that finds a backup holding its VIPA waits: the
// backup gives it back by its takeback setting, immediate or when_idle
// (once this node routes no connection on the VIPA, or after max_wait). A
// VIPA moved by hand stays where it was moved: no takeback.
//
// A hand-over (takeback or move) is make before break: the node handing
// the VIPA over names the target in its tags (Moves) and keeps claiming it
// until the target's claim is known, handWait at most. Tags travel by
// gossip, slower than claims: a claim dropped before the tag that names
// the target would let every node choose by rank. The target claims while
// the giver still does (it is no rival of the node it hands to), and
// remembers the giver as no rival until its claim drops.
//
// # Owners gone before serf says so
//
// Watch and Decide judge the owners a node watches faster than SWIM: a
// node silent to direct pings for a window is a suspect; Decide takes it
// as down only when no other member hears it and its gossip port accepts
// no connection, from this node or from the members asked, so a slow link
// to one backup, a starved owner or a loaded member is no takeover. The
// caller feeds the outcome in as Inputs.Down.
//
// Such an owner may come back before serf has seen it fail: killed and
// restarted, it is the same member to serf, which still shows the old
// process's tags, and this node holds the old process's claims. The
// caller passes it as not Known until it has fetched its definitions
// again; until then its claims make no one give the VIPA up, and no
// backup hands it back (a takeback waits for the returning node known to
// claim nothing).
package vipadyn
