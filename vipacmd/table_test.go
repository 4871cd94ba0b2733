package vipacmd

import (
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	raw := `[{"vipa":"127.0.0.100","port":8080,"node":"caddy-a","tags":["x","y"],"state":"","tsr":100},
	{"vipa":"127.0.0.100","port":8443,"node":"caddy-bb","tags":[],"state":"active","tsr":7,"note":"a\tb"}]`
	rows, err := decodeRows([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	cols := []column{
		{field: "vipa", header: "VIPA"},
		{field: "port", header: "PORT"},
		{field: "node", header: "NODE"},
		{field: "health", header: "HEALTH", optional: true}, // no row carries it
		{field: "tsr", header: "TSR", optional: true},
		{field: "state", header: "STATE"},
	}
	var b strings.Builder
	if err := writeTable(&b, cols, rows); err != nil {
		t.Fatal(err)
	}
	want := `VIPA         PORT  NODE      TSR  STATE   TAGS  NOTE
127.0.0.100  8080  caddy-a   100  -       x,y   -
127.0.0.100  8443  caddy-bb  7    active  -     a b
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteTableEmpty(t *testing.T) {
	var b strings.Builder
	cols := []column{{field: "name", header: "NAME"}, {field: "reason", header: "REASON", optional: true}, {field: "status", header: "STATUS"}}
	if err := writeTable(&b, cols, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "NAME  STATUS\n" {
		t.Fatalf("empty table %q", b.String())
	}
}

func TestDecodeRowsRejects(t *testing.T) {
	for _, raw := range []string{`not json`, `[1,2]`, `"x"`} {
		if _, err := decodeRows([]byte(raw)); err == nil {
			t.Errorf("%s: decoded", raw)
		}
	}
	rows, err := decodeRows([]byte(`{"node":"a","address":"127.0.0.1:1"}`))
	if err != nil || len(rows) != 1 || strings.Join(rows[0].keys, ",") != "node,address" {
		t.Fatalf("one object: %+v %v", rows, err)
	}
}

func TestRequest(t *testing.T) {
	flags := map[string]string{"vipa": "127.0.0.100", "port": "8080", "limit": ""}
	value := func(n string) string { return flags[n] }

	crt := viewNamed(t, "crt")
	method, uri, body, err := crt.request(value)
	if err != nil || method != "GET" || uri != "/vipa/crt?port=8080&vipa=127.0.0.100" || body != nil {
		t.Fatalf("crt request: %s %s %v %v", method, uri, body, err)
	}

	post := view{route: "/vipa/quiesce", method: "POST", filters: []filter{{name: "vipa"}, {name: "port", number: true}, {name: "node"}}}
	method, uri, body, err = post.request(value)
	if err != nil || method != "POST" || uri != "/vipa/quiesce" {
		t.Fatalf("post request: %s %s %v", method, uri, err)
	}
	var sb strings.Builder
	buf := make([]byte, 256)
	n, _ := body.Read(buf)
	sb.Write(buf[:n])
	if sb.String() != `{"port":8080,"vipa":"127.0.0.100"}` {
		t.Fatalf("post body %s", sb.String())
	}
	flags["port"] = "eighty"
	if _, _, _, err := post.request(value); err == nil || !strings.Contains(err.Error(), "--port") {
		t.Fatalf("a port that is no number: %v", err)
	}
}

func viewNamed(t *testing.T, name string) view {
	for _, v := range views {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no view %s", name)
	return view{}
}

func TestNestedTable(t *testing.T) {
	raw := `{"node":"a","reason":"roundrobin","candidates":[{"vipa":"v","node":"a","eligible":true,"why_not":""},{"vipa":"v","node":"b","eligible":false,"why_not":"quiesced"}]}`
	rows, err := decodeRows([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := takeNested(rows, "candidates")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeTable(&b, []column{{field: "node", header: "NODE"}}, rows); err != nil {
		t.Fatal(err)
	}
	if err := writeTable(&b, []column{{field: "vipa", hidden: true}, {field: "node", header: "NODE"}, {field: "why_not", header: "WHY-NOT"}}, inner); err != nil {
		t.Fatal(err)
	}
	want := `NODE  REASON
a     roundrobin
NODE  WHY-NOT   ELIGIBLE
a     -         true
b     quiesced  false
`
	if b.String() != want {
		t.Fatalf("tables:\n%s\nwant:\n%s", b.String(), want)
	}
}
