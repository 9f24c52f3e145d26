package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
)

// The operator commands against a real local gateway on DynamoDB Local: the
// template's functions, its $connect authorizer, the @connections API over
// HTTP, and socketctl as an operator runs it, from the environment.

const opsToken = "mst_socketctl-operator-test"

// otherGateway is a gateway that shares the table in some tests: its
// connections are unknown to the local gateway.
const otherGateway = "https://other.execute-api.us-east-1.amazonaws.com/prod"

type localGateway struct {
	t     *testing.T
	s     *localrun.Server
	store *dynamostore.Store
	// env is what socketctl reads: TABLE_NAME, DYNAMODB_ENDPOINT and
	// MANAGEMENT_ENDPOINT of this gateway.
	env map[string]string
}

// startGateway runs template.yaml on the local gateway, on a fresh table of
// DynamoDB Local, with connect auth required (the template's default) and
// no sweeper (tests leave gone connections in the table on purpose).
func startGateway(t *testing.T) *localGateway {
	t.Helper()
	client := dynamotest.Client(t)
	table := dynamotest.NewTable(t, client)
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr:             "127.0.0.1:0",
		Template:         "../../template.yaml",
		Parameters:       map[string]string{"ConnectAuth": "required"},
		Token:            opsToken,
		BuildDir:         t.TempDir(),
		Store:            localrun.StoreDynamoDB,
		DynamoDBEndpoint: dynamotest.Endpoint(t),
		Table:            table,
		SweepEvery:       -1,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start the local gateway: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	store, err := dynamostore.New(client, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	return &localGateway{t: t, s: s, store: store, env: map[string]string{
		"TABLE_NAME":          table,
		"DYNAMODB_ENDPOINT":   dynamotest.Endpoint(t),
		"MANAGEMENT_ENDPOINT": s.ManagementEndpoint(),
	}}
}

// socketctl runs socketctl against the gateway and fails the test unless
// it exits with want.
func (g *localGateway) socketctl(want int, args ...string) (stdout, stderr string) {
	g.t.Helper()
	code, stdout, stderr := socketctl(g.t, g.env, args...)
	if code != want {
		g.t.Fatalf("socketctl %s: got exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout, stderr
}

// record writes a connection that the gateway does not have: what a lost
// $disconnect leaves behind, or another gateway's connection.
func (g *localGateway) record(connID, serviceID, group, gateway string, connectedAt time.Time) {
	g.t.Helper()
	err := g.store.AddConnection(g.t.Context(), router.Connection{
		ID: connID, ConnectedAt: connectedAt, ExpiresAt: connectedAt.Add(2 * time.Hour), Gateway: gateway,
		Identity: &router.Identity{ServiceID: serviceID, Group: group, IdentifiedAt: connectedAt},
	})
	if err != nil {
		g.t.Fatal(err)
	}
}

// recorded reports whether the store still knows a service.
func (g *localGateway) recorded(serviceID string) bool {
	g.t.Helper()
	_, err := g.store.ServiceConnection(g.t.Context(), serviceID)
	if err != nil && !errors.Is(err, router.ErrNotFound) {
		g.t.Fatal(err)
	}
	return err == nil
}

// service is a client connected with a real WebSocket.
type service struct {
	t      *testing.T
	name   string
	id     string // its service id
	c      *websocket.Conn
	frames chan string
	closed chan websocket.StatusCode
}

// connect opens a connection as a service in group, with the token in the
// handshake, and learns its service id with "who am I".
func (g *localGateway) connect(name, group string) *service {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, g.s.URL()+"?group="+group, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + opsToken}},
	})
	if err != nil {
		g.t.Fatalf("%s: dial: %v", name, err)
	}
	v := &service{t: g.t, name: name, c: c, frames: make(chan string, 100), closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				v.closed <- websocket.CloseStatus(err)
				return
			}
			v.frames <- string(b)
		}
	}()
	g.t.Cleanup(func() { c.CloseNow() })

	v.send(`{"op":1,"id":"who"}`)
	var f struct {
		Op   protocol.Op             `json:"op"`
		ID   string                  `json:"id"`
		Data protocol.IdentifiedData `json:"data"`
	}
	if raw := v.next(); json.Unmarshal([]byte(raw), &f) != nil || f.Op != protocol.OpIdentify || f.ID != "who" || f.Data.Group != group {
		g.t.Fatalf("%s: who am I answered %s", name, raw)
	}
	v.id = f.Data.ID
	return v
}

