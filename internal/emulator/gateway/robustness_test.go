package gateway_test

import (
	"bufio"
	"context"

	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

func TestOutgoingTrafficKeepsAConnectionAlive(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, IdleTimeout: 400 * time.Millisecond})
	c := dial(t, gw.URL(), nil)
	ev, _ := rec.event(t, "Connect")
	api := mgmtClient(gw)
	for range 10 { // 1 s of posts, 100 ms apart: never idle
		if _, err := api.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(ev.RequestContext.ConnectionID), Data: []byte("tick")}); err != nil {
			t.Fatalf("post: %v", err)
		}
		if got := c.readText(); got != "tick" {
			t.Fatalf("got %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := c.expectClose(); code != 1001 { // then quiet: idle
		t.Errorf("got %d, want 1001 once idle", code)
	}
}

func TestIntegrationTimeoutIsEnforcedInProcess(t *testing.T) {
	funcs := standardFuncs()
	funcs["Echo"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		time.Sleep(2 * time.Second) // ignores its context
		return ok200("late")
	}
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: newRecorder(funcs), IntegrationTimeout: 200 * time.Millisecond})
	c := dial(t, gw.URL(), nil)
	c.text("hi")
	g := parseGatewayError(t, c.readText())
	if g.Message != "Endpoint request timed out" {
		t.Fatalf("got %+v, want Endpoint request timed out", g)
	}
	c.expectNothing(2500 * time.Millisecond) // the late answer is dropped
}

func TestCloseIsBoundedWithAHungConnectAndASilentClient(t *testing.T) {
	funcs := standardFuncs()
	funcs["Connect"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		select {} // never returns, never looks at its context
	}
	gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Routes: standardRoutes(), Invoker: newRecorder(funcs),
		IntegrationTimeout: 300 * time.Millisecond, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	go gw.Run(context.Background())
	silent, err := net.Dial("tcp", gw.Addr()) // never sends a request
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go tryDial(gw.URL(), nil) // stuck in $connect
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { gw.Close(); close(closed) }()
	select { // a hang, not a speed check: the limits at play are 300 ms and 2 s
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs on a $connect that never returns or a client that never speaks")
	}
}

func TestInMemoryTransportTakesAnEmptyPost(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	c := dial(t, gw.URL(), nil)
	ev, _ := rec.event(t, "Connect")
	api := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1,
		BaseEndpoint: aws.String(gw.ManagementEndpoint()), HTTPClient: &http.Client{Transport: gw.ManagementTransport()},
	})
	if _, err := api.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(ev.RequestContext.ConnectionID), Data: []byte{}}); err != nil {
		t.Fatalf("empty post: %v", err)
	}
	if got := c.readText(); got != "" {
		t.Errorf("got %q, want an empty message", got)
	}
	resp, err := (&http.Client{Transport: gw.ManagementTransport()}).Post(gw.ManagementEndpoint()+"/@connections/"+ev.RequestContext.ConnectionID, "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("post with a nil body: %v %v", resp, err)
	}
}

func TestConnectHeadersAreMergedOnce(t *testing.T) {
	funcs := standardFuncs()
	funcs["Connect"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: 200,
			Headers:           map[string]string{"Sec-WebSocket-Protocol": "mst.v1", "X-Bad": "a\r\nInjected: yes"},
			MultiValueHeaders: map[string][]string{"Sec-WebSocket-Protocol": {"mst.v1"}}}, nil
	}
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: newRecorder(funcs)})
	nc, err := net.Dial("tcp", gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mst.v1\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Values("Sec-Websocket-Protocol"); len(got) != 1 || got[0] != "mst.v1" {
		t.Errorf("got Sec-WebSocket-Protocol %q, want it once", got)
	}
	if resp.Header.Get("Injected") != "" || resp.Header.Get("X-Bad") != "" {
		t.Error("a header value with CR LF reached the handshake response")
	}
}

func TestRequestHeadLimits(t *testing.T) {
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: newRecorder(standardFuncs())})
	nc, err := net.Dial("tcp", gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go nc.Write([]byte("GET /dev HTTP/1.1\r\nX-Huge: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("got %v, %v; want 431", resp, err)
	}
}

func TestRepeatedHeadersAndTrailingBodies(t *testing.T) {
	funcs := standardFuncs()
	funcs["Join"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return ok200("joined")
	}
	rec := newRecorder(funcs)
	gw := start(t, gateway.Config{Invoker: rec,
		Routes: append(standardRoutes(), gateway.Route{Key: "join", Function: "Join", RouteResponse: true})})
	c := dial(t, gw.URL(), http.Header{"X-Rep": {"one", "two"}})
	ev, _ := rec.event(t, "Connect")
	if ev.Headers["X-Rep"] != "two" || strings.Join(ev.MultiValueHeaders["X-Rep"], ",") != "one,two" {
		t.Errorf("repeated header: headers %q, multiValueHeaders %q", ev.Headers["X-Rep"], ev.MultiValueHeaders["X-Rep"])
	}
	c.text(`{"action":"join"} trailing`) // not JSON: $default
	if got := c.readText(); got != `echo:{"action":"join"} trailing` {
		t.Errorf("got %q, want $default", got)
	}
}

func TestInvalidCloseCodeIsAProtocolError(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	c := dial(t, gw.URL(), nil)
	c.frame(true, ws.OpClose, ws.NewCloseFrameBody(1006, "not on the wire"))
	if code, _ := c.expectClose(); code != 1002 {
		t.Errorf("got %d, want 1002", code)
	}
}

func TestDeleteAfterPostsDeliversThemFirst(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	api := mgmtClient(gw)
	for round := range 20 {
		c := dial(t, gw.URL(), nil)
		ev, _ := rec.event(t, "Connect")
		id := aws.String(ev.RequestContext.ConnectionID)
		for i := range 5 {
			if _, err := api.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: id, Data: []byte{byte('a' + i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := api.DeleteConnection(context.Background(), &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: id}); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for {
			op, p, err := c.read()
			if err != nil {
				t.Fatalf("round %d: read after %q: %v (the close frame was lost)", round, got.String(), err)
			}
			if op == ws.OpClose {
				if code, _ := ws.ParseCloseFrameData(p); code != 1000 {
					t.Fatalf("round %d: close %d", round, code)
				}
				break
			}
			got.Write(p)
		}
		if got.String() != "abcde" {
			t.Fatalf("round %d: got %q before the close, want abcde", round, got.String())
		}
		rec.event(t, "Disconnect")
	}
}
