package inspector_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mastersocket/mastersocket/internal/emulator/inspector"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

// TestCrossSiteRequestsAreRefused: a POST from another site's page (its
// Origin), a plain form post (not JSON), and any request naming another
// host (DNS rebinding) are refused with 403 and a message that says why,
// and nothing is sent.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	s := startRun(t, true)
	a := connect(t, s, "csrf")
	b := connect(t, s, "csrf")
	_ = a
	html := get(t, s.InspectorURL(), nil)
	i := strings.Index(html, `data-service="`+b.ID()+`"`)
	if i < 0 {
		t.Fatalf("the page does not list B:\n%s", html)
	}
	// The connection id of B, from its row.
	row := html[strings.LastIndex(html[:i], `data-conn="`)+len(`data-conn="`):]
	connB := row[:strings.IndexByte(row, '"')]
	body := fmt.Sprintf(`{"as":"server","connection":%q,"frame":"{\"op\":0,\"event\":\"EVIL\",\"intent\":{\"target\":\"GLOBAL\"}}"}`, connB)
	sendURL := "http://" + s.Addr() + inspector.PathPrefix + "send"

	for _, tc := range []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"another site's origin", map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, "cross-site request refused"},
		{"a plain form post", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "want application/json"},
		{"a rebound host name", map[string]string{"Host": "evil.example:" + s.Addr()[strings.LastIndexByte(s.Addr(), ':')+1:], "Origin": "http://evil.example", "Content-Type": "application/json"}, "DNS rebinding"},
		{"another site, said by the browser", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, "cross-site request refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, sendURL, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct{ Error string }
			json.Unmarshal(b, &r)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(r.Error, tc.want) {
				t.Errorf("got %d %s, want 403 with an error saying %q", resp.StatusCode, b, tc.want)
			}
		})
	}
	// The page itself, under a rebound name, is refused too.
	req, _ := http.NewRequest(http.MethodGet, s.InspectorURL(), nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET / with Host evil.example: %d, want 403", resp.StatusCode)
	}

	// The same request from the page's own origin goes through.
	req, _ = http.NewRequest(http.MethodPost, sendURL, strings.NewReader(body))
	req.Header.Set("Origin", "http://"+s.Addr())
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a same-origin POST: %d, want 200", resp.StatusCode)
	}
	if m := b.receive(t, "the same-origin post"); m.Event != "EVIL" {
		t.Fatalf("B received %+v", m)
	}
	select {
	case m := <-b.got:
		t.Errorf("B received %+v from a refused request", m)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestAnotherSitesPageCannotSendFramesInChromium opens a page of another
// origin in Chromium that tries to send a frame through the inspector, as
// a malicious site a developer visits would: with a JSON fetch (stopped at
// the CORS preflight), a no-cors fetch and a plain form post (refused for
// their Origin). Nothing reaches the service.
func TestAnotherSitesPageCannotSendFramesInChromium(t *testing.T) {
	ctx := browser(t)
	s := startRun(t, true)
	b := connect(t, s, "victims")
	connB := ""
	for _, c := range inspectorState(t, s).Connections {
		if c.ServiceID == b.ID() {
			connB = c.ID
		}
	}
	if connB == "" {
		t.Fatal("the inspector does not list the service")
	}
	sendURL := "http://" + s.Addr() + inspector.PathPrefix + "send"
	body, _ := json.Marshal(map[string]string{"as": "server", "connection": connB, "frame": `{"op":0,"event":"EVIL","intent":{"target":"GLOBAL"}}`})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body><form id="f" method="post" action=%q enctype="text/plain"><input name=%q value=%q></form><p id="out"></p>
<script>
const out = document.getElementById("out");
const body = %q;
(async () => {
  const results = [];
  try { await fetch(%q, {method: "POST", headers: {"Content-Type": "application/json"}, body}); results.push("json: sent"); }
  catch (e) { results.push("json: blocked"); }
  try { await fetch(%q, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}); results.push("no-cors: sent"); }
  catch (e) { results.push("no-cors: blocked"); }
  out.innerText = results.join(", ");
})();
</script></body>`, sendURL, string(body[:len(body)-1])+`,"x":"`, `"}`, string(body), sendURL, sendURL)
	}))
	defer evil.Close()

	do(t, ctx, "visit another site", chromedp.Navigate(evil.URL))
	waitFor(t, ctx, "the other site's attempts", `() => document.getElementById('out').innerText.includes('no-cors')`)
	if got := eval[string](t, ctx, `document.getElementById('out').innerText`); !strings.HasPrefix(got, "json: blocked") {
		t.Errorf("the JSON fetch from another origin: %s, want it blocked by the browser", got)
	}
	do(t, ctx, "submit the other site's form", chromedp.Submit(chromedp.CSS("#f")))
	// The answer replaces the page: read it once the navigation is over.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(pageText(ctx), "cross-site request refused"); {
		if time.Now().After(deadline) {
			t.Fatalf("the form post was not refused; the page reads:\n%s", pageText(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case m := <-b.got:
		t.Fatalf("the service received %+v from another site's page", m)
	case <-time.After(500 * time.Millisecond):
	}
}

// inspectorState reads the connections the inspector lists, from its
// live stream's first event.
func inspectorState(t *testing.T, s *localrun.Server) inspector.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr()+inspector.PathPrefix+"events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var st inspector.State
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
	t.Fatalf("no state on the stream: %v", sc.Err())
	return inspector.State{}
}
