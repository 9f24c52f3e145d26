package localrun_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// Faults injected under the functions, and what must hold once they pass:
// after traffic resumes and one sweep has run, the table holds no item of a
// connection that is gone, every live identified connection is reachable,
// and nothing was ever delivered twice.

// dbCall is one DynamoDB request as a fault sees it.
type dbCall struct {
	op      string // "DeleteItem", from X-Amz-Target
	attempt int    // from Amz-Sdk-Request: 1 for the first attempt
	body    []byte
	req     *http.Request
}

// dbFaults carries the DynamoDB store's calls and lets a test answer some
// of them itself: fault returns a response (or an error) to inject, or
// nil, nil to let the call through.
type dbFaults struct {
	base  http.Client
	mu    sync.Mutex
	fault func(dbCall) (*http.Response, error)
}

func (f *dbFaults) set(fault func(dbCall) (*http.Response, error)) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *dbFaults) Do(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault != nil {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		op := req.Header.Get("X-Amz-Target")
		op = op[strings.LastIndex(op, ".")+1:]
		if resp, err := fault(dbCall{op, sdkAttempt(req), body, req}); resp != nil || err != nil {
			return resp, err
		}
	}
	return f.base.Do(req)
}

var attemptHeader = regexp.MustCompile(`attempt=(\d+)`)

// sdkAttempt returns which attempt of its call the AWS SDK is making with
// req (its Amz-Sdk-Request header): 1 for the first.
func sdkAttempt(req *http.Request) int {
	if m := attemptHeader.FindStringSubmatch(req.Header.Get("Amz-Sdk-Request")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return n
		}
	}
	return 1
}

// dynamoError is an awsJson1_0 error answer of DynamoDB.
func dynamoError(req *http.Request, status int, typ, msg string) *http.Response {
	body := fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":%q}`, typ, msg)
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}
}

// mgmtCall is one @connections request as a fault sees it.
type mgmtCall struct {
	method, conn string
	attempt      int
	req          *http.Request
	next         http.RoundTripper
}

// mgmtFaults wraps the transport of the functions' @connections calls.
type mgmtFaults struct {
	mu    sync.Mutex
	fault func(mgmtCall) (*http.Response, error)
}

func (f *mgmtFaults) set(fault func(mgmtCall) (*http.Response, error)) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *mgmtFaults) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		f.mu.Lock()
		fault := f.fault
		f.mu.Unlock()
		if fault != nil {
			conn := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
			if resp, err := fault(mgmtCall{req.Method, conn, sdkAttempt(req), req, next}); resp != nil || err != nil {
				return resp, err
			}
		}
		return next.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// mgmtError is an @connections error answer.
func mgmtError(req *http.Request, status int, typ string) *http.Response {
	body := `{"message":"` + typ + `"}`
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}, "X-Amzn-Errortype": {typ}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}
}

// peer is a service whose every delivery is counted by message id, to see
// duplicates; other frames are queued for the test.
type peer struct {
	t      *testing.T
	name   string
	c      *websocket.Conn
	id     string // service id
	mu     sync.Mutex
	got    map[string]int // EVENT id → deliveries
	frames chan protocol.Frame
	closed chan websocket.StatusCode
}

func dialPeer(t *testing.T, url, name string) (*peer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	p := &peer{t: t, name: name, c: c, got: map[string]int{}, frames: make(chan protocol.Frame, 1000), closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				p.closed <- websocket.CloseStatus(err)
				return
			}
			var f protocol.Frame
			var op struct{ Op *int }
			if json.Unmarshal(b, &f) != nil || json.Unmarshal(b, &op) != nil {
				continue
			}
			if op.Op == nil { // the gateway's own error: {"message": ...}
				f = protocol.Frame{Op: -1, Data: b}
			}
			if f.Op == protocol.OpEvent {
				p.mu.Lock()
				p.got[f.ID]++
				p.mu.Unlock()
				continue
			}
			p.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return p, nil
}

func joinPeer(t *testing.T, url, name, tok, group string) *peer {
	t.Helper()
	p, err := dialPeer(t, url, name)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	p.send(`{"op":1,"data":{"token":"` + tok + `","group":"` + group + `"}}`)
	f := p.next()
	var d protocol.IdentifiedData
	if f.Op != protocol.OpIdentify || json.Unmarshal(f.Data, &d) != nil {
		t.Fatalf("%s: IDENTIFY answered %+v %s", name, f, f.Data)
	}
	p.id = d.ID
	return p
}

