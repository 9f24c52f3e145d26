package inspector

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"example": ExampleFrame,
}).ParseFS(assets, "assets/page.html"))

// ExampleFrame is the frame the form offers for a connection of group: a
// GROUP EVENT to its own group (to "demo" when the group is not known yet).
func ExampleFrame(group string) string {
	if group == "" {
		group = "demo"
	}
	g, _ := json.Marshal(group)
	return `{"op":0,"event":"HELLO","data":{"from":"inspector"},"intent":{"target":"GROUP","identifier":` + string(g) + `}}`
}

// Handler serves the page at "/" and everything under PathPrefix: give it
// to the gateway as Home and as the API at PathPrefix.
//
// Every request must name this gateway in its Host header (its listening
// address, or localhost, 127.0.0.1 or [::1] on its port), so that a web
// page of another site cannot reach it through DNS rebinding; a POST must
// carry JSON and, when it has an Origin header, come from the page's own
// origin, so that another site cannot send frames through a visitor's
// browser. Refusals are 403 with a message that says why.
func (in *Inspector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		gw := in.gw
		in.mu.Unlock()
		if gw == nil {
			http.Error(w, "inspector: not attached to a gateway yet", http.StatusServiceUnavailable)
			return
		}
		if err := checkHost(r.Host, gw.Addr()); err != nil {
			refuse(w, r, err)
			return
		}
		switch {
		case r.URL.Path == "/":
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				methodNotAllowed(w, "GET")
				return
			}
			in.servePage(w)
		case r.URL.Path == PathPrefix+"events":
			if r.Method != http.MethodGet {
				methodNotAllowed(w, "GET")
				return
			}
			in.serveEvents(w, r)
		case r.URL.Path == PathPrefix+"send":
			if r.Method != http.MethodPost {
				methodNotAllowed(w, "POST")
				return
			}
			if err := checkPost(r); err != nil {
				refuse(w, r, err)
				return
			}
			in.serveSend(w, r, gw)
		case r.URL.Path == PathPrefix+"inspector.js", r.URL.Path == PathPrefix+"inspector.css":
			name := "assets/" + strings.TrimPrefix(r.URL.Path, PathPrefix)
			b, err := assets.ReadFile(name)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			ctype := "text/css; charset=utf-8"
			if strings.HasSuffix(name, ".js") {
				ctype = "text/javascript; charset=utf-8"
			}
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// refuse answers 403 with err's text: as JSON to the form's POST, as text
// otherwise.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	if r.Method == http.MethodPost {
		writeJSON(w, http.StatusForbidden, sendResult{Error: err.Error()})
		return
	}
	http.Error(w, err.Error(), http.StatusForbidden)
}

// checkHost refuses a Host header that does not name the gateway: its
// listening address, or localhost, 127.0.0.1 or [::1] on its port.
func checkHost(host, listen string) error {
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("inspector: listening address %q: %w", listen, err)
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil { // no port: the default one
		h, port = strings.Trim(host, "[]"), "80"
	}
	okHost := strings.EqualFold(h, "localhost") || h == "127.0.0.1" || h == "::1" ||
		(h == lhost && !net.ParseIP(lhost).IsUnspecified())
	if !okHost || port != lport {
		return fmt.Errorf("inspector: refused: Host %q is not this gateway's address (%s, or localhost:%s); "+
			"a page of another site reaching it by DNS rebinding is refused", host, listen, lport)
	}
	return nil
}

// checkPost refuses a POST that another site's page could have sent: one
// whose Origin (when the browser sends one) is not the page's own, and one
// that is not JSON (a plain HTML form of another site cannot send JSON
// without a CORS preflight, which the inspector never allows).
func checkPost(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != "http" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("inspector: cross-site request refused: Origin %q is not this page's origin (http://%s)", origin, r.Host)
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("inspector: cross-site request refused: Sec-Fetch-Site is %q", site)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return fmt.Errorf("inspector: refused: Content-Type %q, want application/json", ct)
	}
	return nil
}

