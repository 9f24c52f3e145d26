package localrun_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
)

const e2eToken = "mst_end-to-end"

// startLocal runs template.yaml's functions on the local gateway for a test.
// Unless o.Parameters sets ConnectAuth, it runs with ConnectAuth=off: most
// of the suite drives the protocol as seed-style clients do, connecting
// anonymously and identifying with IDENTIFY (connectauth_test.go drives the
// template's default, required).
func startLocal(t *testing.T, o localrun.Options) *localrun.Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if _, ok := o.Parameters["ConnectAuth"]; !ok {
		o.Parameters = maps.Clone(o.Parameters)
		if o.Parameters == nil {
			o.Parameters = map[string]string{}
		}
		o.Parameters["ConnectAuth"] = "off"
	}
	o.Template = "../../../template.yaml"
	o.Token = e2eToken
	o.BuildDir = t.TempDir()
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	s, err := localrun.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// svc is a service connected with a real WebSocket client.
type svc struct {
	t      *testing.T
	name   string
	c      *websocket.Conn
	frames chan protocol.Frame
	raw    chan string
	closed chan websocket.StatusCode
	id     string // service id after IDENTIFY
}

func connectSvc(t *testing.T, s *localrun.Server, name string) *svc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.URL(), nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	return wrap(t, c, name)
}

// wrap reads the frames of a connection in the background.
func wrap(t *testing.T, c *websocket.Conn, name string) *svc {
	c.SetReadLimit(1 << 20)
	v := &svc{t: t, name: name, c: c, frames: make(chan protocol.Frame, 100), raw: make(chan string, 100), closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				v.closed <- websocket.CloseStatus(err)
				return
			}
			var f protocol.Frame
			if json.Unmarshal(b, &f) != nil {
				f = protocol.Frame{Op: -1}
			}
			v.raw <- string(b)
			v.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return v
}

func (v *svc) send(body string) {
	v.t.Helper()
	if err := v.c.Write(context.Background(), websocket.MessageText, []byte(body)); err != nil {
		v.t.Fatalf("%s: write: %v", v.name, err)
	}
}

func (v *svc) next() protocol.Frame {
	v.t.Helper()
	select {
	case f := <-v.frames:
		<-v.raw
		return f
	case code := <-v.closed:
		// The reader hands in every frame before the close: one may be
		// waiting still, as select picks among ready cases at random.
		select {
		case f := <-v.frames:
			<-v.raw
			v.closed <- code
			return f
		default:
		}
		v.t.Fatalf("%s: closed (%d) while waiting for a frame", v.name, code)
	case <-time.After(10 * time.Second):
		v.t.Fatalf("%s: no frame", v.name)
	}
	return protocol.Frame{}
}

// within returns the next frame if one arrives within d.
func (v *svc) within(d time.Duration) (protocol.Frame, bool) {
	select {
	case f := <-v.frames:
		<-v.raw
		return f, true
	case <-time.After(d):
		return protocol.Frame{}, false
	}
}

// nothing checks that no frame arrives within d.
func (v *svc) nothing(d time.Duration) {
	v.t.Helper()
	select {
	case <-v.frames:
		v.t.Fatalf("%s: got %s, want nothing", v.name, <-v.raw)
	case <-time.After(d):
	}
}

func (v *svc) identify(group string) {
	v.t.Helper()
	v.identifyWith(e2eToken, group)
}

func (v *svc) identifyWith(tok, group string) {
	v.t.Helper()
	v.send(`{"op":1,"id":"hello","data":{"token":"` + tok + `","group":"` + group + `"}}`)
	f := v.next()
	var d protocol.IdentifiedData
	if f.Op != protocol.OpIdentify || f.ID != "hello" || json.Unmarshal(f.Data, &d) != nil || d.Group != group || d.Ping <= 0 || len(d.ID) != 36 {
		v.t.Fatalf("%s: IDENTIFY answered %+v %s", v.name, f, f.Data)
	}
	v.id = d.ID
}

func (v *svc) expectError(code protocol.Code, id string) {
	v.t.Helper()
	f := v.next()
	var d protocol.ErrorData
	if f.Op != protocol.OpError || json.Unmarshal(f.Data, &d) != nil || d.Code != code || d.Reason != code.Reason() || f.ID != id {
		v.t.Fatalf("%s: got %+v %s, want ERROR %d %s id %q", v.name, f, f.Data, code, code.Reason(), id)
	}
}

