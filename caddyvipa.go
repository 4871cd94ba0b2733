// Package caddyvipa brings the z/OS Sysplex Distributor to Caddy: a fleet of
// Caddy servers joined by serf shares one distributed virtual IP address,
// and its routing node sends every new connection to a node that has an
// application listening on the port.
//
// Importing this package registers every module of the plugin (the status
// page's handler among them) and the `caddy vipa` command, so
// `xcaddy build --with github.com/caddy-vipa/caddy-vipa` works.
package caddyvipa

import (
	_ "github.com/caddy-vipa/caddy-vipa/caddyfile"
	_ "github.com/caddy-vipa/caddy-vipa/module"
	_ "github.com/caddy-vipa/caddy-vipa/module/status"
	_ "github.com/caddy-vipa/caddy-vipa/vipacmd"
)
