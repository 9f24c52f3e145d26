package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

var connIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{15}=$`)

// keys returns the set of JSON paths of a document, e.g.
// requestContext.identity.sourceIp, ignoring values.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, x := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			// Header names are the client's; compare the maps, not their keys.
			if strings.HasSuffix(prefix, "eaders") || strings.HasSuffix(prefix, "Parameters") {
				continue
			}
			out = append(out, p)
			walk(p, x)
		}
	}
	walk("", v)
	slices.Sort(out)
	return out
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../testdata/apigw/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventShapesMatchAPIGateway(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, Stage: "prod"})
	c := dial(t, gw.URL()+"?team=a&team=b&x=%2F", http.Header{"x-Custom-Casing": {"yes"}, "User-Agent": {"shape-test"}})
	c.text(`{"op":3}`)
	if got := c.readText(); got != `echo:{"op":3}` {
		t.Fatalf("got %q", got)
	}
	c.frame(true, ws.OpClose, ws.NewCloseFrameBody(4000, "bye"))

	connect, rawConnect := rec.event(t, "Connect")
	message, rawMessage := rec.event(t, "Echo")
	disconnect, rawDisconnect := rec.event(t, "Disconnect")

	for _, tt := range []struct {
		name string
		raw  []byte
	}{{"connect", rawConnect}, {"message", rawMessage}, {"disconnect", rawDisconnect}} {
		want := keys(t, fixture(t, tt.name))
		if tt.name == "connect" { // the fixture connects without a query string
			want = append(want, "multiValueQueryStringParameters", "queryStringParameters")
			slices.Sort(want)
		}
		if got := keys(t, tt.raw); !slices.Equal(got, want) {
			t.Errorf("%s event: got fields\n%v\nwant (as API Gateway sends)\n%v", tt.name, got, want)
		}
	}

	rc := connect.RequestContext
	if rc.RouteKey != "$connect" || rc.EventType != "CONNECT" || rc.Stage != "prod" || rc.MessageDirection != "IN" ||
		!connIDPattern.MatchString(rc.ConnectionID) || rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.UserAgent != "shape-test" {
		t.Errorf("CONNECT context: %+v", rc)
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.RequestTime); err != nil {
		t.Errorf("requestTime %q: %v", rc.RequestTime, err)
	}
	if connect.Headers["x-Custom-Casing"] != "yes" || connect.Headers["Sec-WebSocket-Version"] != "13" ||
		connect.Headers["Sec-WebSocket-Key"] == "" || connect.Headers["X-Forwarded-For"] != "127.0.0.1" ||
		!strings.HasPrefix(connect.Headers["X-Amzn-Trace-Id"], "Root=1-") || connect.Headers["Host"] == "" {
		t.Errorf("CONNECT headers keep the client's casing and add API Gateway's: %v", connect.Headers)
	}
	if !slices.Equal(connect.MultiValueQueryStringParameters["team"], []string{"a", "b"}) ||
		connect.QueryStringParameters["team"] != "b" || connect.QueryStringParameters["x"] != "/" {
		t.Errorf("query: %v %v", connect.QueryStringParameters, connect.MultiValueQueryStringParameters)
	}
	mrc := message.RequestContext
	if mrc.RouteKey != "$default" || mrc.EventType != "MESSAGE" || mrc.ConnectionID != rc.ConnectionID ||
		mrc.ConnectedAt != rc.ConnectedAt || message.Body != `{"op":3}` || message.Headers != nil || !connIDPattern.MatchString(mrc.MessageID.(string)) {
		t.Errorf("MESSAGE: %+v", message)
	}
	drc := disconnect.RequestContext
	if drc.EventType != "DISCONNECT" || drc.DisconnectStatusCode != 4000 || drc.DisconnectReason == nil || *drc.DisconnectReason != "bye" {
		t.Errorf("DISCONNECT: %+v", drc)
	}
}

func TestConnectDecidesTheHandshake(t *testing.T) {
	tests := []struct {
		name       string
		connect    fn
		wantStatus int // 0: connected
		wantHeader string
	}{
		{"200 connects", func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 200, Headers: map[string]string{"Sec-WebSocket-Protocol": "mst.v1"}}, nil
		}, 0, "mst.v1"},
		{"401 refuses", func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 401, Body: "no"}, nil
		}, 401, ""},
		{"error is 502", func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{}, errors.New("boom")
		}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			funcs := standardFuncs()
			funcs["Connect"] = tt.connect
			rec := newRecorder(funcs)
			gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
			var status int
			d := ws.Dialer{Protocols: []string{"mst.v1"}, Timeout: 5 * time.Second,
				OnStatusError: func(s int, _ []byte, _ io.Reader) { status = s }}
			nc, _, hs, err := d.Dial(context.Background(), gw.URL())
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				nc.Close()
				if hs.Protocol != tt.wantHeader {
					t.Errorf("got Sec-WebSocket-Protocol %q, want %q", hs.Protocol, tt.wantHeader)
				}
				return
			}
			if err == nil || status != tt.wantStatus {
				t.Fatalf("got status %d, %v; want %d", status, err, tt.wantStatus)
			}
			// A refused handshake never invokes $disconnect.
			time.Sleep(50 * time.Millisecond)
			rec.mu.Lock()
			n := len(rec.events["Disconnect"])
			rec.mu.Unlock()
			if n != 0 {
				t.Errorf("$disconnect ran %d times after a refused handshake", n)
			}
		})
	}
}

func mgmtClient(gw *gateway.Gateway) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint:     aws.String(gw.ManagementEndpoint()),
		RetryMaxAttempts: 1,
	})
}

func TestPostBeforeConnectReturnsIsGone(t *testing.T) {
	var gw *gateway.Gateway
	var postErr error
	funcs := standardFuncs()
	funcs["Connect"] = func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		_, postErr = mgmtClient(gw).PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(ev.RequestContext.ConnectionID), Data: []byte("too early")})
		return ok200("")
	}
	gw = start(t, gateway.Config{Routes: standardRoutes(), Invoker: newRecorder(funcs)})
	dial(t, gw.URL(), nil)
	var gone *types.GoneException
	if !errors.As(postErr, &gone) {
		t.Fatalf("PostToConnection inside $connect: got %v, want *types.GoneException", postErr)
	}
}

func TestRouteSelectionAndResponses(t *testing.T) {
	funcs := standardFuncs()
	funcs["Join"] = func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return ok200("joined:" + ev.RequestContext.RouteKey)
	}
	funcs["Silent"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return ok200("never sent")
	}
	funcs["Broken"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{}, errors.New("boom")
	}
	routes := append(standardRoutes(),
		gateway.Route{Key: "join", Function: "Join", RouteResponse: true},
		gateway.Route{Key: "quiet", Function: "Silent"}, // no route response
		gateway.Route{Key: "7", Function: "Join", RouteResponse: true},
		gateway.Route{Key: "broken", Function: "Broken", RouteResponse: true},
	)
	gw := start(t, gateway.Config{Routes: routes, Invoker: newRecorder(funcs)})
	c := dial(t, gw.URL(), nil)

	c.text(`{"action":"join"}`)
	if got := c.readText(); got != "joined:join" {
		t.Errorf("action join: got %q", got)
	}
	c.text(`{"action":7}`)
	if got := c.readText(); got != "joined:7" {
		t.Errorf("numeric action: got %q", got)
	}
	for _, body := range []string{`{"action":"nope"}`, `not json`, `{"action":{"x":1}}`, `{"action":"$connect"}`} {
		c.text(body)
		if got := c.readText(); got != "echo:"+body {
			t.Errorf("%s: got %q, want $default", body, got)
		}
	}
	c.text(`{"action":"quiet"}`)
	c.expectNothing(200 * time.Millisecond)

	c.text(`{"action":"broken"}`)
	g := parseGatewayError(t, c.readText())
	if g.Message != "Internal server error" {
		t.Errorf("function error: got %+v", g)
	}
	c.text(`{"action":"join"}`) // the connection survives
	if got := c.readText(); got != "joined:join" {
		t.Errorf("after an error: got %q", got)
	}

	// Without $default, an unmatched message gets Forbidden.
	gw2 := start(t, gateway.Config{Routes: routes[:2], Invoker: newRecorder(funcs)})
	c2 := dial(t, gw2.URL(), nil)
	c2.text(`{"action":"join"}`)
	if g := parseGatewayError(t, c2.readText()); g.Message != "Forbidden" {
		t.Errorf("got %+v, want Forbidden", g)
	}
}

func TestFrameLimits(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	tests := []struct {
		name   string
		send   func(c *client)
		code   ws.StatusCode
		result string // echo expected instead of a close
	}{
		{"binary frame closes 1003", func(c *client) { c.frame(true, ws.OpBinary, []byte{1, 2}) }, 1003, ""},
		{"frame over 32 KB closes 1009", func(c *client) { c.text(strings.Repeat("x", 32<<10+1)) }, 1009, ""},
		{"frame of 32 KB passes", func(c *client) { c.text(strings.Repeat("y", 32<<10)) }, 0, "echo:" + strings.Repeat("y", 32<<10)},
		{"40 KB in 4 KB frames passes", func(c *client) {
			for i := range 10 {
				op := ws.OpContinuation
				if i == 0 {
					op = ws.OpText
				}
				c.frame(i == 9, op, bytes.Repeat([]byte{'a' + byte(i)}, 4<<10))
			}
		}, 0, "echo:" + func() string {
			var b strings.Builder
			for i := range 10 {
				b.WriteString(strings.Repeat(string(rune('a'+i)), 4<<10))
			}
			return b.String()
		}()},
		{"message over 128 KB in small frames closes 1009", func(c *client) {
			for i := range 5 {
				op := ws.OpContinuation
				if i == 0 {
					op = ws.OpText
				}
				c.frame(i == 4, op, bytes.Repeat([]byte{'z'}, 30<<10))
			}
		}, 1009, ""},
		{"invalid UTF-8 closes 1007", func(c *client) { c.frame(true, ws.OpText, []byte{0xff, 0xfe}) }, 1007, ""},
		{"unmasked-looking misuse: continuation first closes 1002", func(c *client) { c.frame(true, ws.OpContinuation, []byte("x")) }, 1002, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, gw.URL(), nil)
			rec.event(t, "Connect")
			tt.send(c)
			if tt.code == 0 {
				if got := c.readText(); got != tt.result {
					t.Fatalf("got %d bytes, want %d", len(got), len(tt.result))
				}
				c.frame(true, ws.OpClose, ws.NewCloseFrameBody(1000, ""))
				rec.event(t, "Disconnect")
				return
			}
			code, _ := c.expectClose()
			if code != tt.code {
				t.Fatalf("got close %d, want %d", code, tt.code)
			}
			ev, _ := rec.event(t, "Disconnect")
			if ev.RequestContext.DisconnectStatusCode != int64(tt.code) {
				t.Errorf("$disconnect got %d, want %d", ev.RequestContext.DisconnectStatusCode, tt.code)
			}
		})
	}
}

func TestPingFramesAreAnsweredByTheGateway(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	c := dial(t, gw.URL(), nil)
	rec.event(t, "Connect")
	c.frame(true, ws.OpPing, []byte("are you there"))
	op, p, err := c.read()
	if err != nil || op != ws.OpPong || string(p) != "are you there" {
		t.Fatalf("got %v %q %v, want a pong with the ping's payload", op, p, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events["Echo"]) != 0 {
		t.Error("a ping frame reached a function")
	}
}

func TestIdleAndLifetimeLimits(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, IdleTimeout: 300 * time.Millisecond, MaxLifetime: time.Hour})
	c := dial(t, gw.URL(), nil)
	if code, reason := c.expectClose(); code != 1001 || reason != "Going away" {
		t.Errorf("idle: got %d %q, want 1001 Going away", code, reason)
	}
	if ev, _ := rec.event(t, "Disconnect"); ev.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("idle $disconnect code %d", ev.RequestContext.DisconnectStatusCode)
	}

	rec2 := newRecorder(standardFuncs())
	gw2 := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec2, IdleTimeout: time.Hour, MaxLifetime: 500 * time.Millisecond})
	c2 := dial(t, gw2.URL(), nil)
	stop := time.After(2 * time.Second)
	go func() { // keep it busy: only its age can close it
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				ws.WriteFrame(c2.nc, ws.MaskFrame(ws.NewPingFrame(nil)))
			}
		}
	}()
	if code, _ := c2.expectClose(); code != 1001 {
		t.Errorf("lifetime: got %d, want 1001", code)
	}
}

func TestConcurrentInvocationsPerConnection(t *testing.T) {
	release := make(chan struct{})
	funcs := standardFuncs()
	funcs["Echo"] = func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if ev.Body == "slow" {
			<-release
		}
		return ok200(ev.Body)
	}
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: newRecorder(funcs)})
	c := dial(t, gw.URL(), nil)
	c.text("slow")
	c.text("fast")
	if got := c.readText(); got != "fast" {
		t.Fatalf("got %q first, want fast: invocations must not wait for each other", got)
	}
	close(release)
	if got := c.readText(); got != "slow" {
		t.Fatalf("got %q, want slow", got)
	}
}

func TestDisconnectCodes(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	api := mgmtClient(gw)

	tests := []struct {
		name       string
		end        func(t *testing.T, c *client, id string)
		wantClose  ws.StatusCode // what the client sees; 0 for none expected
		wantCode   int64
		wantReason string
	}{
		{"client close with code", func(_ *testing.T, c *client, _ string) { c.frame(true, ws.OpClose, ws.NewCloseFrameBody(4001, "done")) }, 4001, 4001, "done"},
		{"client close without code", func(_ *testing.T, c *client, _ string) { c.frame(true, ws.OpClose, nil) }, 1000, 1005, ""},
		{"client vanishes", func(_ *testing.T, c *client, _ string) { c.nc.Close() }, 0, 1006, ""},
		{"DeleteConnection", func(t *testing.T, _ *client, id string) {
			if _, err := api.DeleteConnection(context.Background(), &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}, 1000, 1000, "Connection Closed Normally"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, gw.URL(), nil)
			ev, _ := rec.event(t, "Connect")
			tt.end(t, c, ev.RequestContext.ConnectionID)
			if tt.wantClose != 0 {
				if code, _ := c.expectClose(); code != tt.wantClose {
					t.Errorf("client got close %d, want %d", code, tt.wantClose)
				}
			}
			d, _ := rec.event(t, "Disconnect")
			if d.RequestContext.DisconnectStatusCode != tt.wantCode || d.RequestContext.DisconnectReason == nil ||
				*d.RequestContext.DisconnectReason != tt.wantReason || d.RequestContext.ConnectionID != ev.RequestContext.ConnectionID {
				t.Errorf("$disconnect got %d %v, want %d %q", d.RequestContext.DisconnectStatusCode, d.RequestContext.DisconnectReason, tt.wantCode, tt.wantReason)
			}
		})
	}
}

func TestCloseEndsEveryConnection(t *testing.T) {
	rec := newRecorder(standardFuncs())
	cfg := gateway.Config{Addr: "127.0.0.1:0", Routes: standardRoutes(), Invoker: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	clients := []*client{dial(t, gw.URL(), nil), dial(t, gw.URL(), nil), dial(t, gw.URL(), nil)}
	cancel()
	for _, c := range clients {
		if code, _ := c.expectClose(); code != 1001 {
			t.Errorf("got close %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec.mu.Lock()
	n := len(rec.events["Disconnect"])
	rec.mu.Unlock()
	if n != 3 {
		t.Errorf("$disconnect ran %d times before Run returned, want 3", n)
	}
	if _, err := tryDial(gw.URL(), nil); err == nil {
		t.Error("the gateway still accepts connections after stopping")
	}
}

func TestManagementAPIWithTheAWSSDK(t *testing.T) {
	for _, transport := range []string{"http", "in-memory"} {
		t.Run(transport, func(t *testing.T) {
			rec := newRecorder(standardFuncs())
			gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, Stage: "dev"})
			api := mgmtClient(gw)
			if transport == "in-memory" {
				api = apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
					Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1,
					BaseEndpoint: aws.String(gw.ManagementEndpoint()),
					HTTPClient:   &http.Client{Transport: gw.ManagementTransport()},
				})
			}
			testManagementAPI(t, gw, rec, api)
		})
	}
}

func testManagementAPI(t *testing.T, gw *gateway.Gateway, rec *recorder, api *apigatewaymanagementapi.Client) {
	ctx := context.Background()
	c := dial(t, gw.URL(), http.Header{"User-Agent": {"sdk-test"}})
	ev, _ := rec.event(t, "Connect")
	id := aws.String(ev.RequestContext.ConnectionID)

	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: []byte(`{"hello":1}`)}); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	if got := c.readText(); got != `{"hello":1}` {
		t.Errorf("client got %q", got)
	}
	big := bytes.Repeat([]byte("b"), 100<<10) // API Gateway sends it in 32 KB frames
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: big}); err != nil {
		t.Fatalf("PostToConnection of 100 KB: %v", err)
	}
	if got := c.readText(); got != string(big) {
		t.Errorf("client got %d bytes, want %d", len(got), len(big))
	}

	out, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: id})
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if out.ConnectedAt == nil || time.Since(*out.ConnectedAt) > time.Minute || out.LastActiveAt == nil ||
		aws.ToString(out.Identity.SourceIp) != "127.0.0.1" || aws.ToString(out.Identity.UserAgent) != "sdk-test" {
		t.Errorf("GetConnection: %+v %+v", out, out.Identity)
	}

	var tooLarge *types.PayloadTooLargeException
	_, err = api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: make([]byte, 128<<10+1)})
	if !errors.As(err, &tooLarge) {
		t.Errorf("post of 128 KB + 1: got %v, want *types.PayloadTooLargeException", err)
	}

	var gone *types.GoneException
	for name, call := range map[string]func(*string) error{
		"post": func(id *string) error {
			_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: []byte("x")})
			return err
		},
		"get": func(id *string) error {
			_, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: id})
			return err
		},
		"delete": func(id *string) error {
			_, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: id})
			return err
		},
	} {
		if err := call(aws.String("AAAAAAAAAAAAAAA=")); !errors.As(err, &gone) {
			t.Errorf("%s to an unknown id: got %v, want *types.GoneException", name, err)
		}
	}

	if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: id}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if code, _ := c.expectClose(); code != 1000 {
		t.Errorf("after DeleteConnection the client got %d, want 1000", code)
	}
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: []byte("x")}); !errors.As(err, &gone) {
		t.Errorf("post after delete: got %v, want *types.GoneException", err)
	}

	// Another stage's management API is not this one.
	other := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), BaseEndpoint: aws.String("http://" + gw.Addr() + "/prod"), RetryMaxAttempts: 1})
	var forbidden *types.ForbiddenException
	if _, err := other.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: id}); !errors.As(err, &forbidden) {
		t.Errorf("wrong stage: got %v, want *types.ForbiddenException", err)
	}
}

func TestSlowClientGets429NotGone(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, SendQueue: 4})
	c := dial(t, gw.URL(), nil) // never reads
	ev, _ := rec.event(t, "Connect")
	api := mgmtClient(gw)
	payload := make([]byte, 100<<10)
	var limited *types.LimitExceededException
	for i := range 2000 {
		_, err := api.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(ev.RequestContext.ConnectionID), Data: payload})
		if errors.As(err, &limited) {
			t.Logf("429 after %d posts of 100 KB to a client that does not read", i)
			return
		}
		if err != nil {
			t.Fatalf("post %d: got %v, want success or *types.LimitExceededException", i, err)
		}
	}
	_ = c
	t.Fatal("never got 429 LimitExceededException from a client that does not read")
}

func TestManyConnections(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tryDial(gw.URL(), nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			defer c.nc.Close()
			if err := ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewTextFrame([]byte("hi")))); err != nil {
				t.Errorf("conn %d: write: %v", i, err)
				return
			}
			op, p, err := c.read()
			if err != nil || op != ws.OpText || string(p) != "echo:hi" {
				t.Errorf("conn %d: got %v %q %v", i, op, p, err)
			}
		}()
	}
	wg.Wait()
}