func (v *svc) expectEvent(event string, from *svc) protocol.Frame {
	v.t.Helper()
	f := v.next()
	if (f.Op != protocol.OpEvent && f.Op != protocol.OpReply) || f.Event != event || f.Source == nil || f.Source.ID != from.id {
		v.t.Fatalf("%s: got %+v, want %s from %s", v.name, f, event, from.name)
	}
	return f
}

func (v *svc) expectClosed(want websocket.StatusCode) {
	v.t.Helper()
	select {
	case code := <-v.closed:
		if code != want {
			v.t.Fatalf("%s: closed with %d, want %d", v.name, code, want)
		}
	case <-time.After(10 * time.Second):
		v.t.Fatalf("%s: still open", v.name)
	}
}

// modes are the ways the end-to-end suite runs: functions in process or
// as binaries, on the memory store or DynamoDB Local.
func modes(t *testing.T) []struct {
	name string
	opts func(t *testing.T) localrun.Options
} {
	dynamo := func(t *testing.T) (string, string) {
		db := dynamotest.Client(t)
		return dynamotest.Endpoint(t), dynamotest.NewTable(t, db)
	}
	return []struct {
		name string
		opts func(t *testing.T) localrun.Options
	}{
		{"inprocess-memory", func(*testing.T) localrun.Options { return localrun.Options{} }},
		{"inprocess-dynamodb", func(t *testing.T) localrun.Options {
			ep, table := dynamo(t)
			return localrun.Options{Store: localrun.StoreDynamoDB, DynamoDBEndpoint: ep, Table: table}
		}},
		{"binaries-dynamodb", func(t *testing.T) localrun.Options {
			ep, table := dynamo(t)
			return localrun.Options{Store: localrun.StoreDynamoDB, DynamoDBEndpoint: ep, Table: table, Functions: localrun.FunctionsBinaries}
		}},
	}
}

