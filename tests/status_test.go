//go:build linux

package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserPath is an installed Chromium or Chrome, or "".
func browserPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where tests leave files for people to look at:
// $VIPA_TEST_ARTIFACTS, else tests/.work/artifacts.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("VIPA_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(".work", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// statusSite is an HTTP site with the status page under /vipa.
func statusSite(web int) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	handle /vipa* {
		vipa_status
	}
}
`, web)
}

// TestStatusPage opens the status page of a running 3-node fleet in a real
// headless browser and watches a target come and go without a reload.
func TestStatusPage(t *testing.T) {
	browser := browserPath()
	if browser == "" {
		t.Skip("no Chromium or Chrome installed (apt-get install chromium): the status page needs a real browser to test")
	}
	port, port2, gossip, web := freePort(t), freePort(t), freePort(t), freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = fmt.Sprintf(`		vipadistribute define 127.0.0.100 port %d %d destip all
	}
	layer4 {
		127.0.0.100:%d 127.0.0.100:%d {
			route {
				distribute
			}
		}
	}`, port, port2, port, port2)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	c := newFleetNode(t, "caddy-c", "127.0.0.3", gossip, seed)
	startCaddy(t, a.admin, a.caddyfile()+statusSite(web))
	startCaddy(t, b.admin, b.caddyfile())
	startCaddy(t, c.admin, c.caddyfile())
	for _, n := range []fleetNode{a, b, c} {
		startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}
	waitFor(t, 15*time.Second, "three DPT rows", func() bool { return len(dptNodes(t, a.admin)) == 3 })
	waitFor(t, 5*time.Second, "three alive members", func() bool {
		m := members(t, a.admin)
		return len(m) == 3 && m["caddy-a"] == "alive" && m["caddy-b"] == "alive" && m["caddy-c"] == "alive"
	})
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	for range 3 {
		dialVIPA(t, vipa) // live connections for the busiest-connections table
	}

	ctx, cancel := browserContext(t, browser)
	defer cancel()

	var mu sync.Mutex
	var consoleErrors []string
	msgs := chromedp.Console(ctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				consoleErrors = append(consoleErrors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/vipa/", web)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`)); err != nil {
		t.Fatal(err)
	}

	rows := func() []string {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('article.vipa[data-vipa="127.0.0.100"] tbody tr[data-node]')].map(tr => tr.dataset.port + "/" + tr.dataset.node)`))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	waitRows := func(what string, within time.Duration, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		slices.Sort(want)
		for !slices.Equal(rows(), want) {
			if time.Since(start) > within {
				t.Fatalf("page after %s: DPT rows %v, want %v (%s)", within, rows(), want, what)
			}
			time.Sleep(25 * time.Millisecond)
		}
		return time.Since(start)
	}
	p := fmt.Sprint(port)
	waitRows("the fleet's rows", 10*time.Second, p+"/caddy-a", p+"/caddy-b", p+"/caddy-c")

	// The fleet and the VIPA's facts are on the page too.
	fleet, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#members li[data-member]')].map(li => li.dataset.member + " " + li.querySelector('.badge').textContent)`))
	if err != nil || !slices.Equal(fleet, []string{"caddy-a alive", "caddy-b alive", "caddy-c alive"}) {
		t.Fatalf("fleet on the page: %v, %v", fleet, err)
	}
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('article.vipa[data-vipa="127.0.0.100"] .facts').textContent`))
	if err != nil || !contains(facts, "Routing nodecaddy-a") || !contains(facts, "Methodroundrobin") {
		t.Fatalf("VIPA facts on the page: %q, %v", facts, err)
	}
	conns, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#crt tbody tr[data-node]').length`))
	if err != nil || conns != 3 {
		t.Fatalf("busiest connections on the page: %d, %v", conns, err)
	}
	shot(t, ctx, "status-page.png", 1280, 900, true)

	// A new target appears within 2 s of its application listening, and
	// goes within 2 s of it stopping, with no reload.
	p2 := fmt.Sprint(port2)
	late := startApp(t, "caddy-c-late", reusePortListen(t, fmt.Sprintf("127.0.0.3:%d", port2)))
	took := waitRows("a new target", 2*time.Second, p+"/caddy-a", p+"/caddy-b", p+"/caddy-c", p2+"/caddy-c")
	t.Logf("new target on the page after %s", took)
	late.stopListening()
	took = waitRows("a stopped target", 2*time.Second, p+"/caddy-a", p+"/caddy-b", p+"/caddy-c")
	t.Logf("stopped target off the page after %s", took)
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.sameDocument === true`))
	if err != nil || !same {
		t.Fatalf("the page reloaded: %v %v", same, err)
	}
	shot(t, ctx, "status-page-narrow.png", 390, 844, true)

	cancel()
	<-consoleDone
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Fatalf("console errors:\n%s", consoleErrors)
	}
}

// shot writes a PNG of the page (all of it when full) at a viewport size as
// an artifact.
func shot(t *testing.T, ctx context.Context, name string, width, height int64, full bool) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a frame at the new width
	capture := chromedp.CaptureScreenshot()
	if full {
		capture = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, capture)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestStatusPageThousandRows checks the page keeps up with 1,000 DPT rows:
// all listed, a filter narrows them, and a screenshot shows the result.
func TestStatusPageThousandRows(t *testing.T) {
	browser := browserPath()
	if browser == "" {
		t.Skip("no Chromium or Chrome installed (apt-get install chromium): the status page needs a real browser to test")
	}
	const n = 1000
	admin, gossip, web := adminAddr(t), freePort(t), freePort(t)
	lo, lns := listenRange(t, n)
	for i, ln := range lns {
		startApp(t, fmt.Sprintf("app-%d", i), ln)
	}
	cfg := fmt.Sprintf(`{
	admin %s
	vipadynamic {
		node caddy-a
		advertise 127.0.0.1
		gossip 127.0.0.1:%d
		vipadistribute define 127.0.0.100 port %d-%d destip all
	}
}
`, admin, gossip, lo, lo+n-1) + statusSite(web)
	startCaddy(t, admin, cfg)
	waitFor(t, 15*time.Second, "1,000 DPT rows", func() bool { return len(dpt(t, admin)) == n })

	ctx, cancel := browserContext(t, browser)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/vipa/", web))); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('article.vipa tbody tr[data-node]').length`))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitFor(t, 10*time.Second, "1,000 rows on the page", func() bool { return count() == n })
	shot(t, ctx, "status-page-1000-rows.png", 1280, 900, false)
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('article.vipa .facts').textContent`))
	if want := fmt.Sprintf("Ports%d–%d", lo, lo+n-1); err != nil || !contains(facts, want) {
		t.Fatalf("VIPA facts %q, %v: want the ports as one range %q", facts, err, want)
	}
	filter := fmt.Sprint(lo + 7)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`{
		const f = document.getElementById("filter");
		f.value = "`+filter+`";
		f.dispatchEvent(new Event("input"));
	}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the filter to narrow the rows", func() bool { return count() >= 1 && count() < 10 })
}

// listenRange opens n listeners on consecutive ports of 127.0.0.1 below the
// ephemeral range and returns the first port.
func listenRange(t *testing.T, n int) (int, []net.Listener) {
	t.Helper()
	for range 20 {
		lo := 12000 + rand.IntN(18000-n)
		var lns []net.Listener
		for p := lo; p < lo+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == n {
			return lo, lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0, nil
}

// browserContext starts a headless browser for one test.
func browserContext(t *testing.T, browser string) (context.Context, context.CancelFunc) {
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 90*time.Second)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)...)
	ctx, cancelTab := chromedp.NewContext(ctx)
	return ctx, func() { cancelTab(); cancelAlloc(); cancelTimeout() }
}
