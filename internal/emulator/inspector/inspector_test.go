package inspector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

// feed gives an inspector what a gateway would report, at increasing times.
func feed(in *Inspector, obs ...gateway.Observation) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, o := range obs {
		if o.Time.IsZero() {
			o.Time = t0.Add(time.Duration(i) * time.Second)
		}
		if o.Size == 0 {
			o.Size = len(o.Body)
		}
		in.Observe(o)
	}
}

func TestIdentitiesComeFromTheAuthorizerOrTheIdentifyAnswer(t *testing.T) {
	in := New(Config{})
	feed(in,
		gateway.Observation{Kind: gateway.ObservedOpen, ConnectionID: "A=", SourceIP: "127.0.0.1",
			Authorizer: map[string]any{"principalId": "p", "serviceId": "svc-a", "group": "bots"}},
		gateway.Observation{Kind: gateway.ObservedOpen, ConnectionID: "B="},
		gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "B=", Route: "$default",
			Body: []byte(`{"op":1,"data":{"token":"mst_secret","group":"bots"}}`)},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "B=", Via: gateway.ViaRouteResponse, Status: 200,
			Body: []byte(`{"op":1,"data":{"id":"svc-b","group":"bots","ping":30000}}`)},
		gateway.Observation{Kind: gateway.ObservedOpen, ConnectionID: "C=",
			Authorizer: map[string]any{"serviceId": "svc-c", "group": "other"}},
	)
	st := in.Snapshot()
	if len(st.Connections) != 3 {
		t.Fatalf("got %d connections, want 3: %+v", len(st.Connections), st.Connections)
	}
	for i, want := range []ConnectionView{{ID: "A=", ServiceID: "svc-a", Group: "bots"}, {ID: "B=", ServiceID: "svc-b", Group: "bots"}, {ID: "C=", ServiceID: "svc-c", Group: "other"}} {
		if c := st.Connections[i]; c.ID != want.ID || c.ServiceID != want.ServiceID || c.Group != want.Group {
			t.Errorf("connection %d: got %+v, want %+v", i, c, want)
		}
	}
	if len(st.Groups) != 2 || st.Groups[0].Name != "bots" || len(st.Groups[0].Members) != 2 || st.Groups[1].Name != "other" {
		t.Errorf("groups: got %+v, want bots (2 members) and other", st.Groups)
	}
	if st.Connections[1].LastActive != "03:04:07" {
		t.Errorf("B's last active: got %s, want the time of its message, 03:04:07", st.Connections[1].LastActive)
	}
	for _, e := range st.Log {
		if strings.Contains(e.Body, "mst_secret") {
			t.Errorf("an entry shows the token: %+v", e)
		}
	}

	feed(in, gateway.Observation{Kind: gateway.ObservedClose, ConnectionID: "A=", Code: 1001, Reason: "Going away"})
	st = in.Snapshot()
	if len(st.Connections) != 2 || len(st.Groups[0].Members) != 1 {
		t.Errorf("after A closed: %+v, groups %+v", st.Connections, st.Groups)
	}
	if last := st.Log[len(st.Log)-1]; last.Op != "DISCONNECT" || last.Status != "1001 Going away" || last.Service != "svc-a" {
		t.Errorf("the close reads %+v", last)
	}
}

