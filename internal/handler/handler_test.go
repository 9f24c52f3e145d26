package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/storetest"
	"github.com/mastersocket/mastersocket/internal/token"
)

// mgmtServer plays API Gateway's @connections API: it records what the
// functions post and delete, and answers 410 GoneException for connections
// that are gone or deleted.
type mgmtServer struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string][][]byte
	calls []string // "POST <id>" and "DELETE <id>" in order
	gone  map[string]bool
	// throttled connections are answered 429 LimitExceededException.
	throttled map[string]bool
	active    map[string]time.Time // lastActiveAt that GetConnection reports; default now
	opened    map[string]time.Time // connectedAt that GetConnection reports; default lastActiveAt
}

func newMgmtServer(t testing.TB) *mgmtServer {
	m := &mgmtServer{posts: map[string][][]byte{}, gone: map[string]bool{}, throttled: map[string]bool{},
		active: map[string]time.Time{}, opened: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /prod/@connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		m.mu.Lock()
		defer m.mu.Unlock()
		m.calls = append(m.calls, "GET "+id)
		if m.gone[id] {
			gone(w)
			return
		}
		last, ok := m.active[id]
		if !ok {
			last = time.Now()
		}
		opened, ok := m.opened[id]
		if !ok {
			opened = last
		}
		iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"connectedAt":%q,"identity":{"sourceIp":"192.0.2.1","userAgent":"test"},"lastActiveAt":%q}`, iso(opened), iso(last))
	})
	mux.HandleFunc("POST /prod/@connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.calls = append(m.calls, "POST "+id)
		if m.gone[id] {
			gone(w)
			return
		}
		if m.throttled[id] {
			w.Header().Set("X-Amzn-ErrorType", "LimitExceededException")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"message":"Rate exceeded"}`)
			return
		}
		m.posts[id] = append(m.posts[id], body)
	})
	mux.HandleFunc("DELETE /prod/@connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		m.mu.Lock()
		defer m.mu.Unlock()
		m.calls = append(m.calls, "DELETE "+id)
		if m.gone[id] {
			gone(w)
			return
		}
		m.gone[id] = true
		w.WriteHeader(http.StatusNoContent)
	})
	m.Server = httptest.NewServer(mux)
	t.Cleanup(m.Close)
	return m
}

func gone(w http.ResponseWriter) {
	w.Header().Set("X-Amzn-ErrorType", "GoneException")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusGone)
	io.WriteString(w, `{"message":null}`)
}

func (m *mgmtServer) frames(t *testing.T, connID string) []protocol.Frame {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []protocol.Frame
	for _, b := range m.posts[connID] {
		var f protocol.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("posted %q is not a frame: %v", b, err)
		}
		out = append(out, f)
	}
	return out
}

func (m *mgmtServer) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.posts = map[string][][]byte{}
	m.calls = nil
}

const testToken = "mst_handler-test"