// pageData is what the page template renders.
type pageData struct {
	State
	Example string
}

func (in *Inspector) servePage(w http.ResponseWriter) {
	st := in.Snapshot()
	// Newest first, as the script adds them.
	for i, j := 0, len(st.Log)-1; i < j; i, j = i+1, j-1 {
		st.Log[i], st.Log[j] = st.Log[j], st.Log[i]
	}
	for i, j := 0, len(st.Errors)-1; i < j; i, j = i+1, j-1 {
		st.Errors[i], st.Errors[j] = st.Errors[j], st.Errors[i]
	}
	d := pageData{State: st, Example: ExampleFrame("")}
	if len(st.Connections) > 0 {
		d.Example = ExampleFrame(st.Connections[0].Group)
	}
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		http.Error(w, "inspector: render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No script but the page's own, no framing by another site.
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}

// subscriber is one browser's live stream.
type subscriber struct {
	ch      chan Entry
	dropped atomic.Int64
}

// push hands an entry to the stream without waiting: when the browser is
// behind by the whole buffer, the entry is dropped and counted.
func (s *subscriber) push(e Entry) {
	select {
	case s.ch <- e:
	default:
		s.dropped.Add(1)
	}
}

// How often the stream sends the connections' state when it changed, and
// a comment to keep the stream alive when nothing happens.
const (
	stateEvery     = 250 * time.Millisecond
	keepaliveEvery = 15 * time.Second
)

// serveEvents streams server-sent events: "reset" (the page's log is of
// another run of the gateway, or ahead of this one's: clear it), "state"
// (the connections and groups, when they change), "entry" (each log entry,
// after those the page already has) and "dropped" (how many entries this
// stream had to drop).
//
// An entry's event id is RUN:SEQ. The page names the last entry it has as
// run=RUN&since=SEQ; the browser's Last-Event-ID, when it reconnects,
// overrides them.
func (in *Inspector) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The gateway's HTTP server bounds the reading of a request; a stream
	// lasts longer.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	q := r.URL.Query()
	run := q.Get("run")
	since, _ := strconv.ParseUint(q.Get("since"), 10, 64)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		run, since = parseEventID(id)
	}
	sub := &subscriber{ch: make(chan Entry, in.cfg.StreamSize)}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		http.Error(w, "inspector: the gateway is stopping", http.StatusServiceUnavailable)
		return
	}
	// A page that has entries of another run, or more than this run has
	// (its numbers restarted), is sent everything, after a reset.
	reset := (since > 0 || run != "") && (run != in.run || since > in.seq)
	if reset {
		since = 0
	}
	var backlog []Entry
	for _, e := range in.log.all() {
		if e.Seq > since {
			backlog = append(backlog, e)
		}
	}
	st := in.stateLocked()
	version := in.version
	in.subs[sub] = struct{}{}
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.subs, sub)
		in.mu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	var buf bytes.Buffer
	event := func(name string, id uint64, v any) {
		b, _ := json.Marshal(v)
		buf.WriteString("event: " + name + "\n")
		if id > 0 {
			buf.WriteString("id: " + in.run + ":" + strconv.FormatUint(id, 10) + "\n")
		}
		buf.WriteString("data: ")
		buf.Write(b)
		buf.WriteString("\n\n")
	}
	flush := func() bool {
		if buf.Len() == 0 {
			return true
		}
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	// A browser reconnects a second after the stream ends (the gateway
	// restarting), not the default three.
	buf.WriteString("retry: 1000\n\n")
	if reset {
		event("reset", 0, map[string]string{"run": in.run})
	}
	event("state", 0, st)
	for _, e := range backlog {
		event("entry", e.Seq, e)
	}
	if !flush() {
		return
	}
	tick := time.NewTicker(stateEvery)
	defer tick.Stop()
	quiet, reported := time.Now(), int64(0)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-in.done:
			return
		case e := <-sub.ch:
			event("entry", e.Seq, e)
			for more := true; more && buf.Len() < 64<<10; {
				select {
				case e := <-sub.ch:
					event("entry", e.Seq, e)
				default:
					more = false
				}
			}
		case <-tick.C:
			in.mu.Lock()
			if in.version != version {
				st, version = in.stateLocked(), in.version
				event("state", 0, st)
			}
			in.mu.Unlock()
			if n := sub.dropped.Load(); n != reported {
				reported = n
				event("dropped", 0, n)
			}
			if buf.Len() == 0 && time.Since(quiet) > keepaliveEvery {
				buf.WriteString(": keepalive\n\n")
			}
		}
		if buf.Len() > 0 {
			quiet = time.Now()
		}
		if !flush() {
			return
		}
	}
}

