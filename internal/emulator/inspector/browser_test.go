package inspector_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mastersocket/mastersocket/client"
	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/inspector"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

const testToken = "mst_inspector-test-token"

// startRun starts a local run of template.yaml on the in-memory store, on a
// free port of 127.0.0.1, in the template's default mode (the handshake
// carries the token), and stops it when the test ends.
func startRun(t *testing.T, withInspector bool) *localrun.Server {
	t.Helper()
	return startRunWith(t, localrun.Options{Inspector: withInspector})
}

// startRunWith is startRun with more options; Addr, when not set, is a
// free port of 127.0.0.1.
func startRunWith(t *testing.T, o localrun.Options) *localrun.Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	o.Template, o.Token, o.BuildDir, o.SweepEvery = "../../../template.yaml", testToken, t.TempDir(), -1
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := localrun.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// service is a service connected with the repo's Go client, which records
// the messages it receives.
type service struct {
	*client.Client
	got chan *client.Message
}

func connect(t *testing.T, s *localrun.Server, group string) *service {
	t.Helper()
	got := make(chan *client.Message, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.URL(), client.Options{
		Token: testToken, Group: group,
		Default: func(_ context.Context, _ *client.Client, m *client.Message) { got <- m },
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &service{c, got}
}

// receive waits for the next message the service receives.
func (v *service) receive(t *testing.T, what string) *client.Message {
	t.Helper()
	select {
	case m := <-v.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never arrived on the service's socket", what)
		return nil
	}
}

const installHint = "headless Chromium is needed to test the inspector page: install Debian's chromium package " +
	"(scripts/chromium.sh, which `make test` runs, or: sudo apt-get install -y --no-install-recommends chromium), " +
	"or set CHROMIUM to a Chromium binary"

// chromium returns the path of the Chromium binary: $CHROMIUM, or
// chromium on the PATH, or /usr/bin/chromium. Without one the test is
// skipped, and fails under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("CHROMIUM")}
	if p, err := exec.LookPath("chromium"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/chromium")
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(installHint)
	}
	t.Skip(installHint)
	return ""
}

// browser starts headless Chromium, with a profile of its own, and returns
// a context for its tab; the browser stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these, Chromium stalls reaching Google's services on a
		// machine with no way out.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, with no deadline (one would stop it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// do runs browser actions with a deadline.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageText(ctx))
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript function fn, given args, returns a
// truthy value in the page: what a person waits to see.
func waitFor(t *testing.T, ctx context.Context, what, fn string, args ...any) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(pctx, chromedp.PollFunction[chromedp.Void](fn,
		chromedp.WithPollingArgs(args...), chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(12*time.Second)))
	if err != nil {
		t.Fatalf("the page never showed %s: %v\nthe page reads:\n%s", what, err, pageText(ctx))
	}
}

// pageText is what the page shows, for failure messages.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(could not read the page: " + err.Error() + ")"
	}
	return s
}

// logRow is a row of the page's live log, as a person reads it.
type logRow struct {
	Dir, Conn, Service, Op, Target, Event, Size, Status, Via, Body string
}

// logRows reads the live log's rows from the page: the text of their cells.
func logRows(t *testing.T, ctx context.Context, table string) []logRow {
	t.Helper()
	cells := eval[[][]string](t, ctx, `[...document.querySelectorAll('`+table+` tbody tr')].map(r => [...r.cells].map(c => c.innerText))`)
	var rows []logRow
	for _, c := range cells {
		if table == "#log" && len(c) == 11 {
			rows = append(rows, logRow{c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]})
		}
		if table == "#errors" && len(c) == 7 {
			rows = append(rows, logRow{Conn: c[1], Service: c[2], Op: c[3], Status: c[4], Via: c[5], Body: c[6]})
		}
	}
	return rows
}