func (v *service) send(frame string) {
	v.t.Helper()
	if err := v.c.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		v.t.Fatalf("%s: write: %v", v.name, err)
	}
}

// next returns the next frame.
func (v *service) next() string {
	v.t.Helper()
	select {
	case f := <-v.frames:
		return f
	case code := <-v.closed:
		select { // a frame that came before the close may still wait
		case f := <-v.frames:
			v.closed <- code
			return f
		default:
		}
		v.t.Fatalf("%s: closed (%d) while waiting for a frame", v.name, code)
	case <-time.After(10 * time.Second):
		v.t.Fatalf("%s: no frame in 10s", v.name)
	}
	return ""
}

// received returns every frame that arrived before the answer to a PING
// sent now: everything delivered before it, since the gateway keeps one
// connection's frames in order.
func (v *service) received() []string {
	v.t.Helper()
	v.send(`{"op":3,"id":"sync"}`)
	var got []string
	for {
		f := v.next()
		if f == `{"op":4,"id":"sync"}` {
			return got
		}
		got = append(got, f)
	}
}

// expect checks that exactly the frames want arrived.
func (v *service) expect(want ...string) {
	v.t.Helper()
	got := v.received()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		v.t.Errorf("%s received:\n  %s\nwant:\n  %s", v.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// connectionRows runs connections --json with args and returns its rows.
func (g *localGateway) connectionRows(args ...string) []connRow {
	g.t.Helper()
	out, _ := g.socketctl(0, append([]string{"connections", "--json"}, args...)...)
	var rows []connRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r connRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			g.t.Fatalf("connections --json printed %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestConnectionsListsServicesByGroupWithLastActive(t *testing.T) {
	g := startGateway(t)
	start := time.Now().Truncate(time.Millisecond)
	b1 := g.connect("b1", "beta")
	a1 := g.connect("a1", "alpha")
	time.Sleep(5 * time.Millisecond) // a1 is older than a2 to the millisecond
	a2 := g.connect("a2", "alpha")
	time.Sleep(50 * time.Millisecond)
	active := time.Now().Truncate(time.Millisecond)
	a2.received() // a frame from a2: its last activity is now
	// Connections the local gateway does not have: a lost one of its own,
	// and another gateway's, which is not its to list.
	g.record("lost=", "svc-lost", "alpha", g.s.ManagementEndpoint(), time.Now().Add(-time.Hour))
	g.record("other=", "svc-other", "alpha", otherGateway, time.Now().Add(-time.Hour))

	rows := g.connectionRows()
	var got []string
	for _, r := range rows {
		got = append(got, r.Group+" "+r.ServiceID)
	}
	// By group, then oldest first.
	want := []string{"alpha svc-lost", "alpha " + a1.id, "alpha " + a2.id, "beta " + b1.id}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("connections listed %v, want %v", got, want)
	}
	for _, r := range rows[1:] {
		if r.ConnectionID == "" || r.ConnectedAt.Before(start) || r.ConnectedAt.After(active) || r.Gone || r.LastActiveAt == nil {
			t.Errorf("row %+v: want a connection id, connected since the test began, and a last activity", r)
		}
	}
	if lost := rows[0]; !lost.Gone || lost.LastActiveAt != nil || lost.ConnectionID != "lost=" {
		t.Errorf("the lost connection is listed as %+v, want gone", lost)
	}
	if last := *rows[2].LastActiveAt; last.Before(active) {
		t.Errorf("a2 was last active at %v, want its PING's time, after %v", last, active)
	}
	for _, r := range []connRow{rows[1], rows[3]} {
		if !r.LastActiveAt.Before(active) {
			t.Errorf("%s was last active at %v, after it last sent anything (before %v)", r.ServiceID, *r.LastActiveAt, active)
		}
	}

	// The table a person reads.
	out, stderr := g.socketctl(0, "connections")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "GROUP") || !strings.Contains(lines[0], "LAST ACTIVE") {
		t.Fatalf("connections printed:\n%s", out)
	}
	for i, want := range []string{"svc-lost", a1.id, a2.id, b1.id} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d is %q, want %s", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[1], "gone") || !strings.Contains(lines[3], time.Now().UTC().Format("2006-01-02T")) ||
		!strings.Contains(lines[3], " (just now)") && !strings.Contains(lines[3], "s ago)") {
		t.Errorf("want the lost connection gone and the others' last activity:\n%s", out)
	}
	if !strings.Contains(stderr, "4 connections in 2 groups; 1 gone at the gateway") {
		t.Errorf("stderr %q, want the summary", stderr)
	}

	// One group; a management endpoint written with a trailing slash.
	rows = g.connectionRows("--group", "beta", "--management-endpoint", g.s.ManagementEndpoint()+"/")
	if len(rows) != 1 || rows[0].ServiceID != b1.id || rows[0].Group != "beta" {
		t.Errorf("connections --group beta: got %+v, want b1 only", rows)
	}
	if _, stderr := g.socketctl(0, "connections", "--group", "nobody"); !strings.Contains(stderr, "no connection of group nobody") {
		t.Errorf("an empty group: stderr %q", stderr)
	}
	if g.recorded("svc-lost") != true {
		t.Error("connections removed the lost connection: it must change nothing")
	}
}

func TestSendReachesItsTargetsAndNobodyElse(t *testing.T) {
	g := startGateway(t)
	a1 := g.connect("a1", "alpha")
	a2 := g.connect("a2", "alpha")
	b1 := g.connect("b1", "beta")
	const source = `"source":{"id":"socketctl","group":"socketctl"}`

	out, _ := g.socketctl(0, "send", "--global", "--event", "NOTICE", "--data", `{"n": 1}`, "--id", "op-1")
	if want := "EVENT op-1 to GLOBAL: 3 delivered, 0 gone, 0 failed\n"; out != want {
		t.Errorf("send --global printed %q, want %q", out, want)
	}
	global := `{"id":"op-1","op":0,"event":"NOTICE","data":{"n":1},"intent":{"target":"GLOBAL"},` + source + `}`
	for _, v := range []*service{a1, a2, b1} {
		v.expect(global)
	}

	out, _ = g.socketctl(0, "send", "--group", "alpha", "--event", "TO-ALPHA", "--id", "op-2")
	if want := "EVENT op-2 to GROUP alpha: 2 delivered, 0 gone, 0 failed\n"; out != want {
		t.Errorf("send --group printed %q, want %q", out, want)
	}
	toAlpha := `{"id":"op-2","op":0,"event":"TO-ALPHA","intent":{"target":"GROUP","identifier":"alpha"},` + source + `}`
	a1.expect(toAlpha)
	a2.expect(toAlpha)
	b1.expect()

	out, _ = g.socketctl(0, "send", "--direct", b1.id, "--event", "ASK", "--data", `"hi"`, "--id", "op-3", "--json")
	var res sendResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ID != "op-3" || res.Delivered != 1 || res.Gone != 0 || res.Failed != 0 ||
		res.Intent != (protocol.Intent{Target: protocol.TargetDirect, Identifier: b1.id}) {
		t.Errorf("send --direct --json printed %q (%v)", out, err)
	}
	b1.expect(`{"id":"op-3","op":0,"event":"ASK","data":"hi","intent":{"target":"DIRECT","identifier":"` + b1.id + `"},` + source + `}`)
	a1.expect()
	a2.expect()

	// Without --id, the EVENT gets a fresh UUID, and send says which.
	out, _ = g.socketctl(0, "send", "--group", "beta", "--event", "PLAIN")
	var f protocol.Frame
	if raw := b1.next(); json.Unmarshal([]byte(raw), &f) != nil || len(f.ID) != 36 || !strings.Contains(out, "EVENT "+f.ID+" to GROUP beta: 1 delivered") {
		t.Errorf("send without --id printed %q; b1 received %+v", out, f)
	}

	// The operator is not a service: a REPLY to the source is not delivered.
	b1.send(`{"op":5,"id":"op-3","intent":{"target":"DIRECT","identifier":"socketctl"}}`)
	if got := b1.next(); !strings.Contains(got, `"op":6`) || !strings.Contains(got, `"code":4006`) {
		t.Errorf("a REPLY to socketctl got %s, want TARGET_NOT_FOUND", got)
	}

	_, stderr := g.socketctl(1, "send", "--direct", "no-such-service", "--event", "ASK")
	if !strings.Contains(stderr, "service no-such-service is not connected") {
		t.Errorf("send to an unknown service: stderr %q", stderr)
	}
	for _, v := range []*service{a1, a2, b1} {
		v.expect()
	}
}

func TestSendCountsGoneRecipientsAndForgetsOnlyTheGatewaysOwn(t *testing.T) {
	g := startGateway(t)
	a1 := g.connect("a1", "alpha")
	old := time.Now().Add(-time.Hour)
	g.record("lost=", "svc-lost", "alpha", g.s.ManagementEndpoint(), old)
	g.record("young=", "svc-young", "alpha", g.s.ManagementEndpoint(), time.Now())
	g.record("other=", "svc-other", "alpha", otherGateway, old)

	out, stderr := g.socketctl(0, "send", "--group", "alpha", "--event", "E", "--id", "op-1", "--json")
	var res sendResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Delivered != 1 || res.Gone != 3 || res.Failed != 0 || res.Removed != 1 {
		t.Fatalf("send printed %q (%v), want 1 delivered, 3 gone, 1 removed", out, err)
	}
	a1.expect(`{"id":"op-1","op":0,"event":"E","intent":{"target":"GROUP","identifier":"alpha"},"source":{"id":"socketctl","group":"socketctl"}}`)
	for _, want := range []string{
		"removed the items of 1 gone connection that the gateway no longer has",
		"left 1 gone connection recorded less than 30s ago",
		"left alone 1 connection recorded by another gateway than " + g.s.ManagementEndpoint(),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not say %q", stderr, want)
		}
	}
	if g.recorded("svc-lost") {
		t.Error("the lost connection's items are still stored")
	}
	if _, err := g.store.Connection(t.Context(), "lost="); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the lost connection is still recorded: %v", err)
	}
	if !g.recorded("svc-young") || !g.recorded("svc-other") {
		t.Error("a connection in its handshake, or another gateway's, was removed")
	}

	// A DIRECT to a gone service is counted, and fails.
	out, stderr = g.socketctl(1, "send", "--direct", "svc-young", "--event", "E", "--id", "op-2")
	if !strings.Contains(out, "0 delivered, 1 gone, 0 failed") || !strings.Contains(stderr, "service svc-young is no longer connected") {
		t.Errorf("send to a gone service: stdout %q, stderr %q", out, stderr)
	}
	a1.expect()
}

