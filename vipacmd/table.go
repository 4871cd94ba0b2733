package vipacmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// row is one JSON object of a route's answer, its fields in the order the
// route wrote them.
type row struct {
	keys   []string
	values map[string]json.RawMessage
}

// decodeRows reads a route's answer: an array of objects, or one object.
func decodeRows(raw []byte) ([]row, error) {
	raw = bytes.TrimSpace(raw)
	var items []json.RawMessage
	if len(raw) > 0 && raw[0] == '{' {
		items = []json.RawMessage{raw}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("want a JSON array of rows: %w", err)
	}
	rows := make([]row, 0, len(items))
	for _, it := range items {
		r, err := decodeRow(it)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func decodeRow(raw json.RawMessage) (row, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return row{}, fmt.Errorf("row %s: want a JSON object", raw)
	}
	r := row{values: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return row{}, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return row{}, err
		}
		if _, dup := r.values[key]; !dup {
			r.keys = append(r.keys, key)
		}
		r.values[key] = v
	}
	return r, nil
}

// takeNested removes field from each row and returns the rows of the
// arrays of objects it held.
func takeNested(rows []row, field string) ([]row, error) {
	var out []row
	for i := range rows {
		r := &rows[i]
		v, ok := r.values[field]
		if !ok {
			continue
		}
		delete(r.values, field)
		r.keys = slices.DeleteFunc(r.keys, func(k string) bool { return k == field })
		if string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		inner, err := decodeRows(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", field, err)
		}
		out = append(out, inner...)
	}
	return out, nil
}

// tableColumns are the columns to print: the listed ones that some row
// carries (all but the optional ones when there are no rows), then the
// fields the rows carry beyond them, in order of appearance.
func tableColumns(listed []column, rows []row) []column {
	carried := map[string]bool{}
	var extra []column
	known := map[string]bool{}
	for _, c := range listed {
		known[c.field] = true
	}
	for _, r := range rows {
		for _, k := range r.keys {
			if !carried[k] && !known[k] {
				extra = append(extra, column{field: k, header: strings.ToUpper(strings.ReplaceAll(k, "_", "-"))})
			}
			carried[k] = true
		}
	}
	var out []column
	for _, c := range listed {
		if c.hidden {
			continue
		}
		if carried[c.field] || (len(rows) == 0 && !c.optional) {
			out = append(out, c)
		}
	}
	return append(out, extra...)
}

// writeTable prints rows under headings, aligned, one row a line.
func writeTable(w io.Writer, listed []column, rows []row) error {
	cols := tableColumns(listed, rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	for _, r := range rows {
		for i, c := range cols {
			cells[i] = cell(r.values[c.field])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell renders one JSON value for a table: strings bare, lists joined by
// commas, absent and empty values as "-".
func cell(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return "-"
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil || s == "" {
			return "-"
		}
		return strings.Map(printable, s)
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return string(v)
		}
		if len(items) == 0 {
			return "-"
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = cell(it)
		}
		return strings.Join(parts, ",")
	case '{':
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String()
		}
	}
	return string(v)
}

// printable keeps a cell on its line and in its column.
func printable(r rune) rune {
	if r < ' ' || r == 0x7f {
		return ' '
	}
	return r
}
