package vipacmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// view is one `caddy vipa` subcommand: an admin route and how to show its
// rows.
type view struct {
	name    string
	route   string
	method  string // GET when empty; a POST sends the filters as a JSON body
	short   string
	long    string
	columns []column
	filters []filter
	// nested, when set, is a field whose array of objects is printed as a
	// second table below the first.
	nested *nestedTable
}

// nestedTable is a field of a route's answer shown as a table of its own.
type nestedTable struct {
	field   string
	columns []column
}

// column is one table column: the JSON field it shows and its heading.
// An optional column is not headed in an empty table; a hidden one is
// never shown (a field the table leaves out rather than appending it).
type column struct {
	field    string
	header   string
	optional bool
	hidden   bool
}

// filter is a flag passed to the route as the query parameter (or JSON body
// field) of the same name.
type filter struct {
	name   string
	usage  string
	number bool // a JSON number in a POST body
}

func (v view) command() *cobra.Command {
	use := v.name + " [--address <admin>] [--json]"
	for _, f := range v.filters {
		use += fmt.Sprintf(" [--%s <%s>]", f.name, f.name)
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: v.short,
		Long:  strings.TrimSpace(v.long),
		Args:  cobra.NoArgs,

		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := v.run(cmd)
			if err != nil {
				// One line, without cobra's usage text or Caddy's log format.
				cmd.SilenceErrors = true
				fmt.Fprintf(cmd.ErrOrStderr(), "caddy vipa %s: %v\n", v.name, err)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.String("address", "", "The admin endpoint (default: the config's, else "+defaultAdmin()+")")
	fl.StringP("config", "c", "", "Configuration file whose admin address to use")
	fl.StringP("adapter", "a", "", "Name of config adapter to apply")
	fl.Bool("json", false, "Print the route's JSON rows instead of a table")
	for _, f := range v.filters {
		fl.String(f.name, "", f.usage)
	}
	return cmd
}

func (v view) run(cmd *cobra.Command) error {
	fl := cmd.Flags()
	address, _ := fl.GetString("address")
	config, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	asJSON, _ := fl.GetBool("json")
	admin, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return err
	}
	method, uri, body, err := v.request(func(name string) string {
		s, _ := fl.GetString(name)
		return s
	})
	if err != nil {
		return err
	}
	raw, err := adminRequest(admin, method, uri, body)
	if err != nil {
		return err
	}
	if asJSON {
		_, err := cmd.OutOrStdout().Write(raw)
		return err
	}
	rows, err := decodeRows(raw)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, uri, err)
	}
	if v.nested == nil {
		return writeTable(cmd.OutOrStdout(), v.columns, rows)
	}
	inner, err := takeNested(rows, v.nested.field)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, uri, err)
	}
	if err := writeTable(cmd.OutOrStdout(), v.columns, rows); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout())
	return writeTable(cmd.OutOrStdout(), v.nested.columns, inner)
}

// request builds the route's request from the filter flags' values.
func (v view) request(value func(string) string) (method, uri string, body io.Reader, err error) {
	method = v.method
	if method == "" {
		method = http.MethodGet
	}
	if method == http.MethodGet {
		q := url.Values{}
		for _, f := range v.filters {
			if s := value(f.name); s != "" {
				q.Set(f.name, s)
			}
		}
		uri = v.route
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		return method, uri, nil, nil
	}
	fields := map[string]any{}
	for _, f := range v.filters {
		s := value(f.name)
		switch {
		case s == "":
		case f.number:
			n, err := strconv.Atoi(s)
			if err != nil {
				return "", "", nil, fmt.Errorf("--%s %q: want a number", f.name, s)
			}
			fields[f.name] = n
		default:
			fields[f.name] = s
		}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return "", "", nil, err
	}
	return method, v.route, bytes.NewReader(b), nil
}