func TestKickSendsDisconnectThenClosesAndForgets(t *testing.T) {
	g := startGateway(t)
	a1 := g.connect("a1", "alpha")
	a2 := g.connect("a2", "alpha")

	out, _ := g.socketctl(0, "kick", a1.id, "--reason", "maintenance")
	if !strings.HasPrefix(out, "kicked service "+a1.id+" (connection ") || !strings.Contains(out, "group alpha): DISCONNECT 4009 KICKED sent, connection closed, items removed.") {
		t.Errorf("kick printed %q", out)
	}
	if got, want := a1.next(), `{"op":2,"data":{"code":4009,"reason":"KICKED","message":"disconnected by an operator: maintenance"}}`; got != want {
		t.Errorf("a1 received %s, want %s", got, want)
	}
	select {
	case code := <-a1.closed:
		if code != websocket.StatusNormalClosure {
			t.Errorf("a1 was closed with %d, want 1000 (DeleteConnection)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a1 is still open after the kick")
	}
	if g.recorded(a1.id) {
		t.Error("a1's items are still stored")
	}
	if rows := g.connectionRows(); len(rows) != 1 || rows[0].ServiceID != a2.id {
		t.Errorf("after the kick, connections lists %+v, want a2 only", rows)
	}
	a2.expect()

	if _, stderr := g.socketctl(1, "kick", a1.id); !strings.Contains(stderr, "service "+a1.id+" is not connected") {
		t.Errorf("kicking twice: stderr %q", stderr)
	}

	// A service the gateway has lost is forgotten; another gateway's is
	// left alone.
	g.record("lost=", "svc-lost", "alpha", g.s.ManagementEndpoint(), time.Now().Add(-time.Hour))
	g.record("other=", "svc-other", "alpha", otherGateway, time.Now().Add(-time.Hour))
	if out, _ := g.socketctl(0, "kick", "svc-lost"); !strings.Contains(out, "was already gone at the gateway") || g.recorded("svc-lost") {
		t.Errorf("kicking a lost service printed %q; still recorded: %v", out, g.recorded("svc-lost"))
	}
	if _, stderr := g.socketctl(1, "kick", "svc-other"); !strings.Contains(stderr, "recorded by another gateway; nothing done") || !g.recorded("svc-other") {
		t.Errorf("kicking another gateway's service: stderr %q; still recorded: %v", stderr, g.recorded("svc-other"))
	}

	// A gateway that does not answer is named.
	_, stderr := g.socketctl(1, "kick", a2.id, "--management-endpoint", "http://127.0.0.1:1/dev")
	if !strings.Contains(stderr, "no gateway answers at http://127.0.0.1:1/dev") {
		t.Errorf("kick through a dead endpoint: stderr %q", stderr)
	}
	a2.expect()
}