func TestTheLogNamesOpTargetSizeAndStatus(t *testing.T) {
	in := New(Config{})
	event := []byte(`{"op":0,"id":"m1","event":"HELLO","intent":{"target":"GROUP","identifier":"bots"}}`)
	feed(in,
		gateway.Observation{Kind: gateway.ObservedOpen, ConnectionID: "A=", Authorizer: map[string]any{"serviceId": "svc-a", "group": "bots"}},
		gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Route: "$default", Body: event},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "B=", Via: gateway.ViaPost, Status: 200, Body: event},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "C=", Via: gateway.ViaPost, Status: 410, Body: event},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "D=", Via: gateway.ViaPost, Status: 429, Body: event},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "E=", Via: gateway.ViaPost, Status: 413, Size: 200000},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "A=", Via: gateway.ViaRouteResponse, Status: 200,
			Body: []byte(`{"op":6,"id":"m1","data":{"code":4006,"reason":"TARGET_NOT_FOUND","message":"no such service"}}`)},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "A=", Via: gateway.ViaPost, Status: 200,
			Body: []byte(`{"op":2,"data":{"code":4004,"reason":"IDENTIFY_FAILED","message":"bad token"}}`)},
		gateway.Observation{Kind: gateway.ObservedInvokeError, ConnectionID: "A=", Route: "$default", Function: "MessageFunction", Err: errors.New("boom mst_leaked")},
		gateway.Observation{Kind: gateway.ObservedSend, ConnectionID: "A=", Via: gateway.ViaGateway, Status: 200,
			Body: []byte(`{"message":"Internal server error","connectionId":"A=","requestId":"r"}`)},
		gateway.Observation{Kind: gateway.ObservedDelete, ConnectionID: "A=", Status: 204},
	)
	st := in.Snapshot()
	type row struct{ dir, conn, op, target, event, status string }
	want := []row{
		{"conn", "A=", "CONNECT", "", "", "from "},
		{"in", "A=", "EVENT", "GROUP:bots", "HELLO", "received"},
		{"out", "B=", "EVENT", "GROUP:bots", "HELLO", "delivered"},
		{"out", "C=", "EVENT", "GROUP:bots", "HELLO", "gone 410"},
		{"out", "D=", "EVENT", "GROUP:bots", "HELLO", "throttled 429"},
		{"out", "E=", "(not read)", "", "", "too large 413"},
		{"out", "A=", "ERROR", "", "", "4006 TARGET_NOT_FOUND"},
		{"out", "A=", "DISCONNECT", "", "", "4004 IDENTIFY_FAILED"},
		{"in", "A=", "INVOKE FAILED", "", "", "boom mst_leaked"},
		{"out", "A=", "GATEWAY", "", "", "Internal server error"},
		{"in", "A=", "DELETE", "", "", "204"},
	}
	if len(st.Log) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(st.Log), len(want), st.Log)
	}
	for i, w := range want {
		e := st.Log[i]
		if got := (row{e.Dir, e.Conn, e.Op, e.Target, e.Event, e.Status}); got != w {
			t.Errorf("entry %d: got %+v, want %+v", i, got, w)
		}
	}
	if st.Log[1].Size != len(event) || st.Log[5].Size != 200000 || st.Log[1].ID != "m1" {
		t.Errorf("sizes or id: got %d, %d, %q", st.Log[1].Size, st.Log[5].Size, st.Log[1].ID)
	}
	var errs []string
	for _, e := range st.Errors {
		errs = append(errs, e.Op+" "+e.Status)
	}
	if got, want := strings.Join(errs, "; "), "ERROR 4006 TARGET_NOT_FOUND; DISCONNECT 4004 IDENTIFY_FAILED; INVOKE FAILED boom mst_leaked; GATEWAY Internal server error"; got != want {
		t.Errorf("errors: got %s, want %s", got, want)
	}
}

func TestBodiesAreRedactedWithTheGatewaysRedaction(t *testing.T) {
	in := New(Config{Redact: func(s string) string { return strings.ReplaceAll(gateway.RedactSecrets(s), "mst_", "mst_[REDACTED]") }})
	feed(in,
		gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(`{"op":1,"data":{"token":"mst_abc","group":"g"}}`)},
		gateway.Observation{Kind: gateway.ObservedInvokeError, ConnectionID: "A=", Err: errors.New("bad mst_abc")},
	)
	for _, e := range in.Snapshot().Log {
		if strings.Contains(e.Body+e.Status, "mst_abc") {
			t.Errorf("an entry shows the token: %+v", e)
		}
	}
}

