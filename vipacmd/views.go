package vipacmd

// views are the `caddy vipa` subcommands, one per admin route. A column
// whose field no row carries is left out, so a column may be listed before
// its route serves the field; fields a row carries beyond the columns follow
// them.
var views = []view{
	{
		name:  "dpt",
		route: "/vipa/dpt",
		short: "Shows the destination port table (DPT)",
		long: `
One row per VIPA, port and target node: the target's dial address, its ready
listeners (RDY), weight, state and connection counts. A node that routes no
VIPA shows the rows it reports to the routing nodes.
`,
		columns: dptColumns,
		filters: []filter{
			{name: "vipa", usage: "Only rows of this VIPA"},
			{name: "port", usage: "Only rows of this port"},
			{name: "node", usage: "Only rows of this target node"},
		},
	},
	{
		name:  "crt",
		route: "/vipa/crt",
		short: "Shows the connection routing table (CRT)",
		long: `
One row per live connection the routing node routed: the client, the VIPA and
port it reached, the target node and address it went to, since when, and the
bytes copied each way.
`,
		columns: []column{
			{field: "client", header: "CLIENT"},
			{field: "vipa", header: "VIPA"},
			{field: "port", header: "PORT"},
			{field: "node", header: "NODE"},
			{field: "address", header: "ADDRESS"},
			{field: "since", header: "SINCE"},
			{field: "bytes_to_target", header: "TO-TARGET"},
			{field: "bytes_to_client", header: "TO-CLIENT"},
			{field: "reason", header: "REASON", optional: true},
		},
		filters: []filter{
			{name: "vipa", usage: "Only connections to this VIPA"},
			{name: "port", usage: "Only connections to this port"},
			{name: "node", usage: "Only connections routed to this target node"},
			{name: "limit", usage: "At most this many rows"},
		},
	},
	{
		name:  "definitions",
		route: "/vipa/definitions",
		short: "Shows the VIPADISTRIBUTE definitions this node knows",
		long: `
One row per VIPADISTRIBUTE definition: the VIPA, its ports, the candidate
targets (DESTIP), the distribution method, the routing node, and the conflict
when two nodes define the same VIPA.
`,
		columns: []column{
			{field: "vipa", header: "VIPA"},
			{field: "ports", header: "PORTS"},
			{field: "destip", header: "DESTIP"},
			{field: "distmethod", header: "DISTMETHOD"},
			{field: "routing_node", header: "ROUTING-NODE"},
			{field: "conflict", header: "CONFLICT"},
		},
	},
	{
		name:  "members",
		route: "/vipa/members",
		short: "Shows the fleet's members as this node sees them",
		long: `
One row per serf member: its node name, gossip address and status (alive,
failed, left, …).
`,
		columns: []column{
			{field: "name", header: "NAME"},
			{field: "address", header: "ADDRESS"},
			{field: "status", header: "STATUS"},
		},
	},
	{
		name:  "affinity",
		route: "/vipa/affinity",
		short: "Shows the clients' timed affinities",
		long: `
One row per client whose connections stay on one target (timedaffinity): the
client, the VIPA and port, the target node, the client's open connections, and
when the affinity expires once none is open.
`,
		columns: []column{
			{field: "client", header: "CLIENT"},
			{field: "vipa", header: "VIPA"},
			{field: "port", header: "PORT"},
			{field: "node", header: "NODE"},
			{field: "active_conns", header: "ACTIVE"},
			{field: "expires", header: "EXPIRES"},
		},
		filters: []filter{
			{name: "vipa", usage: "Only affinities to this VIPA"},
			{name: "port", usage: "Only affinities to this port"},
			{name: "node", usage: "Only affinities to this target node"},
			{name: "client", usage: "Only this client IP's affinities"},
			{name: "limit", usage: "At most this many rows"},
		},
	},
	{
		name:  "route",
		route: "/vipa/route",
		short: "Shows where a new connection from a client would go now, and why",
		long: `
Asks the routing node of a VIPA which target a new connection from --client
to --vipa and --port would get now, by which rule, and how each DPT row
stands (eligible, or why not). Asking changes nothing: no rotation step, no
affinity.
`,
		columns: []column{
			{field: "vipa", header: "VIPA"},
			{field: "port", header: "PORT"},
			{field: "client", header: "CLIENT"},
			{field: "node", header: "NODE"},
			{field: "address", header: "ADDRESS"},
			{field: "method", header: "METHOD"},
			{field: "affinity", header: "AFFINITY"},
			{field: "reason", header: "REASON"},
		},
		nested: &nestedTable{field: "candidates", columns: []column{
			{field: "vipa", hidden: true},
			{field: "port", hidden: true},
			{field: "node", header: "NODE"},
			{field: "address", header: "ADDRESS"},
			{field: "ready", header: "RDY"},
			{field: "weight", header: "WEIGHT"},
			{field: "effective_weight", header: "EFFWT", optional: true},
			{field: "tsr", header: "TSR", optional: true},
			{field: "health", header: "HEALTH", optional: true},
			{field: "state", header: "STATE"},
			{field: "active_conns", header: "ACTIVE"},
			{field: "total_conns", header: "TOTAL"},
			{field: "eligible", header: "ELIGIBLE"},
			{field: "why_not", header: "WHY-NOT"},
		}},
		filters: []filter{
			{name: "vipa", usage: "The VIPA the client connects to"},
			{name: "port", usage: "The port the client connects to"},
			{name: "client", usage: "The client's address, IP or IP:port"},
		},
	},
	{
		name:   "quiesce",
		route:  "/vipa/quiesce",
		method: "POST",
		short:  "Quiesces DPT rows: no new connections, established ones run on",
		long: `
On a target node, quiesces its own rows (all, or by --vipa and --port); on a
routing node with --node, drains that target's rows from its DPT. Prints the
rows selected as they are now; the routing node's rows follow within the
fleet's report latency.
`,
		columns: dptColumns,
		filters: selectFilters,
	},
	{
		name:   "resume",
		route:  "/vipa/resume",
		method: "POST",
		short:  "Resumes quiesced DPT rows",
		long: `
Undoes 'caddy vipa quiesce' for the rows selected the same way (all, or by
--vipa, --port and, on a routing node, --node) and prints them as they are
now.
`,
		columns: dptColumns,
		filters: selectFilters,
	},
	{
		name:  "vipadyn",
		route: "/vipa/vipadyn",
		short: "Shows what this node is for each VIPA it knows (netstat VIPADYN)",
		long: `
One row per VIPA this node knows: its status for it (active, backup, moving,
quiescing, none), its rank (0 for the configured routing node), the node that
routes the VIPA now, and since when.
`,
		columns: []column{
			{field: "vipa", header: "VIPA"},
			{field: "status", header: "STATUS"},
			{field: "rank", header: "RANK"},
			{field: "owner", header: "OWNER"},
			{field: "since", header: "SINCE"},
		},
	},
	{
		name:   "move",
		route:  "/vipa/move",
		method: "POST",
		short:  "Hands a VIPA this node routes to another node",
		long: `
Moves --vipa to node --to: --when now (the default; connections through the
VIPA break) or idle (once this node routes none on it). Prints this node's
VIPADYN rows afterwards.
`,
		columns: []column{
			{field: "vipa", header: "VIPA"},
			{field: "status", header: "STATUS"},
			{field: "rank", header: "RANK"},
			{field: "owner", header: "OWNER"},
			{field: "since", header: "SINCE"},
		},
		filters: []filter{
			{name: "vipa", usage: "The VIPA to move"},
			{name: "to", usage: "The node to hand it to"},
			{name: "when", usage: "now (default) or idle"},
		},
	},
}

// dptColumns are a DPT row's: /vipa/dpt, and the rows quiesce and resume
// answer with.
var dptColumns = []column{
	{field: "vipa", header: "VIPA"},
	{field: "port", header: "PORT"},
	{field: "node", header: "NODE"},
	{field: "address", header: "ADDRESS"},
	{field: "ready", header: "RDY"},
	{field: "weight", header: "WEIGHT"},
	{field: "effective_weight", header: "EFFWT", optional: true},
	{field: "tsr", header: "TSR", optional: true},
	{field: "health", header: "HEALTH", optional: true},
	{field: "state", header: "STATE"},
	{field: "active_conns", header: "ACTIVE"},
	{field: "total_conns", header: "TOTAL"},
}

// selectFilters choose the rows quiesce and resume act on.
var selectFilters = []filter{
	{name: "vipa", usage: "Only rows of this VIPA"},
	{name: "port", usage: "Only rows of this port", number: true},
	{name: "node", usage: "On a routing node: only this target node's rows (a drain)"},
}