// TestTheInspectorPageShowsServicesAndSendsFramesInChromium drives the
// inspector page in headless Chromium as a person would: two services
// connect and appear with their service ids and group, a GROUP EVENT sent
// from the page as the first one reaches the second one's socket and shows
// in the live log as delivered, a malformed frame shows in the errors, the
// server can post to a connection, and no token ever shows. With
// INSPECTOR_SCREENSHOT=FILE (relative to the repository's root) it saves a
// screenshot of the page (make screenshot).
func TestTheInspectorPageShowsServicesAndSendsFramesInChromium(t *testing.T) {
	ctx := browser(t)
	s := startRun(t, true)
	const group = "demo"

	do(t, ctx, "open the inspector", chromedp.EmulateViewport(1360, 900), chromedp.Navigate(s.InspectorURL()))
	waitFor(t, ctx, "that live updates are on", `() => document.querySelector('#live').innerText === 'live'`)

	a := connect(t, s, group)
	b := connect(t, s, group)
	waitFor(t, ctx, "both connections with their service id and group",
		`(a, b, group) => {
			const rows = [...document.querySelectorAll('#connections tbody tr')].map(r => [...r.cells].map(c => c.innerText));
			return rows.length === 2 && [a, b].every(id => rows.some(c => c[1] === id && c[2] === group));
		}`, a.ID(), b.ID(), group)
	waitFor(t, ctx, "the group with both members",
		`(a, b, group) => [...document.querySelectorAll('#groups tbody tr')].some(r =>
			r.cells[0].innerText === group && r.cells[1].innerText.includes(a) && r.cells[1].innerText.includes(b))`,
		a.ID(), b.ID(), group)

	connOf := func(serviceID string) string {
		return eval[string](t, ctx, `document.querySelector('#connections tr[data-service="`+serviceID+`"]').cells[0].innerText`)
	}
	connA, connB := connOf(a.ID()), connOf(b.ID())

	// As connection A: the form offers a GROUP EVENT to A's group.
	do(t, ctx, "choose connection A",
		chromedp.SetValue(chromedp.CSS("#send-connection"), connA),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#send-connection').dispatchEvent(new Event('change'))`))
	frame := eval[string](t, ctx, `document.querySelector('#send-frame').value`)
	if want := inspector.ExampleFrame(group); frame != want {
		t.Fatalf("the form offers %s, want a GROUP EVENT to %s: %s", frame, group, want)
	}
	do(t, ctx, "send it", chromedp.Click(chromedp.CSS("#send-button")))
	waitFor(t, ctx, "that the frame was handled", `() => document.querySelector('#send-result').innerText.startsWith('handled as a message from')`)

	m := b.receive(t, "the GROUP EVENT sent from the page")
	if m.Event != "HELLO" || m.Intent.Target != client.TargetGroup || m.Intent.Identifier != group || m.Source.ID != a.ID() {
		t.Fatalf("B received %+v, want HELLO to GROUP %s from %s", m, group, a.ID())
	}
	waitFor(t, ctx, "the delivery to B in the live log",
		`(connB) => [...document.querySelectorAll('#log tbody tr')].some(r => r.dataset.dir === 'out' && r.dataset.conn === connB && r.dataset.op === 'EVENT')`, connB)
	var in, out *logRow
	for _, r := range logRows(t, ctx, "#log") {
		switch {
		case r.Dir == "→" && r.Conn == connA && r.Op == "EVENT":
			in = &r
		case r.Dir == "←" && r.Conn == connB && r.Op == "EVENT":
			out = &r
		}
	}
	if in == nil || out == nil {
		t.Fatalf("the log lacks A's EVENT (%v) or its delivery to B (%v):\n%s", in, out, pageText(ctx))
	}
	if in.Target != "GROUP:"+group || in.Event != "HELLO" || in.Size != strconv.Itoa(len(frame)) || in.Service != a.ID() || in.Via != "inspector" {
		t.Errorf("A's EVENT reads %+v, want target GROUP:%s, event HELLO, size %d, service %s, via inspector", *in, group, len(frame), a.ID())
	}
	if out.Target != "GROUP:"+group || out.Status != "delivered" || out.Service != b.ID() || out.Via != "@connections POST" {
		t.Errorf("the delivery to B reads %+v, want target GROUP:%s, delivered, service %s, via @connections POST", *out, group, b.ID())
	}
	// What B received, the source stamped in, is bigger than what A sent.
	if n, err := strconv.Atoi(out.Size); err != nil || n <= len(frame) {
		t.Errorf("the delivery's size reads %q, want more than the %d bytes sent", out.Size, len(frame))
	}

	// As the server: a PostToConnection to B.
	const fromServer = `{"op":0,"event":"FROM_SERVER","data":{"n":2},"intent":{"target":"DIRECT","identifier":"x"}}`
	do(t, ctx, "send as the server to B",
		chromedp.Click(chromedp.CSS(`input[name="as"][value="server"]`)),
		chromedp.SetValue(chromedp.CSS("#send-connection"), connB),
		chromedp.SetValue(chromedp.CSS("#send-frame"), fromServer),
		chromedp.Click(chromedp.CSS("#send-button")))
	waitFor(t, ctx, "the post's answer", `() => document.querySelector('#send-result').innerText.includes('200, delivered')`)
	if m := b.receive(t, "the frame posted from the page"); m.Event != "FROM_SERVER" {
		t.Fatalf("B received %+v, want FROM_SERVER", m)
	}

	// A malformed frame as A: its ERROR shows in the errors.
	do(t, ctx, "send a malformed frame as A",
		chromedp.Click(chromedp.CSS(`input[name="as"][value="connection"]`)),
		chromedp.SetValue(chromedp.CSS("#send-connection"), connA),
		chromedp.SetValue(chromedp.CSS("#send-frame"), `{"op":0,"event":`),
		chromedp.Click(chromedp.CSS("#send-button")))
	waitFor(t, ctx, "the ERROR in the errors", `(connA) => [...document.querySelectorAll('#errors tbody tr')].some(r =>
		r.cells[1].innerText === connA && r.cells[3].innerText === 'ERROR' && r.cells[4].innerText === '4002 INVALID_PAYLOAD')`, connA)

	// An IDENTIFY with the token as A: ALREADY_IDENTIFIED, and the token
	// shows nowhere, live or rendered by the server.
	do(t, ctx, "send an IDENTIFY with the token as A",
		chromedp.SetValue(chromedp.CSS("#send-frame"), `{"op":1,"data":{"token":"`+testToken+`","group":"`+group+`"}}`),
		chromedp.Click(chromedp.CSS("#send-button")))
	waitFor(t, ctx, "the ALREADY_IDENTIFIED error", `() => [...document.querySelectorAll('#errors tbody tr')].some(r => r.cells[4].innerText === '4005 ALREADY_IDENTIFIED')`)
	waitFor(t, ctx, "the IDENTIFY in the log, its token redacted", `() => [...document.querySelectorAll('#log tbody tr')].some(r =>
		r.dataset.op === 'IDENTIFY' && r.dataset.dir === 'in' && r.cells[10].innerText.includes('[REDACTED]'))`)
	if html := eval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, testToken) {
		t.Errorf("the page shows the token")
	}
	do(t, ctx, "reload the page", chromedp.Reload())
	waitFor(t, ctx, "the log rendered by the server", `() => document.querySelectorAll('#log tbody tr[data-op="EVENT"]').length >= 3`)
	if html := eval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, testToken) {
		t.Errorf("the page rendered by the server shows the token")
	}

	if path := os.Getenv("INSPECTOR_SCREENSHOT"); path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join("..", "..", "..", path)
		}
		do(t, ctx, "scroll up", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		t.Logf("screenshot: %s", path)
	}
}