func (p *peer) send(body string) {
	p.t.Helper()
	if err := p.c.Write(context.Background(), websocket.MessageText, []byte(body)); err != nil {
		p.t.Fatalf("%s: write: %v", p.name, err)
	}
}

func (p *peer) next() protocol.Frame {
	p.t.Helper()
	select {
	case f := <-p.frames:
		return f
	case code := <-p.closed:
		p.t.Fatalf("%s: closed (%d) while waiting for a frame", p.name, code)
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%s: no frame", p.name)
	}
	return protocol.Frame{}
}

// count returns how often the EVENT id reached p.
func (p *peer) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[id]
}

// noDuplicates fails the test if any EVENT reached p twice.
func (p *peer) noDuplicates() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, n := range p.got {
		if n > 1 {
			p.t.Errorf("%s received %s %d times", p.name, id, n)
		}
	}
}

var msgSeq atomic.Int64

// group sends a GROUP EVENT with a fresh id and returns the id.
func (p *peer) group(group string) string {
	id := fmt.Sprintf("m%d", msgSeq.Add(1))
	p.send(`{"op":0,"id":"` + id + `","event":"E","intent":{"target":"GROUP","identifier":"` + group + `"}}`)
	return id
}

// faultWorld is a local gateway on DynamoDB with faults to inject.
type faultWorld struct {
	t     *testing.T
	s     *localrun.Server
	db    *dbFaults
	mgmt  *mgmtFaults
	store *dynamostore.Store // the same table, without faults: what the checks read
}

