package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

// A client that sends and never reads fills its own queue and is dropped;
// meanwhile a good client's round trips stay quick. Before, the route
// responses it did not read held every invocation slot until the write
// timeout (a minute), and every other connection stalled with it.
func TestAClientThatDoesNotReadCostsOnlyItself(t *testing.T) {
	funcs := standardFuncs()
	big := strings.Repeat("x", 64<<10)
	funcs["Echo"] = func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if ev.Body == "ping" {
			return ok200("pong")
		}
		return ok200(big) // fills the socket buffers of a client that does not read
	}
	rec := newRecorder(funcs)
	gw := start(t, gateway.Config{
		Routes: standardRoutes(), Invoker: rec,
		SendQueue: 8, MaxInvocations: 4, WriteTimeout: time.Minute,
	})
	bad := dial(t, gw.URL(), nil)
	if tc, ok := bad.nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	badEv, _ := rec.event(t, "Connect")
	good := dial(t, gw.URL(), nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the bad client floods and never reads
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			f := ws.MaskFrame(ws.NewTextFrame([]byte("flood")))
			bad.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if ws.WriteFrame(bad.nc, f) != nil {
				return // dropped
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	var worst time.Duration
	for range 30 {
		start := time.Now()
		good.text("ping")
		if got := good.readText(); got != "pong" { // readText fails the test after 5 s
			t.Fatalf("got %q, want pong", got)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("slowest round trip of the good client while the bad one flooded: %v", worst)

	// The bad client was dropped, abnormally, long before the write timeout.
	deadline := time.After(10 * time.Second)
	for {
		ev, _ := rec.event(t, "Disconnect")
		if ev.RequestContext.ConnectionID == badEv.RequestContext.ConnectionID {
			if ev.RequestContext.DisconnectStatusCode != 1006 {
				t.Errorf("the bad client's $disconnect says %d, want 1006", ev.RequestContext.DisconnectStatusCode)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatal("the client that does not read was never dropped")
		default:
		}
	}
}

// A close frame whose body is one byte is malformed (RFC 6455 §5.5.1: a
// body holds a 2-byte code, then a reason): 1002, not a clean close.
func TestAOneByteCloseBodyIsAProtocolError(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	c := dial(t, gw.URL(), nil)
	rec.event(t, "Connect")
	c.frame(true, ws.OpClose, []byte{0x03})
	if code, _ := c.expectClose(); code != 1002 {
		t.Fatalf("got close %d, want 1002", code)
	}
	ev, _ := rec.event(t, "Disconnect")
	if ev.RequestContext.DisconnectStatusCode != 1002 {
		t.Errorf("$disconnect says %d, want 1002", ev.RequestContext.DisconnectStatusCode)
	}
}

// A management API request that stops short of its body is dropped once
// ManagementTimeout has passed, instead of holding a connection for ever.
func TestAManagementRequestCutShortIsDropped(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, ManagementTimeout: 300 * time.Millisecond})
	nc, err := net.Dial("tcp", gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "POST /dev/@connections/R1kmxc2VNjMCFIA%%3D HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n12", gw.Addr())
	start := time.Now()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, nc) // until the server closes it
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the connection stayed open %v with a body 98 bytes short", waited)
	}
}

// GetConnection's lastActiveAt is when the client last sent something:
// what the gateway posts to it does not count, so that a client that only
// listens is seen silent.
func TestLastActiveAtCountsWhatTheClientSends(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	c := dial(t, gw.URL(), nil)
	ev, _ := rec.event(t, "Connect")
	id := aws.String(ev.RequestContext.ConnectionID)
	api := mgmtClient(gw)
	status := func() (connected, last time.Time) {
		t.Helper()
		out, err := api.GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToTime(out.ConnectedAt), aws.ToTime(out.LastActiveAt)
	}
	connected, last := status()
	if d := last.Sub(connected); d < 0 || d > 100*time.Millisecond {
		t.Fatalf("a new connection: connectedAt %v, lastActiveAt %v", connected, last)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := api.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: []byte("news")}); err != nil {
		t.Fatal(err)
	}
	c.readText()
	if _, after := status(); !after.Equal(last) {
		t.Errorf("lastActiveAt moved from %v to %v on a post to the client", last, after)
	}
	c.text("hello")
	c.readText()
	if _, after := status(); after.Sub(last) < 250*time.Millisecond {
		t.Errorf("lastActiveAt %v after the client sent a message, want later than %v", after, last)
	}
}

// Verbose logs never hold a secret: not a token in a body, not the
// Authorization header of $connect, not a token in the query string.
func TestVerboseLogsRedactSecrets(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, Verbose: true,
		Logger: newTextLogger(&lockedWriter{mu: &mu, w: &logs})})
	c := dial(t, gw.URL()+"?access_token=query-secret-1&group=bots", map[string][]string{"Authorization": {"Bearer header-secret-2"}})
	rec.event(t, "Connect")
	c.text(`{"op":1,"data":{"token":"body-secret-3","group":"bots"},"x":{"apiKey":"body-secret-4","password":"body-secret-5`)
	c.readText()
	c.frame(true, ws.OpClose, ws.NewCloseFrameBody(1000, ""))
	c.expectClose()
	rec.event(t, "Disconnect")
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, secret := range []string{"query-secret-1", "header-secret-2", "body-secret-3", "body-secret-4", "body-secret-5"} {
		if strings.Contains(out, secret) {
			t.Errorf("the verbose log holds %s", secret)
		}
	}
	for _, kept := range []string{"bots", `\"op\":1`, gateway.Redacted} {
		if !strings.Contains(out, kept) {
			t.Errorf("the verbose log lacks %s: redaction took too much\n%s", kept, out)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"op":1,"data":{"token":"mst_abc","group":"g"}}`, `{"data":{"group":"g","token":"[REDACTED]"},"op":1}`},
		{`{"accessToken" : "a\"b", "n":1}`, `{"accessToken":"[REDACTED]","n":1}`},
		{`{"Authorization":"Bearer x"}`, `{"Authorization":"[REDACTED]"}`},
		{`{"token":"cut sho`, `{"token":"[REDACTED]"`},
		{`{"token":5,"tokens":["a"]}`, `{"token":5,"tokens":["a"]}`},
		{`{"event":"token","data":"secret"}`, `{"event":"token","data":"secret"}`},
		{`{"op":1,"data":{"tok\u0065n":"mst_abc","group":"g"}}`, `{"data":{"group":"g","token":"[REDACTED]"},"op":1}`},
		{`{"x":[{"ApiKey":"k1"},{"Cookie":"c"}]}`, `{"x":[{"ApiKey":"[REDACTED]"},{"Cookie":"[REDACTED]"}]}`},
	}
	for _, tt := range tests {
		if got := gateway.RedactSecrets(tt.in); got != tt.want {
			t.Errorf("RedactSecrets(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