// TestAPageLeftOpenAcrossARestartShowsTheNewRun restarts the gateway on
// its port under an open page: the page reconnects by itself and shows the
// new run's connections and log, none of the old run's, though the new
// run's entries are numbered from 1 again.
func TestAPageLeftOpenAcrossARestartShowsTheNewRun(t *testing.T) {
	ctx := browser(t)
	first := startRun(t, true)
	do(t, ctx, "open the inspector", chromedp.Navigate(first.InspectorURL()))
	waitFor(t, ctx, "that live updates are on", `() => document.querySelector('#live').innerText === 'live'`)
	// More entries in the first run than the second will have.
	var old []*service
	for range 3 {
		old = append(old, connect(t, first, "old"))
	}
	waitFor(t, ctx, "the first run's three connections",
		`() => document.querySelectorAll('#connections tbody tr[data-service]').length === 3`)
	firstRun := eval[string](t, ctx, `document.body.dataset.run`)
	addr := first.Addr()
	// The client would reconnect to the second run: these services stop.
	for _, v := range old {
		v.Close()
	}
	first.Close()

	second := startRunWith(t, localrun.Options{Inspector: true, Addr: addr})
	b := connect(t, second, "new")
	waitFor(t, ctx, "the second run's connection and log alone",
		`(sid) => {
			const conns = [...document.querySelectorAll('#connections tbody tr[data-service]')];
			if (conns.length !== 1 || conns[0].dataset.service !== sid) return false;
			const id = conns[0].cells[0].innerText;
			const log = [...document.querySelectorAll('#log tbody tr')];
			return log.length > 0 && log.every(r => r.dataset.conn === id) &&
				log.some(r => r.dataset.op === 'CONNECT') &&
				document.querySelector('#live').innerText === 'live';
		}`, b.ID())
	if run := eval[string](t, ctx, `document.body.dataset.run`); run == firstRun || run == "" {
		t.Errorf("the page's run is %q after the restart, the first run was %q", run, firstRun)
	}
}

