package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/client"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

// TestMain fails the run if any goroutine outlives the tests: every client
// is closed and waited for, every gateway closed, so none may be left (as
// coder/websocket's main_test.go checks). Goroutines get a moment to
// finish exiting.
func TestMain(m *testing.M) {
	code := m.Run()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > 1 {
		fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines left after the tests, want 1\n%s\n", n, stacks())
		os.Exit(1)
	}
	os.Exit(code)
}

func stacks() []byte {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// clientGoroutines counts the goroutines running this package's code.
func clientGoroutines() int {
	n := 0
	for _, g := range strings.Split(string(stacks()), "\n\n") {
		if strings.Contains(g, "mastersocket/client.") && !strings.Contains(g, "client_test.") {
			n++
		}
	}
	return n
}

// testToken is the token every gateway of the tests accepts for all groups.
const testToken = "mst_client-tests"

// mode is one of the two ways a deployment authenticates connections.
type mode struct {
	name   string
	params map[string]string
	off    bool // ConnectAuth=off: clients IDENTIFY after connecting
}

var modes = []mode{
	{name: "ConnectAuth=required", params: map[string]string{}},
	{name: "ConnectAuth=off", params: map[string]string{"ConnectAuth": "off"}, off: true},
}

// eachMode runs test once in each mode.
func eachMode(t *testing.T, test func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// gateway is the real local gateway running template.yaml, in process.
type gateway struct {
	*localrun.Server
	t      *testing.T
	logs   *logBuffer
	params map[string]string
	done   chan error
	once   sync.Once
}

// startGateway runs template.yaml with params on addr (127.0.0.1:0 when
// empty). It stops when the test ends.
func startGateway(t *testing.T, params map[string]string, addr string) *gateway {
	t.Helper()
	return startGatewayWith(t, params, addr, nil)
}

// startGatewayWith is startGateway with edit applied to the options, for
// the fault-injection hooks of localrun.
func startGatewayWith(t *testing.T, params map[string]string, addr string, edit func(*localrun.Options)) *gateway {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	logs := &logBuffer{}
	var err error
	var s *localrun.Server
	// A restarted gateway may find its port held a moment longer.
	for i := 0; ; i++ {
		o := localrun.Options{
			Addr: addr, Template: "../template.yaml", Token: testToken, BuildDir: t.TempDir(),
			Parameters: params, Verbose: true,
			Logger: slog.New(slog.NewTextHandler(io.MultiWriter(logs, logOutput()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		if edit != nil {
			edit(&o)
		}
		s, err = localrun.Start(context.Background(), o)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("start the local gateway: %v", err)
	}
	g := &gateway{Server: s, t: t, logs: logs, params: params, done: make(chan error, 1)}
	go func() { g.done <- s.Run(context.Background()) }()
	t.Cleanup(g.stop)
	return g
}

// stop closes the gateway and waits for Run to return.
func (g *gateway) stop() {
	g.once.Do(func() {
		g.Close()
		if err := <-g.done; err != nil {
			g.t.Errorf("gateway Run: %v", err)
		}
	})
}

func logOutput() io.Writer {
	if os.Getenv("CLIENT_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// connection returns the gateway's connection id of a service.
func (g *gateway) connection(serviceID string) string {
	g.t.Helper()
	id, err := g.Store().ServiceConnection(context.Background(), serviceID)
	if err != nil {
		g.t.Fatalf("connection of service %s: %v", serviceID, err)
	}
	return id
}

// manage calls the @connections management API on a connection.
func (g *gateway) manage(method, connID, body string) int {
	g.t.Helper()
	req, err := http.NewRequest(method, g.ManagementEndpoint()+"/@connections/"+connID, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		g.t.Fatalf("%s @connections/%s: %v", method, connID, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// drop closes a service's connection from the server side (DeleteConnection).
func (g *gateway) drop(serviceID string) {
	g.t.Helper()
	if status := g.manage(http.MethodDelete, g.connection(serviceID), ""); status != http.StatusNoContent {
		g.t.Fatalf("DeleteConnection: got %d, want 204", status)
	}
}

// kick sends a service the DISCONNECT the server sends for code, then
// closes its connection, as the router's closeWith does.
func (g *gateway) kick(serviceID string, code client.Code) {
	g.t.Helper()
	conn := g.connection(serviceID)
	body := fmt.Sprintf(`{"op":2,"data":{"code":%d,"reason":%q,"message":"kicked by the test"}}`, int(code), code.String())
	if status := g.manage(http.MethodPost, conn, body); status != http.StatusOK {
		g.t.Fatalf("PostToConnection: got %d, want 200", status)
	}
	if status := g.manage(http.MethodDelete, conn, ""); status != http.StatusNoContent {
		g.t.Fatalf("DeleteConnection: got %d, want 204", status)
	}
}

// bodies counts the MESSAGE invocations whose body contains s.
func (g *gateway) bodies(s string) int {
	n := 0
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if strings.Contains(line, "msg=MESSAGE") && strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dial connects a client in mode m to group, with fast reconnects; edit
// may change its options. The client is closed, and waited for, when the
// test ends.
func dial(t *testing.T, g *gateway, m mode, group string, edit func(*client.Options)) *client.Client {
	t.Helper()
	c, err := dialErr(g.URL(), m, group, edit)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := c.Wait(); err != nil && !strings.Contains(t.Name(), "Terminal") {
			t.Logf("Wait: %v", err)
		}
	})
	return c
}

func dialErr(url string, m mode, group string, edit func(*client.Options)) (*client.Client, error) {
	o := client.Options{
		Token: testToken, Group: group, IdentifyAfterConnect: m.off,
		Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Dial(ctx, url, o)
}

// inbox collects the messages a handler receives.
type inbox chan *client.Message

func newInbox() inbox { return make(inbox, 1000) }

func (in inbox) handler() client.Handler {
	return func(_ context.Context, _ *client.Client, m *client.Message) { in <- m }
}

// next returns the next message, failing the test after 10 s.
func (in inbox) next(t *testing.T) *client.Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message came")
		return nil
	}
}

// none checks that no message comes within d.
func (in inbox) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-in:
		t.Fatalf("got %s %q id %s from %s, want nothing", m.Op, m.Event, m.ID, m.Source.ID)
	case <-time.After(d):
	}
}

// errs collects what OnError receives.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) on(_ *client.Client, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, err)
}

func (e *errs) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.list...)
}

// eventually retries check for up to 10 s.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
