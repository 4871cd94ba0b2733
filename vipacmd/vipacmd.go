// Package vipacmd adds `caddy vipa` to Caddy's command line: the routing
// tables and the fleet of a running node, read from its admin API and shown
// as aligned tables, as z/OS `netstat VDPT/VCRT` shows them.
package vipacmd

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "vipa",
		Usage: "<table> [--address <admin>] [--json]",
		Short: "Shows the VIPA routing tables and fleet of a running Caddy",
		Long: `
Reads the /vipa/ routes of a running Caddy's admin endpoint and prints their
rows as an aligned table, or as the route's JSON with --json.

The admin endpoint is --address if given, else the one in the config named by
--config and --adapter (as for 'caddy reload'), else Caddy's default.
`,
		CobraFunc: func(cmd *cobra.Command) {
			for _, v := range views {
				cmd.AddCommand(v.command())
			}
		},
	})
}