func TestTheLogKeepsTheLastEntriesAndCutsLongBodies(t *testing.T) {
	in := New(Config{LogSize: 3})
	long := `{"op":3,"pad":"` + strings.Repeat("é", MaxBodyShown) + `"}`
	for range 5 {
		feed(in, gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(long)})
	}
	st := in.Snapshot()
	if len(st.Log) != 3 || st.Log[0].Seq != 3 || st.Log[2].Seq != 5 || st.Seq != 5 {
		t.Fatalf("got seqs %v (seq %d), want 3, 4, 5", []uint64{st.Log[0].Seq, st.Log[1].Seq, st.Log[2].Seq}, st.Seq)
	}
	if b := st.Log[0].Body; len(b) > MaxBodyShown+len("…") || !strings.HasSuffix(b, "…") || !strings.HasPrefix(b, `{"op":3`) {
		t.Errorf("a long body is shown as %d bytes ending %q", len(b), b[len(b)-10:])
	}
}

func TestASlowBrowserLosesEntriesAndTheGatewayNeverWaits(t *testing.T) {
	in := New(Config{})
	slow := &subscriber{ch: make(chan Entry, 2)}
	in.subs[slow] = struct{}{}
	done := make(chan struct{})
	go func() {
		for range 5 {
			feed(in, gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(`{"op":3}`)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Observe waited for a browser that does not read")
	}
	if got := slow.dropped.Load(); got != 3 || len(slow.ch) != 2 {
		t.Errorf("dropped %d with %d buffered, want 3 dropped, 2 buffered", got, len(slow.ch))
	}
}

func TestOnlyThisGatewaysAddressIsServed(t *testing.T) {
	for _, tc := range []struct {
		host, listen string
		ok           bool
	}{
		{"127.0.0.1:3001", "127.0.0.1:3001", true},
		{"localhost:3001", "127.0.0.1:3001", true},
		{"LOCALHOST:3001", "127.0.0.1:3001", true},
		{"[::1]:3001", "127.0.0.1:3001", true},
		{"192.168.1.5:3001", "192.168.1.5:3001", true},
		{"evil.example:3001", "127.0.0.1:3001", false},
		{"127.0.0.1:3002", "127.0.0.1:3001", false},
		{"127.0.0.1", "127.0.0.1:3001", false},
		{"0.0.0.0:3001", "0.0.0.0:3001", false},
		{"localhost:3001", "0.0.0.0:3001", true},
	} {
		if err := checkHost(tc.host, tc.listen); (err == nil) != tc.ok {
			t.Errorf("Host %q on %s: got %v, want ok %v", tc.host, tc.listen, err, tc.ok)
		}
	}
}

func TestTheExampleIsAGroupEventToTheConnectionsGroup(t *testing.T) {
	if got, want := ExampleFrame("bots"), `{"op":0,"event":"HELLO","data":{"from":"inspector"},"intent":{"target":"GROUP","identifier":"bots"}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if !strings.Contains(ExampleFrame(""), `"identifier":"demo"`) {
		t.Errorf("without a group: %s", ExampleFrame(""))
	}
}

// fakeGateway is a Gateway at 127.0.0.1:3001 that sends nothing.
type fakeGateway struct{}

func (fakeGateway) Addr() string                                 { return "127.0.0.1:3001" }
func (fakeGateway) Inject(context.Context, string, []byte) error { return nil }
func (fakeGateway) ManagementEndpoint() string                   { return "http://127.0.0.1:3001/dev" }
func (fakeGateway) ManagementTransport() http.RoundTripper       { return http.DefaultTransport }

// stuckBrowser is a ResponseWriter whose writes wait for release, as a
// browser that does not read.
type stuckBrowser struct {
	header  http.Header
	release chan struct{}
	mu      sync.Mutex
	out     strings.Builder
}

func (b *stuckBrowser) Header() http.Header { return b.header }
func (b *stuckBrowser) WriteHeader(int)     {}
func (b *stuckBrowser) Flush()              {}
func (b *stuckBrowser) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *stuckBrowser) written() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func TestTheStreamTellsASlowBrowserHowManyEntriesItLost(t *testing.T) {
	in := New(Config{StreamSize: 2})
	in.Attach(fakeGateway{})
	b := &stuckBrowser{header: http.Header{}, release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:3001"+PathPrefix+"events", nil)
	done := make(chan struct{})
	go func() {
		in.Handler().ServeHTTP(b, req)
		close(done)
	}()
	// Wait until the stream is subscribed, then send it more than it holds.
	for deadline := time.Now().Add(5 * time.Second); ; {
		in.mu.Lock()
		n := len(in.subs)
		in.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	for range 7 {
		feed(in, gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(`{"op":3}`)})
	}
	close(b.release)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.written(), "event: dropped\ndata: 5\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("the stream never said 5 entries were dropped:\n%s", b.written())
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.Close()
	<-done
}

// stream opens the inspector's live stream with a request's query and
// Last-Event-ID, and returns what it wrote within a moment.
func stream(t *testing.T, in *Inspector, query, lastEventID string) string {
	t.Helper()
	b := &stuckBrowser{header: http.Header{}, release: make(chan struct{})}
	close(b.release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:3001"+PathPrefix+"events"+query, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	in.Handler().ServeHTTP(b, req)
	return b.written()
}

// entryIDs returns the ids of a stream's entries, in order.
func entryIDs(out string) []string {
	var ids []string
	for _, ev := range strings.Split(out, "\n\n") {
		if !strings.HasPrefix(ev, "event: entry\n") {
			continue
		}
		for _, line := range strings.Split(ev, "\n") {
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func TestAPageOfAnotherRunIsSentTheWholeLogAfterAReset(t *testing.T) {
	in := New(Config{})
	in.Attach(fakeGateway{})
	for range 3 {
		feed(in, gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(`{"op":3}`)})
	}
	run := in.Snapshot().Run
	all := []string{run + ":1", run + ":2", run + ":3"}
	for _, tc := range []struct {
		name, query, lastEventID string
		reset                    bool
		ids                      []string
	}{
		{"a new page", "", "", false, all},
		{"a page of this run", "?run=" + run + "&since=2", "", false, all[2:]},
		{"a reconnection in this run", "?run=" + run + "&since=0", run + ":1", false, all[1:]},
		{"a page of another run, further on", "?run=old&since=7", "", true, all},
		{"a page of another run, not as far", "?run=old&since=1", "", true, all},
		{"a reconnection after a restart", "?run=" + run + "&since=0", "old:9", true, all},
		{"a page ahead of this run", "?run=" + run + "&since=9", "", true, all},
	} {
		out := stream(t, in, tc.query, tc.lastEventID)
		if got := strings.Contains(out, "event: reset\ndata: {\"run\":\""+run+"\"}\n"); got != tc.reset {
			t.Errorf("%s: reset %v, want %v:\n%s", tc.name, got, tc.reset, out)
		}
		if got := entryIDs(out); strings.Join(got, " ") != strings.Join(tc.ids, " ") {
			t.Errorf("%s: entries %v, want %v", tc.name, got, tc.ids)
		}
	}
	if other := New(Config{}).Snapshot().Run; other == run {
		t.Errorf("two inspectors share the run %q", run)
	}
}

func TestLongEventsIDsTargetsAndErrorsAreCut(t *testing.T) {
	in := New(Config{})
	long := strings.Repeat("é", 50<<10)
	frame := `{"op":0,"event":"` + long + `","id":"` + long + `","intent":{"target":"DIRECT","identifier":"` + long + `"}}`
	feed(in,
		gateway.Observation{Kind: gateway.ObservedMessage, ConnectionID: "A=", Body: []byte(frame)},
		gateway.Observation{Kind: gateway.ObservedInvokeError, ConnectionID: "A=", Err: errors.New(long)},
	)
	log := in.Snapshot().Log
	e, failed := log[0], log[1]
	for name, v := range map[string]string{"event": e.Event, "id": e.ID, "target": e.Target, "invocation error": failed.Status} {
		if len(v) > MaxFieldShown+len("…") || !strings.HasSuffix(v, "…") || !utf8.ValidString(v) {
			t.Errorf("the %s is kept as %d bytes (valid UTF-8 %v), want at most %d and marked as cut", name, len(v), utf8.ValidString(v), MaxFieldShown)
		}
	}
	if !strings.HasPrefix(e.Target, "DIRECT:éé") {
		t.Errorf("the target reads %.20q", e.Target)
	}
}