// newHandlers returns the three functions over store, posting to m, as a
// warm Lambda container would run them.
func newHandlers(t testing.TB, store handler.Store, m *mgmtServer) *handler.Handlers {
	t.Helper()
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	h, err := handler.New(handler.Backend{
		Store: store,
		NewSender: func(endpoint string) (handler.Sender, error) {
			return mgmtapi.New(awsCfg, mgmtapi.Config{Endpoint: endpoint})
		},
		Settings: handler.Settings{ManagementEndpoint: m.URL + "/prod", PingInterval: 15 * time.Second,
			SweepHandshakeGrace: time.Millisecond}, // the tests' connections are a moment old
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func putToken(t testing.TB, s storetest.Store) {
	t.Helper()
	if err := s.PutToken(context.Background(), token.Token{Hash: token.HashOf(testToken), AllGroups: true, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// event returns the fixture testdata/<name>.json for a connection, with a
// body for messages, as the JSON bytes API Gateway would send.
func event(t testing.TB, name, connID string, connectedAt time.Time, body string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/apigw/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	rc := ev["requestContext"].(map[string]any)
	rc["connectionId"] = connID
	rc["connectedAt"] = connectedAt.UnixMilli()
	rc["requestTimeEpoch"] = time.Now().UnixMilli()
	if name == "message" {
		ev["body"] = body
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// invoke runs fn through aws-lambda-go's handler machinery, as the Lambda
// runtime does, and returns its response.
func invoke(t testing.TB, fn any, payload []byte) (events.APIGatewayProxyResponse, error) {
	t.Helper()
	out, err := lambda.NewHandler(fn).Invoke(context.Background(), payload)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return resp, nil
}

// client is one WebSocket connection as the functions see it.
type client struct {
	t         testing.TB
	h         *handler.Handlers
	id        string
	at        time.Time
	serviceID string
	// authorizer is the requestContext.authorizer of its events, if the
	// $connect authorizer let it in.
	authorizer map[string]any
}

var connSeq struct {
	sync.Mutex
	n int
}

// connect0 returns a new client of h that has not connected yet.
func connect0(t testing.TB, h *handler.Handlers) *client {
	t.Helper()
	connSeq.Lock()
	connSeq.n++
	id := fmt.Sprintf("Cdm%012dQ=", connSeq.n)
	connSeq.Unlock()
	// Connected a second ago: older than the handshake grace the tests'
	// handlers keep (1 ms), which a fast run could otherwise beat, and well
	// within IdentifyTimeout.
	at := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	return &client{t: t, h: h, id: id, at: at}
}

// event returns the fixture event name of the connection, carrying its
// authorizer context if it has one.
func (c *client) event(name, body string) []byte {
	c.t.Helper()
	raw := event(c.t, name, c.id, c.at, body)
	if c.authorizer == nil {
		return raw
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		c.t.Fatal(err)
	}
	ev["requestContext"].(map[string]any)["authorizer"] = c.authorizer
	out, err := json.Marshal(ev)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func connect(t testing.TB, h *handler.Handlers) *client {
	t.Helper()
	c := connect0(t, h)
	resp, err := invoke(t, h.Connect, c.event("connect", ""))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("$connect: %+v, %v", resp, err)
	}
	return c
}

// send invokes $default with body and returns the route response frame.
func (c *client) send(body string) *protocol.Frame {
	c.t.Helper()
	resp, err := invoke(c.t, c.h.Message, c.event("message", body))
	if err != nil || resp.StatusCode != 200 {
		c.t.Fatalf("$default %s: %+v, %v", body, resp, err)
	}
	if resp.Body == "" {
		return nil
	}
	var f protocol.Frame
	if err := json.Unmarshal([]byte(resp.Body), &f); err != nil {
		c.t.Fatalf("response body %q: %v", resp.Body, err)
	}
	return &f
}

func (c *client) identify(group string) {
	c.t.Helper()
	f := c.send(`{"op":1,"data":{"token":"` + testToken + `","group":"` + group + `"}}`)
	if f == nil || f.Op != protocol.OpIdentify {
		c.t.Fatalf("IDENTIFY: got %+v", f)
	}
	var d protocol.IdentifiedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.t.Fatal(err)
	}
	c.serviceID = d.ID
}

// disconnect closes the connection at the gateway, which then invokes
// $disconnect.
func (c *client) disconnect(m *mgmtServer) {
	c.t.Helper()
	m.mu.Lock()
	m.gone[c.id] = true
	m.mu.Unlock()
	resp, err := invoke(c.t, c.h.Disconnect, c.event("disconnect", ""))
	if err != nil || resp.StatusCode != 200 {
		c.t.Fatalf("$disconnect: %+v, %v", resp, err)
	}
}

// stores returns the stores to run a scenario on: memory always, DynamoDB
// Local when DYNAMODB_ENDPOINT is set (and always in CI).
func stores(t *testing.T) map[string]func(t *testing.T) storetest.Store {
	return map[string]func(t *testing.T) storetest.Store{
		"memory": func(*testing.T) storetest.Store { return memstore.New() },
		"dynamodb": func(t *testing.T) storetest.Store {
			client := dynamotest.Client(t)
			s, err := dynamostore.New(client, dynamostore.Config{Table: dynamotest.NewTable(t, client), PageSize: 50})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestFunctions(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			putToken(t, store)
			m := newMgmtServer(t)
			h := newHandlers(t, store, m)
			other := newHandlers(t, store, m) // a second warm container

			a, b, c := connect(t, h), connect(t, h), connect(t, other)
			a.identify("alpha")
			b.identify("alpha")
			c.identify("beta")

			// PING is answered in the route response, with no management call.
			if f := a.send(`{"op":3,"id":"p"}`); f == nil || f.Op != protocol.OpPong || f.ID != "p" {
				t.Fatalf("PING: got %+v", f)
			}
			if len(m.calls) != 0 {
				t.Fatalf("management calls %v before any routing", m.calls)
			}

			// GROUP from another container, GLOBAL, DIRECT and REPLY.
			if f := c.send(`{"op":0,"id":"g1","event":"HELLO","data":{"n":1},"intent":{"target":"GROUP","identifier":"alpha"}}`); f != nil {
				t.Fatalf("GROUP answered %+v", f)
			}
			for _, to := range []*client{a, b} {
				got := m.frames(t, to.id)
				if len(got) != 1 || got[0].ID != "g1" || got[0].Event != "HELLO" || string(got[0].Data) != `{"n":1}` ||
					got[0].Source == nil || got[0].Source.ID != c.serviceID || got[0].Source.Group != "beta" {
					t.Fatalf("%s got %+v", to.id, got)
				}
			}
			m.reset()
			a.send(`{"op":0,"event":"ALL","intent":{"target":"GLOBAL"}}`)
			if len(m.frames(t, a.id)) != 0 || len(m.frames(t, b.id)) != 1 || len(m.frames(t, c.id)) != 1 {
				t.Fatalf("GLOBAL reached %v", m.calls)
			}
			m.reset()
			c.send(`{"op":0,"id":"q","event":"ASK","intent":{"target":"DIRECT","identifier":"` + b.serviceID + `"}}`)
			b.send(`{"op":5,"id":"q","data":"answer","intent":{"target":"DIRECT","identifier":"` + c.serviceID + `"}}`)
			if got := m.frames(t, b.id); len(got) != 1 || got[0].Event != "ASK" {
				t.Fatalf("DIRECT: b got %+v", got)
			}
			if got := m.frames(t, c.id); len(got) != 1 || got[0].Op != protocol.OpReply || got[0].ID != "q" || got[0].Source.ID != b.serviceID {
				t.Fatalf("REPLY: c got %+v", got)
			}

			// $disconnect forgets b, twice over; then DIRECT to b is TARGET_NOT_FOUND.
			b.disconnect(m)
			b.disconnect(m)
			f := c.send(`{"op":0,"id":"late","event":"E","intent":{"target":"DIRECT","identifier":"` + b.serviceID + `"}}`)
			if f == nil || f.Op != protocol.OpError || f.ID != "late" || !strings.Contains(string(f.Data), `"code":4006`) {
				t.Fatalf("DIRECT to a disconnected service: got %+v", f)
			}
			m.reset()
			c.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"alpha"}}`)
			if len(m.frames(t, b.id)) != 0 || len(m.frames(t, a.id)) != 1 {
				t.Fatalf("GROUP after b left reached %v", m.calls)
			}
		})
	}
}

func TestFatalIdentifyIsPostedThenClosed(t *testing.T) {
	store := memstore.New()
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	c := connect(t, h)
	if f := c.send(`{"op":1,"data":{"token":"wrong","group":"g"}}`); f != nil {
		t.Fatalf("got route response %+v; a fatal error travels as a post", f)
	}
	want := "POST " + c.id + ",DELETE " + c.id
	if got := strings.Join(m.calls, ","); got != want {
		t.Fatalf("got calls %s, want %s", got, want)
	}
	frames := m.frames(t, c.id)
	if len(frames) != 1 || frames[0].Op != protocol.OpDisconnect || !strings.Contains(string(frames[0].Data), `"code":4004`) {
		t.Fatalf("got %+v, want a DISCONNECT 4004", frames)
	}
}

func TestGoneRecipientIsForgotten(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	a, b := connect(t, h), connect(t, h)
	a.identify("g")
	b.identify("g")
	m.gone[b.id] = true // b vanished without a $disconnect
	a.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)
	if _, err := store.Connection(context.Background(), b.id); err == nil {
		t.Fatal("a recipient answered 410 but is still registered")
	}
}

func TestConcurrentIdentify(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			putToken(t, store)
			m := newMgmtServer(t)
			first := newHandlers(t, store, m)
			c := connect(t, first)
			const n = 10
			var wg sync.WaitGroup
			answers := make([]*protocol.Frame, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each invocation in its own cold container.
					cc := *c
					cc.h = newHandlers(t, store, m)
					resp, err := invoke(t, cc.h.Message, event(t, "message", c.id, c.at,
						fmt.Sprintf(`{"op":1,"id":"i%d","data":{"token":"%s","group":"g%d"}}`, i, testToken, i)))
					if err != nil {
						t.Errorf("invocation %d: %v", i, err)
						return
					}
					var f protocol.Frame
					if err := json.Unmarshal([]byte(resp.Body), &f); err != nil {
						t.Errorf("invocation %d: body %q", i, resp.Body)
						return
					}
					answers[i] = &f
				}()
			}
			wg.Wait()
			identified, already := 0, 0
			for _, f := range answers {
				switch {
				case f == nil:
				case f.Op == protocol.OpIdentify:
					identified++
				case f.Op == protocol.OpError && strings.Contains(string(f.Data), `"code":4005`):
					already++
				default:
					t.Errorf("unexpected answer %+v", f)
				}
			}
			if identified != 1 || already != n-1 {
				t.Fatalf("got %d identified and %d ALREADY_IDENTIFIED, want 1 and %d", identified, already, n-1)
			}
			if len(m.calls) != 0 {
				t.Errorf("concurrent IDENTIFYs closed the connection: %v", m.calls)
			}
		})
	}
}

func TestGroupOf300(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			putToken(t, store)
			m := newMgmtServer(t)
			h := newHandlers(t, store, m)
			members := make([]*client, 300)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for i := range members {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					members[i] = connect(t, h)
					members[i].identify("big")
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			from := members[0]
			from.send(`{"op":0,"id":"fan","event":"E","intent":{"target":"GROUP","identifier":"big"}}`)
			for i, c := range members {
				want := 1
				if i == 0 {
					want = 0
				}
				if got := m.frames(t, c.id); len(got) != want || (want == 1 && got[0].ID != "fan") {
					t.Fatalf("member %d got %+v, want %d frame", i, got, want)
				}
			}
		})
	}
}

func TestMessageDecodesBase64Bodies(t *testing.T) {
	m := newMgmtServer(t)
	h := newHandlers(t, memstore.New(), m)
	c := connect(t, h)
	payload := event(t, "message", c.id, c.at, "eyJvcCI6M30=") // {"op":3}
	var ev map[string]any
	json.Unmarshal(payload, &ev)
	ev["isBase64Encoded"] = true
	payload, _ = json.Marshal(ev)
	resp, err := invoke(t, h.Message, payload)
	if err != nil || resp.Body != `{"op":4}` {
		t.Fatalf("got %+v, %v; want a PONG", resp, err)
	}
}

func TestSettingsFromEnv(t *testing.T) {
	env := map[string]string{
		"TABLE_NAME": "tbl", "MANAGEMENT_ENDPOINT": "https://x/prod", "MAX_MESSAGE_BYTES": "65536",
		"PING_INTERVAL_MS": "10000", "FANOUT_LIMIT": "32", "SHARD_COUNT": "8", "CACHE_SIZE": "-1",
		"ITEM_TTL_SECONDS": "9000", "SEND_MAX_ATTEMPTS": "3", "LOG_LEVEL": "debug",
		"FANOUT_FUNCTION": "stack-fanout", "FANOUT_INLINE_MAX": "500", "FANOUT_BATCH_SIZE": "2000", "FANOUT_POST_RATE": "4000",
		"METRICS": "off", "METRICS_NAMESPACE": "Mastersocket/stack",
	}
	s, err := handler.SettingsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := handler.Settings{Table: "tbl", ManagementEndpoint: "https://x/prod", MaxMessageBytes: 65536,
		PingInterval: 10 * time.Second, FanOut: 32, Shards: 8, CacheSize: -1, ItemTTL: 9000 * time.Second,
		SendMaxAttempts: 3, LogLevel: slog.LevelDebug,
		FanOutFunction: "stack-fanout", InlineFanOut: 500, BatchSize: 2000, PostRate: 4000,
		MetricsOff: true, MetricsNamespace: "Mastersocket/stack"}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	s, err = handler.SettingsFromEnv(func(string) string { return "" })
	if err != nil || s != (handler.Settings{}) {
		t.Errorf("empty environment: got %+v, %v; want zero settings (defaults)", s, err)
	}
	for v, want := range map[string]time.Duration{"45": 45 * time.Second, "0": -1, "00": -1, "+0": -1} {
		s, err := handler.SettingsFromEnv(func(k string) string { return map[string]string{"AUTH_CACHE_SECONDS": v}[k] })
		if err != nil || s.AuthCacheTTL != want {
			t.Errorf("AUTH_CACHE_SECONDS=%q: got %v, %v; want %v (negative: the cache off)", v, s.AuthCacheTTL, err, want)
		}
	}
	// FANOUT_INLINE_MAX=0 hands every recipient on: the router's negative.
	if s, err := handler.SettingsFromEnv(func(k string) string { return map[string]string{"FANOUT_INLINE_MAX": "0"}[k] }); err != nil || s.InlineFanOut != -1 {
		t.Errorf("FANOUT_INLINE_MAX=0: got %d, %v; want -1", s.InlineFanOut, err)
	}
	bad := map[string]string{"MAX_MESSAGE_BYTES": "131073", "FANOUT_LIMIT": "many", "LOG_LEVEL": "loud", "ITEM_TTL_SECONDS": "3600", "AUTH_CACHE_SECONDS": "3601",
		"FANOUT_INLINE_MAX": "-1", "FANOUT_BATCH_SIZE": "0", "FANOUT_POST_RATE": "fast", "METRICS": "cloudwatch", "METRICS_NAMESPACE": "AWS/Lambda"}
	_, err = handler.SettingsFromEnv(func(k string) string { return bad[k] })
	for _, name := range []string{"MAX_MESSAGE_BYTES", "FANOUT_LIMIT", "LOG_LEVEL", "ITEM_TTL_SECONDS", "AUTH_CACHE_SECONDS",
		"FANOUT_INLINE_MAX", "FANOUT_BATCH_SIZE", "FANOUT_POST_RATE", "METRICS", "METRICS_NAMESPACE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("got %v, want an error naming %s", err, name)
		}
	}
}

func TestFromEnvNeedsATable(t *testing.T) {
	_, err := handler.FromEnv(context.Background(), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "TABLE_NAME") {
		t.Fatalf("got %v, want an error naming TABLE_NAME", err)
	}
}

func TestBadManagementEndpointFailsAtStart(t *testing.T) {
	_, err := handler.New(handler.Backend{
		Store: memstore.New(),
		NewSender: func(endpoint string) (handler.Sender, error) {
			return mgmtapi.New(aws.Config{}, mgmtapi.Config{Endpoint: endpoint})
		},
		Settings: handler.Settings{ManagementEndpoint: "not a url"},
	})
	if err == nil || !strings.Contains(err.Error(), "MANAGEMENT_ENDPOINT") {
		t.Fatalf("got %v, want an error naming MANAGEMENT_ENDPOINT", err)
	}
}

// An event whose connectedAt is 0 (missing) must not make the connection
// expire in 1970: it is recorded as connected now and may IDENTIFY.
func TestConnectedAtZeroIsNow(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	c := &client{t: t, h: h, id: "Zero0000000000Q=", at: time.UnixMilli(0)}
	if resp, err := invoke(t, h.Connect, event(t, "connect", c.id, c.at, "")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("$connect: %+v, %v", resp, err)
	}
	got, err := store.Connection(t.Context(), c.id)
	if err != nil || time.Since(got.ConnectedAt) > time.Minute {
		t.Fatalf("stored %+v, %v; want a live connection connected now", got, err)
	}
	c.identify("bots")
	if c.serviceID == "" {
		t.Fatal("IDENTIFY gave no service id")
	}
}