// TestThePageIsServerRenderedForAPersonWithoutScript reads the page as
// plain HTML: the tables list the connections and groups without any
// script.
func TestThePageIsServerRenderedForAPersonWithoutScript(t *testing.T) {
	s := startRun(t, true)
	a := connect(t, s, "plain")
	b := connect(t, s, "plain")
	html := get(t, s.InspectorURL(), nil)
	for _, want := range []string{a.ID(), b.ID(), `<tr data-group="plain">`, `id="send-frame"`, inspector.PathPrefix + "inspector.js"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// get fetches a page and returns its body; it fails the test unless the
// answer is 200.
func get(t *testing.T, url string, header http.Header) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestWithTheInspectorOffTheRootIsRefusedAsBefore: without the inspector,
// "/" and the inspector's paths are refused as any path outside the stage
// (403, as API Gateway answers), and the summary names no inspector.
func TestWithTheInspectorOffTheRootIsRefusedAsBefore(t *testing.T) {
	s := startRun(t, false)
	if s.InspectorURL() != "" || strings.Contains(s.Summary, "Inspector") {
		t.Errorf("an inspector is announced: %q\n%s", s.InspectorURL(), s.Summary)
	}
	base := "http://" + s.Addr()
	for _, path := range []string{"/", inspector.PathPrefix + "events", inspector.PathPrefix + "inspector.js"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || strings.Contains(string(b), "inspector") {
			t.Errorf("GET %s: %d %s, want 403 Forbidden", path, resp.StatusCode, b)
		}
	}
}

// TestTheSummaryPrintsTheInspectorURLOnItsOwnLine checks the line a new
// user opens.
func TestTheSummaryPrintsTheInspectorURLOnItsOwnLine(t *testing.T) {
	s := startRun(t, true)
	want := "  Inspector      http://" + s.Addr() + "/\n"
	if !strings.Contains(s.Summary, want) || s.InspectorURL() != "http://"+s.Addr()+"/" {
		t.Errorf("summary lacks %q (InspectorURL %q):\n%s", want, s.InspectorURL(), s.Summary)
	}
}

// TestTheLiveStreamOutlivesTheGatewaysRequestTimeout: the gateway's HTTP
// server bounds the reading of each request (ManagementTimeout); the live
// stream of events lasts longer, and still brings what happens after it,
// until the gateway stops.
func TestTheLiveStreamOutlivesTheGatewaysRequestTimeout(t *testing.T) {
	s := startRunWith(t, localrun.Options{Inspector: true, Gateway: gateway.Config{ManagementTimeout: 200 * time.Millisecond}})
	resp, err := http.Get("http://" + s.Addr() + inspector.PathPrefix + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET events: %d %s", resp.StatusCode, ct)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	time.Sleep(600 * time.Millisecond) // three times the timeout
	v := connect(t, s, "late")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended")
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"op":"CONNECT"`) && strings.Contains(l, v.ID()) {
				// Stopping the gateway ends the stream.
				go s.Close()
				for range lines {
				}
				return
			}
		case <-deadline:
			t.Fatal("the connection never showed on the stream")
		}
	}
}

// TestAStageNamedLikeTheInspectorsPrefixIsRefused: the inspector's paths
// would hide the stage's.
func TestAStageNamedLikeTheInspectorsPrefixIsRefused(t *testing.T) {
	_, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Token: testToken, Stage: strings.Trim(inspector.PathPrefix, "/"),
		BuildDir: t.TempDir(), Inspector: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("Start with stage %q: got %v, want an error saying it is reserved", strings.Trim(inspector.PathPrefix, "/"), err)
	}
}
