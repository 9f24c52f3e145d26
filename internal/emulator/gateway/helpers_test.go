package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

// fn is a test function with the signature of the real handlers.
type fn func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// recorder runs test functions in process and records every event payload.
type recorder struct {
	mu     sync.Mutex
	events map[string][][]byte // by function
	calls  chan string         // function names, in invocation order
	inner  *gateway.InProcess
}

func newRecorder(funcs map[string]fn) *recorder {
	handlers := map[string]any{}
	for name, f := range funcs {
		handlers[name] = f
	}
	return &recorder{events: map[string][][]byte{}, calls: make(chan string, 1), inner: gateway.NewInProcess(handlers)}
}

func (r *recorder) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	r.mu.Lock()
	r.events[function] = append(r.events[function], payload)
	r.mu.Unlock()
	defer func() {
		select { // wake a waiting event(), never block an invocation
		case r.calls <- function:
		default:
		}
	}()
	return r.inner.Invoke(ctx, function, payload)
}

// event waits for the next invocation of function and returns its event.
func (r *recorder) event(t *testing.T, function string) (events.APIGatewayWebsocketProxyRequest, []byte) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		if evs := r.events[function]; len(evs) > 0 {
			raw := evs[0]
			r.events[function] = evs[1:]
			r.mu.Unlock()
			var ev events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			return ev, raw
		}
		r.mu.Unlock()
		select {
		case <-r.calls:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no invocation of %s", function)
		}
	}
}

func ok200(body string) (events.APIGatewayProxyResponse, error) {
	return events.APIGatewayProxyResponse{StatusCode: 200, Body: body}, nil
}

// standardFuncs are functions that accept, echo the body and accept.
func standardFuncs() map[string]fn {
	return map[string]fn{
		"Connect": func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return ok200("")
		},
		"Disconnect": func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return ok200("")
		},
		"Echo": func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return ok200("echo:" + ev.Body)
		},
	}
}

func standardRoutes() []gateway.Route {
	return []gateway.Route{
		{Key: "$connect", Function: "Connect"},
		{Key: "$disconnect", Function: "Disconnect"},
		{Key: "$default", Function: "Echo", RouteResponse: true},
	}
}

// start runs a gateway on a free port for the test.
func start(t *testing.T, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(context.Background()) }()
	t.Cleanup(func() {
		gw.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return gw
}

// client is a frame-level WebSocket client.
type client struct {
	t  *testing.T
	nc net.Conn
	r  io.Reader
}

func dial(t *testing.T, url string, header http.Header) *client {
	t.Helper()
	c, err := tryDial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.t = t
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// dialStatus is the HTTP status of a refused handshake.
type dialStatus struct {
	status int
	body   string
}

func (d *dialStatus) Error() string { return "handshake refused: " + http.StatusText(d.status) }

func tryDial(url string, header http.Header) (*client, error) {
	var refused *dialStatus
	d := ws.Dialer{
		Header: ws.HandshakeHeaderHTTP(header),
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			body, _ := io.ReadAll(bufio.NewReader(resp))
			refused = &dialStatus{status, string(body)}
		},
		Timeout: 5 * time.Second,
	}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		if refused != nil {
			return nil, refused
		}
		return nil, err
	}
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	return &client{nc: nc, r: r}, nil
}

func (c *client) frame(fin bool, op ws.OpCode, p []byte) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), p...))
	if err := ws.WriteFrame(c.nc, ws.MaskFrame(f)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func (c *client) text(s string) { c.t.Helper(); c.frame(true, ws.OpText, []byte(s)) }

// read returns the next data message (reassembled) or close frame; pongs
// are returned too, so tests can see them.
func (c *client) read() (ws.OpCode, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msg []byte
	var op ws.OpCode
	for {
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			return 0, nil, err
		}
		if f.Header.Masked {
			return 0, nil, errors.New("server frame is masked")
		}
		switch f.Header.OpCode {
		case ws.OpContinuation:
			msg = append(msg, f.Payload...)
		case ws.OpText, ws.OpBinary:
			op, msg = f.Header.OpCode, f.Payload
		default:
			return f.Header.OpCode, f.Payload, nil
		}
		if f.Header.Fin {
			return op, msg, nil
		}
	}
}

func (c *client) readText() string {
	c.t.Helper()
	op, p, err := c.read()
	if err != nil || op != ws.OpText {
		c.t.Fatalf("got op %v %q, %v; want a text message", op, p, err)
	}
	return string(p)
}

// expectClose reads until the close frame and returns its code and reason.
func (c *client) expectClose() (ws.StatusCode, string) {
	c.t.Helper()
	for {
		op, p, err := c.read()
		if err != nil {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		if op == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(p)
			return code, reason
		}
	}
}

// expectNothing checks that no message arrives for a while.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	f, err := ws.ReadFrame(c.r)
	if err == nil {
		c.t.Fatalf("got frame %v %q, want none", f.Header.OpCode, f.Payload)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("got %v, want a quiet open connection", err)
	}
}

// gatewayError is API Gateway's own error frame.
type gatewayError struct {
	Message      string `json:"message"`
	ConnectionID string `json:"connectionId"`
	RequestID    string `json:"requestId"`
}

func parseGatewayError(t *testing.T, s string) gatewayError {
	t.Helper()
	var g gatewayError
	if err := json.Unmarshal([]byte(s), &g); err != nil || g.Message == "" || g.ConnectionID == "" || g.RequestID == "" {
		t.Fatalf("got %q, want {message, connectionId, requestId}", s)
	}
	return g
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
