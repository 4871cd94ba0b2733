// Package caddyfile registers the vipadynamic global option of the
// Caddyfile: the VIPADYNAMIC block with its VIPADISTRIBUTE statements.
package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-vipa/caddy-vipa/module"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("vipadynamic", parseVIPADynamic)
}

// parseVIPADynamic turns the global vipadynamic block into the vipadynamic
// app. One block per Caddyfile: a second is an error.
func parseVIPADynamic(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		d.Next()
		return nil, d.Err("duplicate global option 'vipadynamic'")
	}
	app := new(module.App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  "vipadynamic",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}