func newFaultWorld(t *testing.T, endpoint, table string, gw func(*localrun.Options)) *faultWorld {
	t.Helper()
	w := &faultWorld{t: t, db: &dbFaults{}, mgmt: &mgmtFaults{}}
	o := localrun.Options{
		Store: localrun.StoreDynamoDB, DynamoDBEndpoint: endpoint, Table: table,
		DynamoDBHTTPClient: w.db, ManagementTransport: w.mgmt.wrap,
		SweepEvery: -1, // the test sweeps
		// The test's connections are a moment old: no handshake to wait for.
		Environment: map[string]string{"SWEEP_HANDSHAKE_GRACE_MS": "1"},
	}
	if gw != nil {
		gw(&o)
	}
	w.s = startLocal(t, o)
	client, err := dynamostore.NewClient(t.Context(), endpoint, dynamostore.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if w.store, err = dynamostore.New(client, dynamostore.Config{Table: table}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *faultWorld) join(name, group string) *peer {
	w.t.Helper()
	return joinPeer(w.t, w.s.URL(), name, e2eToken, group)
}

// healed sweeps once and checks the table and the live peers: the table
// holds items of exactly the live peers (no item of a gone connection),
// each is reached exactly once by a DIRECT and a GROUP, and no peer ever
// received an EVENT twice.
func (w *faultWorld) healed(live []*peer, all []*peer) {
	w.t.Helper()
	ctx := w.t.Context()
	w.db.set(nil)
	w.mgmt.set(nil)
	if err := w.s.RunSchedules(ctx); err != nil {
		w.t.Fatalf("sweep: %v", err)
	}
	want := map[string]bool{}
	for _, p := range live {
		want[p.id] = true
	}
	var mu sync.Mutex
	conns := map[string]string{} // connection → service ("" if anonymous)
	if err := w.store.Connections(ctx, w.s.ManagementEndpoint(), func(page []router.Connection) error {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range page {
			conns[c.ID] = ""
			if c.Identity != nil {
				conns[c.ID] = c.Identity.ServiceID
			}
		}
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	members := map[string]bool{}
	if err := w.store.AllMembers(ctx, func(page []router.Member) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range page {
			members[m.ConnectionID] = true // fan-out listings need not carry the service id
		}
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	for conn, svc := range conns {
		if !want[svc] {
			w.t.Errorf("the table still holds connection %s (service %q), which is gone", conn, svc)
		}
	}
	for conn := range members {
		if svc, ok := conns[conn]; !ok || !want[svc] {
			w.t.Errorf("the table still holds GLOBAL membership of connection %s (service %q), which is gone", conn, svc)
		}
	}
	for _, p := range all {
		if want[p.id] {
			continue
		}
		if _, err := w.store.ServiceConnection(ctx, p.id); !errors.Is(err, router.ErrNotFound) {
			w.t.Errorf("gone service %s (%s) is still reachable: %v", p.id, p.name, err)
		}
	}

	probe := w.join("probe", "probe")
	for _, p := range live {
		id := fmt.Sprintf("d%d", msgSeq.Add(1))
		probe.send(`{"op":0,"id":"` + id + `","event":"D","intent":{"target":"DIRECT","identifier":"` + p.id + `"}}`)
		eventuallyFor(w.t, 10*time.Second, func() bool { return p.count(id) == 1 }, "%s never got its DIRECT", p.name)
	}
	id := probe.group("fault") // every live peer is in group "fault"
	for _, p := range live {
		eventuallyFor(w.t, 10*time.Second, func() bool { return p.count(id) == 1 }, "%s never got the GROUP", p.name)
	}
	time.Sleep(200 * time.Millisecond) // anything late would be a duplicate
	for _, p := range all {
		p.noDuplicates()
	}
}

// closeAbruptly drops a peer's TCP connection without a close frame.
func closeAbruptly(p *peer) {
	p.c.CloseNow()
	<-p.closed
}

func sharedDynamo(t *testing.T) (string, string) {
	db := dynamotest.Client(t)
	return dynamotest.Endpoint(t), dynamotest.NewTable(t, db)
}

// DynamoDB down: the real engine is stopped under connected services, a
// service leaves during the outage ($disconnect fails), another cannot
// connect; the engine comes back with its data, traffic resumes, a sweep
// removes the one that left.
func TestAnOutageOfDynamoDBIsHealedByOneSweep(t *testing.T) {
	engine := dynamotest.StartEngine(t)
	client, err := dynamostore.NewClient(t.Context(), engine.Endpoint, dynamostore.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	table := "mst-faults"
	if _, err := dynamostore.EnsureTable(t.Context(), client, table); err != nil {
		t.Fatal(err)
	}
	w := newFaultWorld(t, engine.Endpoint, table, func(o *localrun.Options) { o.Gateway.IntegrationTimeout = 3 * time.Second })
	a, b, c := w.join("a", "fault"), w.join("b", "fault"), w.join("c", "fault")

	engine.Stop()
	id := a.group("fault") // fails: the function cannot list the group
	if f := a.next(); f.Op != -1 {
		t.Errorf("during the outage the sender got %+v %s, want the gateway's error", f, f.Data)
	}
	c.c.Close(websocket.StatusNormalClosure, "bye") // its $disconnect fails
	<-c.closed
	if _, err := dialPeer(t, w.s.URL(), "refused"); err == nil {
		t.Error("a handshake succeeded while DynamoDB was down; $connect cannot record it")
	}
	engine.Start()

	if b.count(id) > 1 {
		t.Errorf("b got the outage's message %d times", b.count(id))
	}
	id = a.group("fault")
	eventuallyFor(t, 10*time.Second, func() bool { return b.count(id) == 1 }, "traffic did not resume")
	w.healed([]*peer{a, b}, []*peer{a, b, c})
}

// DynamoDB throttling. First a burst in which every attempt is throttled:
// 30 messages fail after their 5 attempts each, 150 throttled retries, more
// than the SDK's default client-wide retry quota allows (500 tokens, 5 a
// retry). Then every call is throttled twice before it succeeds: each is
// still retried (at most 5 attempts) however many calls were throttled
// before it, so nothing fails and nothing is lost.
func TestThrottlingNeverStarvesRetries(t *testing.T) {
	ep, table := sharedDynamo(t)
	w := newFaultWorld(t, ep, table, nil)
	var peers []*peer
	for i := range 6 {
		peers = append(peers, w.join(fmt.Sprintf("p%d", i), "fault"))
	}
	sender := peers[0]
	throttle := func(c dbCall) *http.Response {
		return dynamoError(c.req, http.StatusBadRequest, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
	}

	var burst atomic.Int64
	w.db.set(func(c dbCall) (*http.Response, error) { burst.Add(1); return throttle(c), nil })
	for range 30 {
		sender.group("fault")
	}
	for range 30 {
		if f := sender.next(); f.Op != -1 {
			t.Fatalf("during the burst the sender got %+v, want the gateway's error", f)
		}
	}
	t.Logf("burst: %d attempts throttled", burst.Load())

	var throttled, maxAttempt atomic.Int64
	w.db.set(func(c dbCall) (*http.Response, error) {
		for {
			m := maxAttempt.Load()
			if int64(c.attempt) <= m || maxAttempt.CompareAndSwap(m, int64(c.attempt)) {
				break
			}
		}
		if c.attempt <= 2 {
			throttled.Add(1)
			return throttle(c), nil
		}
		return nil, nil
	})
	var ids []string
	for range 5 {
		ids = append(ids, sender.group("fault"))
	}
	for _, id := range ids {
		for _, p := range peers[1:] {
			eventuallyFor(t, 20*time.Second, func() bool { return p.count(id) == 1 }, "%s never got %s after the burst", p.name, id)
		}
	}
	leaving := peers[5]
	closeAbruptly(leaving)
	eventuallyFor(t, 20*time.Second, func() bool {
		_, err := w.store.ServiceConnection(t.Context(), leaving.id)
		return errors.Is(err, router.ErrNotFound)
	}, "$disconnect under throttling never removed the service")
	select {
	case f := <-sender.frames:
		t.Errorf("after the burst the sender got %+v, want nothing: every call retried to success", f)
	default:
	}
	t.Logf("after the burst: %d attempts throttled; the most attempts of one call: %d", throttled.Load(), maxAttempt.Load())
	if burst.Load() < 150 || maxAttempt.Load() != 3 {
		t.Errorf("got %d attempts throttled in the burst and at most %d attempts a call after; want 150 or more, and 3", burst.Load(), maxAttempt.Load())
	}
	w.healed(peers[:5], peers)
}

// The management API answers 429, 500 or never: a 429 is retried and
// delivers once; a 500 or a timeout after the frame went out is not
// retried, so the frame is never delivered twice.
func TestManagementAPIFaultsNeverDeliverTwice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(mgmtCall) (*http.Response, error)
	}{
		{"429 on the first attempt", func(c mgmtCall) (*http.Response, error) {
			if c.method == http.MethodPost && c.attempt == 1 {
				return mgmtError(c.req, http.StatusTooManyRequests, "LimitExceededException"), nil
			}
			return nil, nil
		}},
		{"500 after delivering", deliverThen(func(c mgmtCall) (*http.Response, error) {
			return mgmtError(c.req, http.StatusInternalServerError, "InternalServerErrorException"), nil
		})},
		{"no answer after delivering", deliverThen(func(c mgmtCall) (*http.Response, error) {
			<-c.req.Context().Done() // the answer never comes
			return nil, c.req.Context().Err()
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, table := sharedDynamo(t)
			w := newFaultWorld(t, ep, table, func(o *localrun.Options) { o.Gateway.IntegrationTimeout = 2 * time.Second })
			a, b, c := w.join("a", "fault"), w.join("b", "fault"), w.join("c", "fault")
			w.mgmt.set(tc.fault)
			id := a.group("fault")
			direct := fmt.Sprintf("d%d", msgSeq.Add(1))
			a.send(`{"op":0,"id":"` + direct + `","event":"D","intent":{"target":"DIRECT","identifier":"` + b.id + `"}}`)
			for _, p := range []*peer{b, c} {
				eventuallyFor(t, 10*time.Second, func() bool { return p.count(id) == 1 }, "%s never got the GROUP", p.name)
			}
			eventuallyFor(t, 10*time.Second, func() bool { return b.count(direct) == 1 }, "b never got the DIRECT")
			time.Sleep(2500 * time.Millisecond) // past the integration timeout: a retry would have landed
			w.healed([]*peer{a, b, c}, []*peer{a, b, c})
		})
	}
}

// deliverThen is a fault that lets every post through (the frame is
// delivered), then answers it with answer instead of the gateway's 200.
func deliverThen(answer func(mgmtCall) (*http.Response, error)) func(mgmtCall) (*http.Response, error) {
	return func(c mgmtCall) (*http.Response, error) {
		if c.method != http.MethodPost {
			return nil, nil
		}
		resp, err := c.next.RoundTrip(c.req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return answer(c)
	}
}

// A recipient goes while a GROUP is being delivered: its post is 410, its
// items are removed at once, the others get the message once.
func TestARecipientGoneMidFanOutIsForgotten(t *testing.T) {
	ep, table := sharedDynamo(t)
	w := newFaultWorld(t, ep, table, nil)
	var peers []*peer
	for i := range 8 {
		peers = append(peers, w.join(fmt.Sprintf("p%d", i), "fault"))
	}
	leaving := peers[4]
	var leaveOnce sync.Once
	var leavingConn atomic.Value
	conn, err := w.store.ServiceConnection(t.Context(), leaving.id)
	if err != nil {
		t.Fatal(err)
	}
	leavingConn.Store(conn)
	w.mgmt.set(func(c mgmtCall) (*http.Response, error) {
		if c.method == http.MethodPost && c.conn == strings.ReplaceAll(leavingConn.Load().(string), "=", "%3D") || c.method == http.MethodPost && c.conn == leavingConn.Load().(string) {
			leaveOnce.Do(func() { closeAbruptly(leaving) })
			// Wait until the gateway has let it go, so that this post is 410.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				resp, err := c.next.RoundTrip(c.req.Clone(c.req.Context()))
				if err == nil && resp.StatusCode == http.StatusGone {
					return resp, nil
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return nil, nil
	})
	id := peers[0].group("fault")
	for _, p := range peers[1:] {
		if p == leaving {
			continue
		}
		eventuallyFor(t, 10*time.Second, func() bool { return p.count(id) == 1 }, "%s never got the GROUP", p.name)
	}
	if _, err := w.store.ServiceConnection(t.Context(), leaving.id); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the recipient gone mid-fan-out is still reachable: %v", err)
	}
	var live []*peer
	for _, p := range peers {
		if p != leaving {
			live = append(live, p)
		}
	}
	w.healed(live, peers)
}

// The $disconnect function is killed half-way: the group, service and
// shard items are deleted, then the call that deletes the connection item
// hangs until the integration timeout ends the invocation. The connection
// item is left, in no group: only the sweeper finds it.
func TestADisconnectKilledHalfWayIsFinishedBySweeping(t *testing.T) {
	ep, table := sharedDynamo(t)
	w := newFaultWorld(t, ep, table, func(o *localrun.Options) { o.Gateway.IntegrationTimeout = time.Second })
	a, b, c := w.join("a", "fault"), w.join("b", "fault"), w.join("c", "fault")
	var killed atomic.Int64
	w.db.set(func(call dbCall) (*http.Response, error) {
		if call.op == "DeleteItem" && bytes.Contains(call.body, []byte(`"CONN#`)) && bytes.Contains(call.body, []byte(`"META"`)) {
			killed.Add(1)
			<-call.req.Context().Done() // the function is killed before this answers
			return nil, call.req.Context().Err()
		}
		return nil, nil
	})
	c.c.Close(websocket.StatusNormalClosure, "bye")
	<-c.closed
	eventuallyFor(t, 10*time.Second, func() bool { return killed.Load() > 0 }, "the $disconnect never reached the connection item")
	time.Sleep(1500 * time.Millisecond) // the invocation is over
	var conn atomic.Int64
	w.store.Connections(t.Context(), w.s.ManagementEndpoint(), func(page []router.Connection) error { conn.Add(int64(len(page))); return nil })
	if conn := conn.Load(); conn != 3 {
		t.Fatalf("before the sweep the table lists %d connections, want 3 (c's item left behind)", conn)
	}
	w.healed([]*peer{a, b}, []*peer{a, b, c})
}

// The gateway process is killed under connected services: no $disconnect
// runs. The gateway started again (same address, so the same management
// endpoint, as an API Gateway stage keeps its own) sweeps the old
// connections away; the killed gateway's token expires on its own.
func TestConnectionsOfAKilledGatewayAreSweptAway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the localgw command")
	}
	ep, table := sharedDynamo(t)
	bin := t.TempDir() + "/localgw"
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/localgw").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	killedToken := "mst_killed-gateway"
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--template", "../../../template.yaml", "--token", killedToken,
		"--store", "dynamodb", "--dynamodb-endpoint", ep, "--table", table, "--sweep-every", "off",
		"--parameter-overrides", "ConnectAuth=off") // its peers connect seed-style, as newFaultWorld's do
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urlRE := regexp.MustCompile(`ws://127\.0\.0\.1:\d+/dev`)
	sc := bufio.NewScanner(stdout)
	url := ""
	for url == "" && sc.Scan() {
		url = urlRE.FindString(sc.Text())
	}
	go io.Copy(io.Discard, stdout)
	var old []*peer
	for i := range 5 {
		old = append(old, joinPeer(t, url, fmt.Sprintf("old%d", i), killedToken, "fault"))
	}
	anon, err := dialPeer(t, url, "old-anonymous")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, p := range append(old, anon) {
		if code := <-p.closed; code != -1 {
			t.Errorf("%s: closed with %d, want an abnormal end (-1)", p.name, code)
		}
	}

	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/dev")
	w := newFaultWorld(t, ep, table, func(o *localrun.Options) { o.Addr = addr })
	a, b := w.join("a", "fault"), w.join("b", "fault")
	w.healed([]*peer{a, b}, append(old, a, b))

	left, err := w.store.Token(t.Context(), token.HashOf(killedToken))
	if err != nil {
		t.Fatalf("the killed gateway's token: %v", err)
	}
	if left.ExpiresAt.IsZero() || time.Until(left.ExpiresAt) > localrun.DefaultTokenLease {
		t.Errorf("the killed gateway left a token expiring %v, want within %v", left.ExpiresAt, localrun.DefaultTokenLease)
	}
}