func TestProtocolEndToEnd(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			s := startLocal(t, m.opts(t))
			a, b, c := connectSvc(t, s, "a"), connectSvc(t, s, "b"), connectSvc(t, s, "c")
			anon := connectSvc(t, s, "anon")
			a.identify("alpha")
			b.identify("alpha")
			c.identify("beta")

			// PING and PONG.
			anon.send(`{"op":3,"id":"p1"}`)
			if f := anon.next(); f.Op != protocol.OpPong || f.ID != "p1" {
				t.Fatalf("PING: got %+v", f)
			}
			anon.send(`{"op":4}`)
			anon.nothing(100 * time.Millisecond)

			// GROUP, with the sender excluded and source stamped; data byte for byte.
			c.send(`{"op":0,"id":"g1","event":"HELLO","data":{ "n" : [1, 2.50] },"intent":{"target":"GROUP","identifier":"alpha"},"source":{"id":"forged"}}`)
			for _, to := range []*svc{a, b} {
				f := to.expectEvent("HELLO", c)
				if f.ID != "g1" || string(f.Data) != `{ "n" : [1, 2.50] }` || f.Source.Group != "beta" ||
					f.Intent == nil || f.Intent.Target != protocol.TargetGroup || f.Intent.Identifier != "alpha" {
					t.Fatalf("%s got %+v (data %s)", to.name, f, f.Data)
				}
			}
			a.send(`{"op":0,"event":"SELF","intent":{"target":"GROUP","identifier":"alpha"}}`)
			if f := b.expectEvent("SELF", a); f.ID == "" {
				t.Error("an EVENT without id was delivered without an assigned id")
			}
			a.nothing(150 * time.Millisecond)
			c.nothing(0)

			// GLOBAL reaches every identified connection but the sender.
			b.send(`{"op":0,"event":"ALL","intent":{"target":"GLOBAL"}}`)
			a.expectEvent("ALL", b)
			c.expectEvent("ALL", b)
			b.nothing(150 * time.Millisecond)
			anon.nothing(0)

			// DIRECT and REPLY.
			c.send(`{"op":0,"id":"q1","event":"ASK","data":"?","intent":{"target":"DIRECT","identifier":"` + b.id + `"}}`)
			b.expectEvent("ASK", c)
			b.send(`{"op":5,"id":"q1","data":"42","intent":{"target":"DIRECT","identifier":"` + c.id + `"}}`)
			if f := c.expectEvent("", b); f.Op != protocol.OpReply || f.ID != "q1" || string(f.Data) != `"42"` {
				t.Fatalf("REPLY: got %+v", f)
			}
			a.nothing(100 * time.Millisecond)

			// Every error code a client can cause.
			big := `{"op":3,"pad":"` + strings.Repeat("x", 33<<10) + `"}` // over MAX_MESSAGE_BYTES, in two frames
			w, err := a.c.Writer(context.Background(), websocket.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, big[:len(big)/2])
			io.WriteString(w, big[len(big)/2:])
			w.Close()
			a.expectError(protocol.CodeMessageTooBig, "")
			a.send(`{"op":9,"id":"u"}`)
			a.expectError(protocol.CodeUnknownOp, "u")
			a.send(`not json`)
			a.expectError(protocol.CodeInvalidPayload, "")
			a.send(`{"op":0,"id":"m","intent":{"target":"GLOBAL"}}`)
			a.expectError(protocol.CodeInvalidPayload, "m")
			anon.send(`{"op":0,"id":"e","event":"E","intent":{"target":"GLOBAL"}}`)
			anon.expectError(protocol.CodeUnauthorized, "e")
			a.send(`{"op":1,"id":"again","data":{"token":"` + e2eToken + `","group":"beta"}}`)
			a.expectError(protocol.CodeAlreadyIdentified, "again")
			a.send(`{"op":0,"id":"d","event":"E","intent":{"target":"DIRECT","identifier":"00000000-0000-4000-8000-000000000000"}}`)
			a.expectError(protocol.CodeTargetNotFound, "d")

			// A bad token: DISCONNECT 4004, then the server closes.
			bad := connectSvc(t, s, "bad")
			bad.send(`{"op":1,"data":{"token":"mst_wrong","group":"alpha"}}`)
			if f := bad.next(); f.Op != protocol.OpDisconnect || !strings.Contains(string(f.Data), `"code":4004`) {
				t.Fatalf("bad token: got %+v %s", f, f.Data)
			}
			bad.expectClosed(websocket.StatusNormalClosure)

			// Client DISCONNECT: forgotten, then closed.
			b.send(`{"op":2}`)
			b.expectClosed(websocket.StatusNormalClosure)
			c.send(`{"op":0,"id":"x","event":"E","intent":{"target":"DIRECT","identifier":"` + b.id + `"}}`)
			c.expectError(protocol.CodeTargetNotFound, "x")
			c.send(`{"op":0,"event":"AFTER","intent":{"target":"GROUP","identifier":"alpha"}}`)
			a.expectEvent("AFTER", c)

			// An abrupt close: $disconnect forgets a.
			a.c.CloseNow()
			eventually(t, func() bool {
				// Until the gateway notices, a DIRECT to a is posted into
				// the void and answered by nothing (at most once).
				c.send(`{"op":0,"id":"gone","event":"E","intent":{"target":"DIRECT","identifier":"` + a.id + `"}}`)
				f, ok := c.within(time.Second)
				return ok && f.Op == protocol.OpError && strings.Contains(string(f.Data), `"code":4006`)
			})
		})
	}
}

// eventually retries check until it holds, for 10 s.
func eventually(t *testing.T, check func() bool) {
	t.Helper()
	eventuallyFor(t, 10*time.Second, check, "condition never held")
}

// eventuallyFor retries check until it holds, and fails the test with the
// message once d has passed.
func eventuallyFor(t *testing.T, d time.Duration, check func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBinariesNeedDynamoDB(t *testing.T) {
	_, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Functions: localrun.FunctionsBinaries,
	})
	if err == nil || !strings.Contains(err.Error(), "--store dynamodb") {
		t.Fatalf("got %v, want an error that says to use --store dynamodb", err)
	}
}

func TestSummaryNamesURLsAndToken(t *testing.T) {
	s := startLocal(t, localrun.Options{Stage: "test"})
	for _, want := range []string{s.URL(), s.ManagementEndpoint() + "/@connections/{connectionId}", e2eToken, "memory"} {
		if !strings.Contains(s.Summary, want) {
			t.Errorf("summary %q lacks %q", s.Summary, want)
		}
	}
	if !strings.HasSuffix(s.URL(), "/test") {
		t.Errorf("URL %s does not end in the stage", s.URL())
	}
}

// testLogger discards the gateway's logs unless LOCALGW_TEST_LOG is set.
func testLogger() *slog.Logger {
	w := io.Discard
	if os.Getenv("LOCALGW_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