// parseEventID reads an entry's event id, RUN:SEQ; an id without a run
// (of an older page) has run "".
func parseEventID(id string) (run string, seq uint64) {
	run, n, ok := strings.Cut(id, ":")
	if !ok {
		run, n = "", id
	}
	seq, _ = strconv.ParseUint(n, 10, 64)
	return run, seq
}

// sendRequest is the form's POST: send Frame as the connection (As
// "connection": as if it had sent it) or to it (As "server": a
// PostToConnection).
type sendRequest struct {
	As         string `json:"as"`
	Connection string `json:"connection"`
	Frame      string `json:"frame"`
}

// sendResult answers the form: Result when it was done, Error otherwise.
type sendResult struct {
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// maxSendBytes bounds the form's POST: a frame of the gateway's largest
// message (128 KiB), escaped in JSON.
const maxSendBytes = 1 << 20

func (in *Inspector) serveSend(w http.ResponseWriter, r *http.Request, gw Gateway) {
	var req sendRequest
	d := json.NewDecoder(io.LimitReader(r.Body, maxSendBytes))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, sendResult{Error: "inspector: the request is not the form's JSON: " + err.Error()})
		return
	}
	if req.Connection == "" {
		writeJSON(w, http.StatusBadRequest, sendResult{Error: "choose a connection"})
		return
	}
	if req.Frame == "" {
		writeJSON(w, http.StatusBadRequest, sendResult{Error: "the frame is empty"})
		return
	}
	switch req.As {
	case "connection":
		err := gw.Inject(r.Context(), req.Connection, []byte(req.Frame))
		switch {
		case errors.Is(err, gateway.ErrNoConnection):
			writeJSON(w, http.StatusGone, sendResult{Error: "connection " + req.Connection + " is gone"})
		case err != nil:
			writeJSON(w, http.StatusBadRequest, sendResult{Error: err.Error()})
		default:
			writeJSON(w, http.StatusOK, sendResult{Result: "handled as a message from " + req.Connection + " (see the log)"})
		}
	case "server":
		status, err := post(r.Context(), gw, req.Connection, []byte(req.Frame))
		switch {
		case err != nil:
			writeJSON(w, http.StatusBadGateway, sendResult{Error: err.Error()})
		case status == http.StatusOK:
			writeJSON(w, http.StatusOK, sendResult{Result: "PostToConnection " + req.Connection + ": 200, delivered"})
		default:
			writeJSON(w, http.StatusOK, sendResult{Error: "PostToConnection " + req.Connection + ": " + strconv.Itoa(status) + " " + http.StatusText(status)})
		}
	default:
		writeJSON(w, http.StatusBadRequest, sendResult{Error: fmt.Sprintf("as %q: want connection or server", req.As)})
	}
}

// post calls PostToConnection on the gateway's management API, as a
// function does, and returns its status.
func post(ctx context.Context, gw Gateway, id string, body []byte) (int, error) {
	u := gw.ManagementEndpoint() + "/@connections/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("inspector: PostToConnection: %w", err)
	}
	resp, err := (&http.Client{Transport: gw.ManagementTransport()}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("inspector: PostToConnection: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
