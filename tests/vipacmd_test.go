//go:build linux

package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vipaCmd runs `caddy vipa args...` and returns stdout, stderr and whether
// it exited 0.
func vipaCmd(t *testing.T, args ...string) (stdout, stderr string, ok bool) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(caddyBin, append([]string{"vipa"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatal(err)
	}
	return out.String(), errb.String(), err == nil
}

// vipaTable runs a subcommand that must succeed and splits its table into
// cells, checking every row's cells start where their heading does.
func vipaTable(t *testing.T, args ...string) (header []string, rows [][]string) {
	t.Helper()
	out, errs, ok := vipaCmd(t, args...)
	if !ok {
		t.Fatalf("caddy vipa %s: %s", strings.Join(args, " "), errs)
	}
	return parseTable(t, strings.Join(args, " "), out)
}

// parseTable splits one aligned table into cells.
func parseTable(t *testing.T, what, out string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header = strings.Fields(lines[0])
	starts := fieldStarts(lines[0])
	for _, l := range lines[1:] {
		var cells []string
		for i, at := range starts {
			if len(l) <= at || l[at] == ' ' || (at > 0 && l[at-1] != ' ') {
				t.Fatalf("caddy vipa %s: row not aligned under the headings:\n%s", what, out)
			}
			end := len(l)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			cells = append(cells, strings.TrimSpace(l[at:min(end, len(l))]))
		}
		rows = append(rows, cells)
	}
	return header, rows
}

func fieldStarts(line string) []int {
	var starts []int
	for i := range line {
		if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	return starts
}

// vipaJSON runs a subcommand with --json into v.
func vipaJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errs, ok := vipaCmd(t, append(args, "--json")...)
	if !ok {
		t.Fatalf("caddy vipa %s --json: %s", strings.Join(args, " "), errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("caddy vipa %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestVipaCommand runs every `caddy vipa` subcommand against a real routing
// node with live connections.
func TestVipaCommand(t *testing.T) {
	admin := adminAddr(t)
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	p := startCaddy(t, admin, singleNodeCaddyfile(admin, gossip, port, ""))
	startApp(t, "app-1", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	waitFor(t, 3*time.Second, "a DPT row", func() bool { return len(dpt(t, admin)) == 1 })
	for range 3 {
		dialVIPA(t, vipa)
	}
	waitFor(t, 3*time.Second, "three CRT entries", func() bool { return len(crt(t, admin, "")) == 3 })
	p0 := strconv.Itoa(port)

	// Subcommands that only read run side by side against the one node;
	// route (a fourth connection) and quiesce (a state change) follow.
	if !t.Run("read", func(t *testing.T) {
		t.Run("help", func(t *testing.T) {
			t.Parallel()
			if out, _, ok := vipaCmd(t, "--help"); !ok || !strings.Contains(out, "dpt") || !strings.Contains(out, "members") {
				t.Fatalf("caddy vipa --help lists no subcommands:\n%s", out)
			}
			help, err := exec.Command(caddyBin, "help").CombinedOutput()
			if err != nil || !bytes.Contains(help, []byte("  vipa ")) {
				t.Fatalf("caddy help lists no vipa: %v\n%s", err, help)
			}
		})
		t.Run("dpt", func(t *testing.T) {
			t.Parallel()
			// dpt: the netstat-like table and the raw rows agree with the route.
			header, rows := vipaTable(t, "dpt", "--address", admin)
			if want := []string{"VIPA", "PORT", "NODE", "ADDRESS", "RDY", "WEIGHT", "STATE", "ACTIVE", "TOTAL"}; !inOrder(want, header) {
				t.Fatalf("dpt headings %v, want %v in this order", header, want)
			}
			if len(rows) != 1 {
				t.Fatalf("dpt rows %v", rows)
			}
			row := cells(header, rows[0])
			for h, want := range map[string]string{"VIPA": "127.0.0.100", "PORT": p0, "NODE": "caddy-a", "ADDRESS": "127.0.0.1:" + p0,
				"RDY": "1", "WEIGHT": "1", "STATE": "active", "ACTIVE": "3", "TOTAL": "3"} {
				if row[h] != want {
					t.Fatalf("dpt %s = %q, want %q: %v", h, row[h], want, row)
				}
			}
			var dptJSON []dptRow
			vipaJSON(t, &dptJSON, "dpt", "--address", admin)
			if got := dpt(t, admin); !reflect.DeepEqual(dptJSON, got) {
				t.Fatalf("dpt --json %+v, route %+v", dptJSON, got)
			}
		})
		t.Run("crt", func(t *testing.T) {
			t.Parallel()
			// crt and its filters.
			header, rows := vipaTable(t, "crt", "--address", admin)
			if want := []string{"CLIENT", "VIPA", "PORT", "NODE", "ADDRESS", "SINCE", "TO-TARGET", "TO-CLIENT"}; !inOrder(want, header) {
				t.Fatalf("crt headings %v", header)
			}
			if len(rows) != 3 {
				t.Fatalf("crt rows %v", rows)
			}
			for _, r := range rows {
				c := cells(header, r)
				if !strings.HasPrefix(c["CLIENT"], "127.0.0.1:") || c["VIPA"] != "127.0.0.100" || c["PORT"] != p0 || c["NODE"] != "caddy-a" || c["ADDRESS"] != "127.0.0.1:"+p0 {
					t.Fatalf("crt row %v", r)
				}
				if _, err := time.Parse(time.RFC3339, c["SINCE"]); err != nil {
					t.Fatalf("crt row %v: since: %v", r, err)
				}
			}
			for _, c := range []struct {
				args []string
				n    int
			}{
				{[]string{"--limit", "2"}, 2},
				{[]string{"--node", "caddy-a"}, 3},
				{[]string{"--node", "caddy-x"}, 0},
				{[]string{"--vipa", "127.0.0.100"}, 3},
				{[]string{"--vipa", "127.0.0.101"}, 0},
				{[]string{"--port", p0, "--limit", "1"}, 1},
				{[]string{"--port", strconv.Itoa(port + 1)}, 0},
			} {
				_, rows := vipaTable(t, append([]string{"crt", "--address", admin}, c.args...)...)
				var js []crtRow
				vipaJSON(t, &js, append([]string{"crt", "--address", admin}, c.args...)...)
				if len(rows) != c.n || len(js) != c.n {
					t.Fatalf("crt %v: %d table rows, %d JSON rows; want %d", c.args, len(rows), len(js), c.n)
				}
			}
			if _, errs, ok := vipaCmd(t, "crt", "--address", admin, "--port", "eighty"); ok || !strings.Contains(errs, `port "eighty"`) || strings.Count(errs, "\n") != 1 {
				t.Fatalf("crt --port eighty: ok=%v, stderr %q", ok, errs)
			}
		})
		t.Run("definitions-members", func(t *testing.T) {
			t.Parallel()
			// definitions and members.
			header, rows := vipaTable(t, "definitions", "--address", admin)
			if !reflect.DeepEqual(header, []string{"VIPA", "PORTS", "DESTIP", "DISTMETHOD", "ROUTING-NODE", "CONFLICT"}) ||
				!reflect.DeepEqual(rows, [][]string{{"127.0.0.100", p0, "all", "roundrobin", "caddy-a", "-"}}) {
				t.Fatalf("definitions %v %v", header, rows)
			}
			var defs []definitionRow
			vipaJSON(t, &defs, "definitions", "--address", admin)
			if len(defs) != 1 || defs[0].RoutingNode != "caddy-a" || defs[0].Ports[0] != port {
				t.Fatalf("definitions --json %+v", defs)
			}
			header, rows = vipaTable(t, "members", "--address", admin)
			if !reflect.DeepEqual(header, []string{"NAME", "ADDRESS", "STATUS"}) ||
				!reflect.DeepEqual(rows, [][]string{{"caddy-a", fmt.Sprintf("127.0.0.1:%d", gossip), "alive"}}) {
				t.Fatalf("members %v %v", header, rows)
			}
			var mem []memberRow
			vipaJSON(t, &mem, "members", "--address", admin)
			if len(mem) != 1 || mem[0].Name != "caddy-a" || mem[0].Status != "alive" {
				t.Fatalf("members --json %+v", mem)
			}
		})
		t.Run("config", func(t *testing.T) {
			t.Parallel()
			// Without --address the admin endpoint comes from the config.
			if _, rows := vipaTable(t, "members", "--config", p.config, "--adapter", "caddyfile"); len(rows) != 1 {
				t.Fatalf("members from --config: %v", rows)
			}
			cfg := filepath.Join(t.TempDir(), "caddy.json")
			if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"admin":{"listen":%q}}`, admin), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, rows := vipaTable(t, "dpt", "--config", cfg); len(rows) != 1 {
				t.Fatalf("dpt from a JSON --config: %v", rows)
			}
		})
		t.Run("vipadyn-move", func(t *testing.T) {
			t.Parallel()
			// vipadyn: this node routes the VIPA it defines; move refuses a node
			// that is no member, in one line.
			header, rows := vipaTable(t, "vipadyn", "--address", admin)
			if !reflect.DeepEqual(header, []string{"VIPA", "STATUS", "RANK", "OWNER", "SINCE"}) || len(rows) != 1 {
				t.Fatalf("vipadyn %v %v", header, rows)
			}
			if c := cells(header, rows[0]); c["VIPA"] != "127.0.0.100" || c["STATUS"] != "active" || c["RANK"] != "0" || c["OWNER"] != "caddy-a" {
				t.Fatalf("vipadyn row %v", c)
			}
			var dyn []struct{ VIPA, Status, Owner, Since string }
			vipaJSON(t, &dyn, "vipadyn", "--address", admin)
			if len(dyn) != 1 || dyn[0].Owner != "caddy-a" || dyn[0].Status != "active" {
				t.Fatalf("vipadyn --json %+v", dyn)
			}
			for _, c := range []struct {
				args []string
				err  string
			}{
				{[]string{"--vipa", "127.0.0.100", "--to", "caddy-x"}, "move: "},
				{[]string{"--vipa", "127.0.0.100", "--to", "caddy-a", "--when", "later"}, `when "later"`},
				{[]string{"--to", "caddy-b"}, "move: missing vipa"},
			} {
				_, errs, ok := vipaCmd(t, append([]string{"move", "--address", admin}, c.args...)...)
				if ok || !strings.HasPrefix(errs, "caddy vipa move: ") || !strings.Contains(errs, c.err) || strings.Count(errs, "\n") != 1 {
					t.Fatalf("move %v: ok=%v, stderr %q", c.args, ok, errs)
				}
			}
			if _, rows := vipaTable(t, "vipadyn", "--address", admin); len(rows) != 1 || cells(header, rows[0])["OWNER"] != "caddy-a" {
				t.Fatalf("vipadyn after refused moves: %v", rows)
			}
		})
		t.Run("affinity", func(t *testing.T) {
			t.Parallel()
			// affinity: the definition has none.
			if header, rows := vipaTable(t, "affinity", "--address", admin); len(rows) != 0 || !reflect.DeepEqual(header, []string{"CLIENT", "VIPA", "PORT", "NODE", "ACTIVE", "EXPIRES"}) {
				t.Fatalf("affinity %v %v", header, rows)
			}
		})
		t.Run("unreachable", func(t *testing.T) {
			t.Parallel()
			// An unreachable admin endpoint is one line on stderr and a failure.
			closed := adminAddr(t)
			for _, sub := range []string{"dpt", "crt", "definitions", "members", "affinity", "route", "quiesce", "resume", "vipadyn", "move"} {
				out, errs, ok := vipaCmd(t, sub, "--address", closed)
				want := fmt.Sprintf("caddy vipa %s: admin endpoint %s unreachable: ", sub, closed)
				if ok || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "connection refused") || strings.Count(errs, "\n") != 1 {
					t.Fatalf("%s against a closed endpoint: ok=%v stdout %q stderr %q", sub, ok, out, errs)
				}
			}
		})
	}) {
		return
	}
	routeArgs := []string{"route", "--address", admin, "--vipa", "127.0.0.100", "--port", p0, "--client", "127.0.0.9"}
	var ans struct {
		Node, Address, Method, Reason string
		Candidates                    []struct {
			Node     string
			Eligible bool
			WhyNot   string `json:"why_not"`
		}
	}
	if !t.Run("route", func(t *testing.T) {
		// route: the answer, then the candidates; the next connection goes
		// where it said, and its CRT entry gives the same reason.
		out, errs, ok := vipaCmd(t, routeArgs...)
		answer, cands, found := strings.Cut(out, "\n\n")
		if !ok || !found {
			t.Fatalf("route: ok=%v stderr %q, stdout:\n%s", ok, errs, out)
		}
		header, rows := parseTable(t, "route", answer)
		if want := []string{"VIPA", "PORT", "CLIENT", "NODE", "ADDRESS", "METHOD", "AFFINITY", "REASON"}; !reflect.DeepEqual(header, want) || len(rows) != 1 {
			t.Fatalf("route headings %v rows %v", header, rows)
		}
		if c := cells(header, rows[0]); c["NODE"] != "caddy-a" || c["ADDRESS"] != "127.0.0.1:"+p0 || c["METHOD"] != "roundrobin" ||
			c["REASON"] != "roundrobin" || c["CLIENT"] != "127.0.0.9" || c["AFFINITY"] != "-" {
			t.Fatalf("route answer %v", c)
		}
		header, rows = parseTable(t, "route candidates", cands)
		if want := []string{"NODE", "ADDRESS", "RDY", "WEIGHT", "STATE", "ACTIVE", "TOTAL", "ELIGIBLE", "WHY-NOT"}; !inOrder(want, header) || inOrder([]string{"VIPA"}, header) || len(rows) != 1 {
			t.Fatalf("route candidates %v %v", header, rows)
		}
		if c := cells(header, rows[0]); c["NODE"] != "caddy-a" || c["ELIGIBLE"] != "true" || c["WHY-NOT"] != "-" || c["ACTIVE"] != "3" {
			t.Fatalf("route candidate %v", c)
		}
		vipaJSON(t, &ans, routeArgs...)
		if ans.Node != "caddy-a" || ans.Reason != "roundrobin" || len(ans.Candidates) != 1 || !ans.Candidates[0].Eligible {
			t.Fatalf("route --json %+v", ans)
		}
		c, _, _ := dialVIPA(t, vipa)
		waitFor(t, 3*time.Second, "the fourth CRT entry", func() bool { return len(crt(t, admin, "")) == 4 })
		for _, r := range crt(t, admin, "") {
			if r.Client == c.LocalAddr().String() && (r.Node != ans.Node || r.Reason != ans.Reason) {
				t.Fatalf("the connection went to %s (%q), the route said %s (%q)", r.Node, r.Reason, ans.Node, ans.Reason)
			}
		}
		header, rows = vipaTable(t, "crt", "--address", admin, "--limit", "1")
		if c := cells(header, rows[0]); c["REASON"] != "roundrobin" {
			t.Fatalf("crt reason %v", c)
		}
		for _, c := range []struct {
			args []string
			err  string
		}{
			{[]string{"--client", "not-an-ip"}, `client "not-an-ip"`},
			{[]string{"--vipa", "127.0.0.101"}, "no VIPADISTRIBUTE definition for VIPA 127.0.0.101"},
			{[]string{"--port", "0"}, `port "0"`},
		} {
			args := append(slices.Clone(routeArgs), c.args...)
			if _, errs, ok := vipaCmd(t, args...); ok || !strings.HasPrefix(errs, "caddy vipa route: ") || !strings.Contains(errs, c.err) || strings.Count(errs, "\n") != 1 {
				t.Fatalf("route %v: ok=%v, stderr %q", c.args, ok, errs)
			}
		}
	}) {
		return
	}
	t.Run("quiesce-resume", func(t *testing.T) {
		// quiesce and resume print the rows selected as they are now; while the
		// row is quiesced the route finds no target and says why.
		header, rows := vipaTable(t, "quiesce", "--address", admin, "--port", p0)
		if c := cells(header, rows[0]); len(rows) != 1 || c["NODE"] != "caddy-a" || c["STATE"] != "quiesced" || c["PORT"] != p0 {
			t.Fatalf("quiesce %v %v", header, rows)
		}
		waitFor(t, 5*time.Second, "the DPT row quiesced", func() bool { r := dpt(t, admin); return len(r) == 1 && r[0].State == "quiesced" })
		vipaJSON(t, &ans, routeArgs...)
		if ans.Node != "" || !strings.HasPrefix(ans.Reason, "refused") || len(ans.Candidates) != 1 || ans.Candidates[0].Eligible || ans.Candidates[0].WhyNot != "quiesced" {
			t.Fatalf("route to a quiesced row: %+v", ans)
		}
		var resumed []dptRow
		vipaJSON(t, &resumed, "resume", "--address", admin, "--vipa", "127.0.0.100")
		if len(resumed) != 1 || resumed[0].State != "active" {
			t.Fatalf("resume --json %+v", resumed)
		}
		waitFor(t, 5*time.Second, "the DPT row active", func() bool { r := dpt(t, admin); return len(r) == 1 && r[0].State == "active" })
		for _, c := range []struct {
			args []string
			err  string
		}{
			{[]string{"quiesce", "--port", "70000"}, "port 70000"},
			{[]string{"quiesce", "--port", "http"}, `--port "http": want a number`},
			{[]string{"resume", "--node", "caddy-x"}, `node "caddy-x" is not a fleet member`},
		} {
			_, errs, ok := vipaCmd(t, append(c.args, "--address", admin)...)
			if ok || !strings.HasPrefix(errs, "caddy vipa "+c.args[0]+": ") || !strings.Contains(errs, c.err) || strings.Count(errs, "\n") != 1 {
				t.Fatalf("%v: ok=%v, stderr %q", c.args, ok, errs)
			}
		}
	})
}

// inOrder reports whether want appear in got in this order, other columns
// (fields the routes gained) between them.
func inOrder(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// cells maps a table row's cells to their headings.
func cells(header, row []string) map[string]string {
	m := map[string]string{}
	for i, h := range header {
		if i < len(row) {
			m[h] = row[i]
		}
	}
	return m
}
