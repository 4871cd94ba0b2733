package module

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// SelfWeight is the weight a target node reports for itself, for
// distmethod targetweight: 0 is auto, else 1-100. In JSON it is "auto" or
// a number.
type SelfWeight int

// MarshalJSON writes "auto" or the number.
func (w SelfWeight) MarshalJSON() ([]byte, error) {
	if w == 0 {
		return json.Marshal(vipa.WeightAuto)
	}
	return strconv.AppendInt(nil, int64(w), 10), nil
}

// UnmarshalJSON reads "auto" or a number 1-100.
func (w *SelfWeight) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != vipa.WeightAuto {
			return fmt.Errorf(`weight %q: want "auto" or a number %d-%d`, s, vipa.MinWeight, vipa.MaxWeight)
		}
		*w = 0
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf(`weight %s: want "auto" or a number %d-%d`, b, vipa.MinWeight, vipa.MaxWeight)
	}
	if err := vipa.ValidateWeight(n); err != nil {
		return err
	}
	*w = SelfWeight(n)
	return nil
}

// unmarshalWeight reads "weight auto|<1-100>".
func (a *App) unmarshalWeight(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	w, err := vipa.ParseSelfWeight(d.Val())
	if err != nil {
		return d.Err(err.Error())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	a.Weight = SelfWeight(w)
	return nil
}
