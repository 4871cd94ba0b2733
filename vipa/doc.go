// Package vipa is caddy-vipa's vocabulary: the VIPADISTRIBUTE definition,
// ports, destinations, distribution methods, node names and the other
// settings of the VIPADYNAMIC block, the listener report line, and the rule
// that says which listening sockets count for a node. Each rule is written
// here once; the Caddyfile parser, the JSON config, the fleet and the
// tables all ask this package, so an error reads the same wherever it is
// found.
//
// It is plain Go: no Caddy, no serf.
package vipa
