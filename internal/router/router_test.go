package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// sender is a fake router.Sender that records what it is asked to do.
type sender struct {
	mu     sync.Mutex
	sent   map[string][][]byte
	calls  []string // "send:<conn>" and "close:<conn>" in order
	gone   map[string]bool
	broken map[string]error
	delay  time.Duration
}

func newSender() *sender {
	return &sender{sent: map[string][][]byte{}, gone: map[string]bool{}, broken: map[string]error{}}
}

func (s *sender) Send(_ context.Context, connID string, frame []byte) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "send:"+connID)
	if s.gone[connID] {
		return fmt.Errorf("post: %w", router.ErrGone)
	}
	if err := s.broken[connID]; err != nil {
		return err
	}
	s.sent[connID] = append(s.sent[connID], frame)
	return nil
}

func (s *sender) Close(_ context.Context, connID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "close:"+connID)
	return nil
}

func (s *sender) frames(connID string) []protocol.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Frame
	for _, b := range s.sent[connID] {
		var f protocol.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			panic(err)
		}
		out = append(out, f)
	}
	return out
}

func (s *sender) raw(connID string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[connID]
}

func (s *sender) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = map[string][][]byte{}
	s.calls = nil
}

const (
	goodToken  = "mst_good"
	botsToken  = "mst_bots"
	staleToken = "mst_stale"
)

type env struct {
	t      *testing.T
	store  *memstore.Store
	sender *sender
	r      *router.Router
	n      int
}

func newEnv(t *testing.T, cfg router.Config) *env {
	t.Helper()
	st := memstore.New()
	ctx := t.Context()
	for _, tok := range []token.Token{
		{Hash: token.HashOf(goodToken), AllGroups: true},
		{Hash: token.HashOf(botsToken), Groups: []string{"bots"}},
		{Hash: token.HashOf(staleToken), AllGroups: true, ExpiresAt: time.Now().Add(-time.Minute)},
	} {
		if err := st.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	snd := newSender()
	r, err := router.New(st, snd, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: st, sender: snd, r: r}
}

// conn is one test connection.
type conn struct {
	e         *env
	id        string
	at        time.Time
	serviceID string
}

func (e *env) connect() *conn {
	e.t.Helper()
	e.n++
	c := &conn{e: e, id: fmt.Sprintf("conn%02d=", e.n), at: time.Now().UTC().Truncate(time.Millisecond)}
	if err := e.r.Connect(e.t.Context(), router.Connection{ID: c.id, ConnectedAt: c.at}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// send handles body and returns the reply frame (nil if none).
func (c *conn) send(body string) *protocol.Frame {
	c.e.t.Helper()
	reply, err := c.e.r.Handle(c.e.t.Context(), router.Request{ConnectionID: c.id, ConnectedAt: c.at, Body: []byte(body)})
	if err != nil {
		c.e.t.Fatalf("Handle(%s): %v", body, err)
	}
	if reply == nil {
		return nil
	}
	var f protocol.Frame
	if err := json.Unmarshal(reply, &f); err != nil {
		c.e.t.Fatalf("reply %s is not JSON: %v", reply, err)
	}
	return &f
}

func (e *env) join(group string) *conn {
	e.t.Helper()
	c := e.connect()
	f := c.send(`{"op":1,"data":{"token":"` + goodToken + `","group":"` + group + `"}}`)
	if f == nil || f.Op != protocol.OpIdentify {
		e.t.Fatalf("IDENTIFY: got %+v", f)
	}
	var d protocol.IdentifiedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		e.t.Fatal(err)
	}
	c.serviceID = d.ID
	return c
}

func errorData(t *testing.T, f *protocol.Frame) protocol.ErrorData {
	t.Helper()
	if f == nil {
		t.Fatal("got no frame, want an error frame")
	}
	var d protocol.ErrorData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("error data %s: %v", f.Data, err)
	}
	return d
}

func wantError(t *testing.T, f *protocol.Frame, code protocol.Code, id string) {
	t.Helper()
	d := errorData(t, f)
	if f.Op != protocol.OpError || d.Code != code || d.Reason != code.Reason() || f.ID != id || d.Message == "" {
		t.Fatalf("got op %v id %q data %+v, want ERROR %d %s with id %q", f.Op, f.ID, d, code, code.Reason(), id)
	}
}

func TestIdentify(t *testing.T) {
	e := newEnv(t, router.Config{PingInterval: 25 * time.Second})
	c := e.connect()
	f := c.send(`{"op":1,"id":"hello","data":{"token":"` + botsToken + `","group":"bots"}}`)
	if f == nil || f.Op != protocol.OpIdentify || f.ID != "hello" {
		t.Fatalf("got %+v, want the IDENTIFY answer with id hello", f)
	}
	var d protocol.IdentifiedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Group != "bots" || d.Ping != 25000 || len(d.ID) != 36 || d.ID[14] != '4' {
		t.Errorf("got %+v, want group bots, ping 25000 and a UUID v4", d)
	}
	got, err := e.store.Connection(t.Context(), c.id)
	if err != nil || got.Identity == nil || got.Identity.ServiceID != d.ID {
		t.Errorf("store has %+v, %v", got, err)
	}
	if calls := e.sender.calls; len(calls) != 0 {
		t.Errorf("IDENTIFY made sender calls %v; its answer travels as the route response", calls)
	}

	// A second IDENTIFY, even a malformed one, is ALREADY_IDENTIFIED and
	// never closes the connection.
	for _, body := range []string{
		`{"op":1,"id":"again","data":{"token":"` + goodToken + `","group":"other"}}`,
		`{"op":1,"id":"again","data":{"token":"wrong","group":"bots"}}`,
		`{"op":1,"id":"again","data":"garbage"}`,
	} {
		wantError(t, c.send(body), protocol.CodeAlreadyIdentified, "again")
	}
	if len(e.sender.calls) != 0 {
		t.Errorf("sender calls %v after a second IDENTIFY", e.sender.calls)
	}
}

func TestIdentifyFailedIsFatal(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"bad token", `{"op":1,"id":"x","data":{"token":"mst_nope","group":"bots"}}`},
		{"group not allowed", `{"op":1,"data":{"token":"` + botsToken + `","group":"admins"}}`},
		{"expired token", `{"op":1,"data":{"token":"` + staleToken + `","group":"bots"}}`},
		{"bad group name", `{"op":1,"data":{"token":"` + goodToken + `","group":"no spaces"}}`},
		{"no data", `{"op":1}`},
		{"token missing", `{"op":1,"data":{"group":"bots"}}`},
		{"malformed envelope", `{"op":1,"id":7,"data":{"token":"` + goodToken + `","group":"bots"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, router.Config{})
			c := e.connect()
			if f := c.send(tt.body); f != nil {
				t.Fatalf("got reply %+v; a fatal error is posted, not answered", f)
			}
			frames := e.sender.frames(c.id)
			if len(frames) != 1 || frames[0].Op != protocol.OpDisconnect {
				t.Fatalf("got frames %+v, want one DISCONNECT", frames)
			}
			d := errorData(t, &frames[0])
			if d.Code != protocol.CodeIdentifyFailed || d.Reason != "IDENTIFY_FAILED" || d.Message == "" {
				t.Errorf("got %+v, want 4004 IDENTIFY_FAILED", d)
			}
			want := []string{"send:" + c.id, "close:" + c.id}
			if strings.Join(e.sender.calls, " ") != strings.Join(want, " ") {
				t.Errorf("got calls %v, want %v (DISCONNECT posted before the close)", e.sender.calls, want)
			}
			if strings.Contains(d.Message, goodToken) || strings.Contains(d.Message, botsToken) {
				t.Errorf("message %q leaks the token", d.Message)
			}
		})
	}
}

func TestNonFatalErrors(t *testing.T) {
	e := newEnv(t, router.Config{MaxMessageBytes: 200})
	anon := e.connect()
	member := e.join("g")
	tests := []struct {
		name string
		from *conn
		body string
		code protocol.Code
		id   string
	}{
		{"too big", member, `{"op":3,"id":"big","pad":"` + strings.Repeat("x", 200) + `"}`, protocol.CodeMessageTooBig, ""},
		{"not json", member, `hello`, protocol.CodeInvalidPayload, ""},
		{"not an object", member, `[1]`, protocol.CodeInvalidPayload, ""},
		{"unknown op", member, `{"op":9,"id":"u"}`, protocol.CodeUnknownOp, "u"},
		{"error op from client", member, `{"op":6}`, protocol.CodeUnknownOp, ""},
		{"missing event", member, `{"op":0,"id":"m","intent":{"target":"GLOBAL"}}`, protocol.CodeInvalidPayload, "m"},
		{"bad target", member, `{"op":0,"event":"E","intent":{"target":"ALL"}}`, protocol.CodeInvalidPayload, ""},
		{"event before identify", anon, `{"op":0,"id":"e1","event":"E","intent":{"target":"GLOBAL"}}`, protocol.CodeUnauthorized, "e1"},
		{"reply before identify", anon, `{"op":5,"intent":{"target":"GLOBAL"}}`, protocol.CodeUnauthorized, ""},
		{"direct to nobody", member, `{"op":0,"id":"d","event":"E","intent":{"target":"DIRECT","identifier":"00000000-0000-4000-8000-000000000000"}}`, protocol.CodeTargetNotFound, "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.from.send(tt.body), tt.code, tt.id)
		})
	}
	if len(e.sender.calls) != 0 {
		t.Errorf("errors made sender calls %v", e.sender.calls)
	}
	// The connections stay usable.
	if f := anon.send(`{"op":3}`); f == nil || f.Op != protocol.OpPong {
		t.Errorf("PING after errors: got %+v", f)
	}
}

func TestPingPong(t *testing.T) {
	e := newEnv(t, router.Config{})
	c := e.connect() // anonymous connections may PING too
	if f := c.send(`{"op":3,"id":"p1"}`); f == nil || f.Op != protocol.OpPong || f.ID != "p1" {
		t.Fatalf("got %+v, want PONG p1", f)
	}
	if f := c.send(`{"op":4}`); f != nil {
		t.Fatalf("a client PONG got an answer %+v", f)
	}
	if len(e.sender.calls) != 0 {
		t.Errorf("PING made sender calls %v", e.sender.calls)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, router.Config{})
	a1, a2, a3 := e.join("alpha"), e.join("alpha"), e.join("alpha")
	b1 := e.join("beta")
	anon := e.connect()

	tests := []struct {
		name   string
		from   *conn
		body   func() string
		want   []*conn
		source *conn
	}{
		{"group excludes the sender", a1,
			func() string { return `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"alpha"}}` },
			[]*conn{a2, a3}, a1},
		{"group from outside", b1,
			func() string { return `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"alpha"}}` },
			[]*conn{a1, a2, a3}, b1},
		{"group with no members", b1,
			func() string { return `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"empty"}}` },
			nil, b1},
		{"global excludes the sender and anonymous", a2,
			func() string { return `{"op":0,"event":"E","intent":{"target":"GLOBAL"}}` },
			[]*conn{a1, a3, b1}, a2},
		{"direct", b1,
			func() string {
				return `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + a3.serviceID + `"}}`
			},
			[]*conn{a3}, b1},
		{"direct to self delivers nothing", b1,
			func() string {
				return `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + b1.serviceID + `"}}`
			},
			nil, b1},
		{"reply", a3,
			func() string {
				return `{"op":5,"id":"q1","data":{"ok":true},"intent":{"target":"DIRECT","identifier":"` + b1.serviceID + `"}}`
			},
			[]*conn{b1}, a3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.sender.reset()
			if f := tt.from.send(tt.body()); f != nil {
				t.Fatalf("got reply %+v, want none", f)
			}
			for _, c := range []*conn{a1, a2, a3, b1, anon} {
				frames := e.sender.frames(c.id)
				want := 0
				for _, w := range tt.want {
					if w == c {
						want = 1
					}
				}
				if len(frames) != want {
					t.Fatalf("%s got %d frames, want %d", c.id, len(frames), want)
				}
				if want == 1 {
					f := frames[0]
					if f.Source == nil || f.Source.ID != tt.source.serviceID || f.Source.Group != groupOf(e, tt.source) {
						t.Errorf("%s: got source %+v, want %s", c.id, f.Source, tt.source.serviceID)
					}
				}
			}
		})
	}
}

func groupOf(e *env, c *conn) string {
	got, err := e.store.Connection(e.t.Context(), c.id)
	if err != nil || got.Identity == nil {
		e.t.Fatalf("no identity for %s", c.id)
	}
	return got.Identity.Group
}

func TestDeliveredFrame(t *testing.T) {
	e := newEnv(t, router.Config{NewID: sequence()})
	from, to := e.join("g"), e.join("g")

	from.send(`{"op":0,"id":"keep-me","event":"INFO","data":{ "x" : [1, 2.50] },"intent":{"target":"GROUP","identifier":"g"},"source":{"id":"forged"}}`)
	raw := e.sender.raw(to.id)
	want := `{"id":"keep-me","op":0,"event":"INFO","data":{ "x" : [1, 2.50] },"intent":{"target":"GROUP","identifier":"g"},` +
		`"source":{"id":"` + from.serviceID + `","group":"g"}}`
	if len(raw) != 1 || string(raw[0]) != want {
		t.Fatalf("got %q, want %s", raw, want)
	}

	e.sender.reset()
	from.send(`{"op":0,"event":"NOID","intent":{"target":"GROUP","identifier":"g"}}`)
	frames := e.sender.frames(to.id)
	if len(frames) != 1 || frames[0].ID == "" {
		t.Fatalf("an EVENT without id was delivered as %+v, want an assigned id", frames)
	}

	e.sender.reset()
	from.send(`{"op":5,"data":1,"intent":{"target":"GROUP","identifier":"g"}}`)
	frames = e.sender.frames(to.id)
	if len(frames) != 1 || frames[0].ID != "" || frames[0].Op != protocol.OpReply {
		t.Fatalf("a REPLY without id was delivered as %+v, want no id", frames)
	}
}

// sequence returns ids id-1, id-2, … for readable failures.
func sequence() func() string {
	var mu sync.Mutex
	n := 0
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	}
}

func TestGoneRecipientsAreRemoved(t *testing.T) {
	e := newEnv(t, router.Config{HandshakeGrace: time.Nanosecond}) // past their handshakes
	from, live, dead := e.join("g"), e.join("g"), e.join("g")
	e.sender.gone[dead.id] = true

	from.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)
	if len(e.sender.frames(live.id)) != 1 {
		t.Error("the live member did not get the message")
	}
	if _, err := e.store.Connection(t.Context(), dead.id); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the gone member is still stored: %v", err)
	}
	if _, err := e.store.ServiceConnection(t.Context(), dead.serviceID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the gone member's service is still stored: %v", err)
	}

	// DIRECT to a gone service: TARGET_NOT_FOUND, and it is forgotten.
	other := e.join("h")
	e.sender.gone[other.id] = true
	f := from.send(`{"op":0,"id":"d","event":"E","intent":{"target":"DIRECT","identifier":"` + other.serviceID + `"}}`)
	wantError(t, f, protocol.CodeTargetNotFound, "d")
	if _, err := e.store.Connection(t.Context(), other.id); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the gone DIRECT target is still stored: %v", err)
	}
}

func TestFailedDeliveries(t *testing.T) {
	e := newEnv(t, router.Config{})
	from, ok1, bad := e.join("g"), e.join("g"), e.join("g")
	boom := errors.New("throttled for good")
	e.sender.broken[bad.id] = boom

	// A partial failure is logged; the message counts as routed and the
	// failing recipient is never removed.
	if _, err := e.r.Handle(t.Context(), router.Request{ConnectionID: from.id, ConnectedAt: from.at,
		Body: []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)}); err != nil {
		t.Fatalf("partial failure: got %v, want nil", err)
	}
	if len(e.sender.frames(ok1.id)) != 1 {
		t.Error("the healthy member missed the message")
	}
	if _, err := e.store.Connection(t.Context(), bad.id); err != nil {
		t.Errorf("a failing (not gone) member was removed: %v", err)
	}

	// When every delivery fails, the dependency is broken: an error.
	e.sender.broken[ok1.id] = boom
	_, err := e.r.Handle(t.Context(), router.Request{ConnectionID: from.id, ConnectedAt: from.at,
		Body: []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)})
	if !errors.Is(err, boom) {
		t.Fatalf("all deliveries failed: got %v, want %v", err, boom)
	}
	_, err = e.r.Handle(t.Context(), router.Request{ConnectionID: from.id, ConnectedAt: from.at,
		Body: []byte(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + bad.serviceID + `"}}`)})
	if !errors.Is(err, boom) {
		t.Fatalf("DIRECT failed: got %v, want %v", err, boom)
	}
}

func TestClientDisconnect(t *testing.T) {
	e := newEnv(t, router.Config{})
	c, other := e.join("g"), e.join("g")
	if f := c.send(`{"op":2}`); f != nil {
		t.Fatalf("got reply %+v", f)
	}
	if got := strings.Join(e.sender.calls, " "); got != "close:"+c.id {
		t.Errorf("got sender calls %q, want the close only", got)
	}
	if _, err := e.store.Connection(t.Context(), c.id); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("a disconnected connection is still stored: %v", err)
	}
	e.sender.reset()
	other.send(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`)
	if len(e.sender.calls) != 0 {
		t.Errorf("a GLOBAL reached %v after the only other member left", e.sender.calls)
	}
	f := other.send(`{"op":0,"id":"x","event":"E","intent":{"target":"DIRECT","identifier":"` + c.serviceID + `"}}`)
	wantError(t, f, protocol.CodeTargetNotFound, "x")
}

func TestDisconnectIsIdempotent(t *testing.T) {
	e := newEnv(t, router.Config{})
	c := e.join("g")
	for range 3 {
		if err := e.r.Disconnect(t.Context(), c.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.r.Disconnect(t.Context(), "never-connected="); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []router.Config{
		{MaxMessageBytes: 128<<10 + 1},
		{MaxMessageBytes: -1},
		{FanOut: -1},
		{ItemTTL: -time.Second},
		{PingInterval: time.Microsecond},
	} {
		if _, err := router.New(memstore.New(), newSender(), cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	r, err := router.New(memstore.New(), newSender(), router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Config()
	if got.MaxMessageBytes != 32768 || got.PingInterval != 30*time.Second || got.FanOut != 64 ||
		got.ItemTTL != 2*time.Hour+10*time.Minute || got.CacheSize != 10000 {
		t.Errorf("defaults: got %+v", got)
	}
}

// panicStore panics on every lookup, to check that a bug becomes a 4000.
type panicStore struct{ *memstore.Store }

func (panicStore) Connection(context.Context, string) (router.Connection, error) { panic("bug") }

func TestPanicBecomesUnknownError(t *testing.T) {
	st := memstore.New()
	r, err := router.New(panicStore{st}, newSender(), router.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := r.Handle(t.Context(), router.Request{ConnectionID: "c=", Body: []byte(`{"op":0,"id":"boom","event":"E","intent":{"target":"GLOBAL"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var f protocol.Frame
	if err := json.Unmarshal(reply, &f); err != nil {
		t.Fatal(err)
	}
	wantError(t, &f, protocol.CodeUnknownError, "boom")
	if strings.Contains(string(reply), "bug") {
		t.Errorf("reply %s leaks the panic", reply)
	}
}

// countingStore counts the lookups the router makes.
type countingStore struct {
	*memstore.Store
	mu      sync.Mutex
	lookups int
}

func (s *countingStore) Connection(ctx context.Context, id string) (router.Connection, error) {
	s.mu.Lock()
	s.lookups++
	s.mu.Unlock()
	return s.Store.Connection(ctx, id)
}

func (s *countingStore) ServiceConnection(ctx context.Context, id string) (string, error) {
	s.mu.Lock()
	s.lookups++
	s.mu.Unlock()
	return s.Store.ServiceConnection(ctx, id)
}

func TestWarmDirectCostsNoLookups(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	if err := st.PutToken(t.Context(), token.Token{Hash: token.HashOf(goodToken), AllGroups: true}); err != nil {
		t.Fatal(err)
	}
	snd := newSender()
	// Two routers on one store: two warm Lambda containers.
	r1, _ := router.New(st, snd, router.Config{})
	r2, _ := router.New(st, snd, router.Config{})
	e := &env{t: t, store: st.Store, sender: snd, r: r1}
	a, b := e.join("g"), e.join("g")
	direct := []byte(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + b.serviceID + `"}}`)
	req := router.Request{ConnectionID: a.id, ConnectedAt: a.at, Body: direct}

	st.lookups = 0
	if _, err := r2.Handle(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if st.lookups != 2 {
		t.Errorf("cold container: %d lookups, want 2 (sender identity, target service)", st.lookups)
	}
	st.lookups = 0
	for range 5 {
		if _, err := r2.Handle(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	if st.lookups != 0 {
		t.Errorf("warm container: %d lookups for 5 DIRECT messages, want 0", st.lookups)
	}
	if n := len(snd.frames(b.id)); n != 6 {
		t.Errorf("target got %d frames, want 6", n)
	}
}

func TestFanOutIsBounded(t *testing.T) {
	e := newEnv(t, router.Config{FanOut: 4})
	from := e.join("g")
	for range 20 {
		e.join("g")
	}
	var mu sync.Mutex
	inFlight, peak := 0, 0
	probe := &probeSender{sender: e.sender, enter: func() {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}}
	r, _ := router.New(e.store, probe, router.Config{FanOut: 4})
	if _, err := r.Handle(t.Context(), router.Request{ConnectionID: from.id, ConnectedAt: from.at,
		Body: []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)}); err != nil {
		t.Fatal(err)
	}
	if peak > 4 || peak < 2 {
		t.Errorf("got %d deliveries in flight at most, want between 2 and the bound 4", peak)
	}
}

type probeSender struct {
	*sender
	enter func()
}

func (p *probeSender) Send(ctx context.Context, connID string, frame []byte) error {
	p.enter()
	return p.sender.Send(ctx, connID, frame)
}

func TestGoneTargetIsForgottenByEveryContainer(t *testing.T) {
	e := newEnv(t, router.Config{HandshakeGrace: time.Nanosecond})
	other, _ := router.New(e.store, e.sender, router.Config{HandshakeGrace: time.Nanosecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	from, to := e.join("g"), e.join("g")
	direct := router.Request{ConnectionID: from.id, ConnectedAt: from.at,
		Body: []byte(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + to.serviceID + `"}}`)}
	if _, err := other.Handle(t.Context(), direct); err != nil { // the second container learns the route
		t.Fatal(err)
	}
	e.sender.gone[to.id] = true // the target vanished without $disconnect
	for range 3 {
		e.sender.reset()
		reply, err := other.Handle(t.Context(), direct)
		if err != nil || !strings.Contains(string(reply), `"code":4006`) {
			t.Fatalf("got %s, %v; want TARGET_NOT_FOUND", reply, err)
		}
	}
	if got := strings.Join(e.sender.calls, " "); got != "" {
		t.Errorf("after the 410 the container still posts to the gone target: %s", got)
	}
}

func TestDeliveryOverThePostLimit(t *testing.T) {
	e := newEnv(t, router.Config{MaxMessageBytes: router.MaxMessageBytesLimit})
	from := e.join("g")
	e.join("g")
	body := `{"op":0,"id":"big","event":"E","data":"` + strings.Repeat("x", router.MaxMessageBytesLimit-120) + `","intent":{"target":"GROUP","identifier":"g"}}`
	if len(body) > router.MaxMessageBytesLimit {
		t.Fatalf("test message of %d bytes is itself over the limit", len(body))
	}
	wantError(t, from.send(body), protocol.CodeMessageTooBig, "big")
	if len(e.sender.calls) != 0 {
		t.Errorf("a delivery over the post limit was attempted: %v", e.sender.calls)
	}
}

func TestMissingConnectedAtIsNow(t *testing.T) {
	e := newEnv(t, router.Config{})
	c := e.connect()
	c.at = time.Time{} // an event without requestContext.connectedAt
	c.send(`{"op":1,"data":{"token":"` + goodToken + `","group":"g"}}`)
	got, err := e.store.Connection(t.Context(), c.id)
	if err != nil || got.Identity == nil {
		t.Fatalf("identity was stored already expired: %+v, %v", got, err)
	}
}

func TestIdentifyDeadline(t *testing.T) {
	now := time.Now()
	e := newEnv(t, router.Config{IdentifyTimeout: 10 * time.Second, Now: func() time.Time { return now }})
	early, late, member := e.connect(), e.connect(), e.join("bots")
	now = now.Add(11 * time.Second)

	t.Run("an IDENTIFY after the deadline closes the connection", func(t *testing.T) {
		if f := early.send(`{"op":1,"id":"i","data":{"token":"` + goodToken + `","group":"bots"}}`); f != nil {
			t.Fatalf("got reply %+v, want none (DISCONNECT is posted)", f)
		}
		frames := e.sender.frames(early.id)
		if len(frames) != 1 || frames[0].Op != protocol.OpDisconnect || frames[0].ID != "i" {
			t.Fatalf("got %+v, want one DISCONNECT with id i", frames)
		}
		if d := errorData(t, &frames[0]); d.Code != protocol.CodeIdentifyFailed || !strings.Contains(d.Message, "within 10s") {
			t.Fatalf("got %+v, want IDENTIFY_FAILED naming the 10s limit", d)
		}
		if c, err := e.store.Connection(t.Context(), early.id); err != nil || c.Identity != nil {
			t.Fatalf("store has %+v, %v; want the connection still anonymous", c, err)
		}
	})
	t.Run("an EVENT from an anonymous connection after the deadline closes it", func(t *testing.T) {
		e.sender.reset()
		if f := late.send(`{"op":0,"id":"e","event":"E","intent":{"target":"GROUP","identifier":"bots"}}`); f != nil {
			t.Fatalf("got reply %+v, want none", f)
		}
		want := []string{"send:" + late.id, "close:" + late.id}
		if strings.Join(e.sender.calls, " ") != strings.Join(want, " ") {
			t.Fatalf("got calls %v, want %v", e.sender.calls, want)
		}
		if d := errorData(t, &e.sender.frames(late.id)[0]); d.Code != protocol.CodeIdentifyFailed {
			t.Fatalf("got %+v, want IDENTIFY_FAILED", d)
		}
	})
	t.Run("an identified connection is not concerned", func(t *testing.T) {
		e.sender.reset()
		wantError(t, member.send(`{"op":1,"id":"again","data":{"token":"`+goodToken+`","group":"bots"}}`), protocol.CodeAlreadyIdentified, "again")
		if f := member.send(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`); f != nil {
			t.Fatalf("EVENT from a member answered %+v", f)
		}
		if len(e.sender.frames(late.id)) != 0 || len(e.sender.frames(early.id)) != 0 {
			t.Fatal("GLOBAL reached anonymous connections")
		}
	})
	t.Run("within the deadline an EVENT is only UNAUTHORIZED", func(t *testing.T) {
		fresh := e.connect()
		fresh.at = now
		e.store.AddConnection(t.Context(), router.Connection{ID: fresh.id, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)})
		wantError(t, fresh.send(`{"op":0,"id":"u","event":"E","intent":{"target":"GLOBAL"}}`), protocol.CodeUnauthorized, "u")
	})
}

func TestConnectWithoutATimeIsRecordedNow(t *testing.T) {
	e := newEnv(t, router.Config{})
	if err := e.r.Connect(t.Context(), router.Connection{ID: "zero="}); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Connection(t.Context(), "zero=")
	if err != nil {
		t.Fatalf("a connection without connectedAt is %v, want recorded and live", err)
	}
	if time.Since(c.ConnectedAt) > time.Minute || time.Until(c.ExpiresAt) < 2*time.Hour {
		t.Fatalf("got connectedAt %v expiresAt %v, want now and now + the item TTL", c.ConnectedAt, c.ExpiresAt)
	}
}

func TestAVouchedIdentityCostsNoLookupEvenCold(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	snd := newSender()
	r1, _ := router.New(st, snd, router.Config{})
	r2, _ := router.New(st, snd, router.Config{}) // a cold container
	at := time.Now().UTC().Truncate(time.Millisecond)
	a := router.Identity{ServiceID: "svc-a", Group: "g"}
	b := router.Identity{ServiceID: "svc-b", Group: "g"}
	for id, who := range map[string]router.Identity{"connA=": a, "connB=": b} {
		if err := r1.Connect(t.Context(), router.Connection{ID: id, ConnectedAt: at, Identity: &who}); err != nil {
			t.Fatal(err)
		}
	}
	st.lookups = 0
	group := []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)
	if _, err := r2.Handle(t.Context(), router.Request{ConnectionID: "connA=", ConnectedAt: at, Identity: &a, Body: group}); err != nil {
		t.Fatal(err)
	}
	if st.lookups != 0 {
		t.Errorf("a GROUP EVENT with the gateway's identity looked up %d times, want 0", st.lookups)
	}
	if got := snd.frames("connB="); len(got) != 1 {
		t.Errorf("the group member got %d frames, want 1", len(got))
	}
}

func TestConnectRefusesAnInvalidIdentity(t *testing.T) {
	r, _ := router.New(memstore.New(), newSender(), router.Config{})
	for _, id := range []router.Identity{{ServiceID: "", Group: "g"}, {ServiceID: "s", Group: "not a group"}, {ServiceID: strings.Repeat("s", 129), Group: "g"}} {
		if err := r.Connect(t.Context(), router.Connection{ID: "c=", Identity: &id}); err == nil {
			t.Errorf("Connect with identity %+v: got no error", id)
		}
	}
}

// The gateway answers 410 for a connection whose $connect has not returned,
// and a connection identified at the handshake is a group member from inside
// its $connect: a fan-out in that moment must not forget it (the soak lost
// every later message to such a member). Once past the handshake grace, a
// 410 means gone.
func TestAGoneConnectionStillInItsHandshakeIsKept(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	e := newEnv(t, router.Config{HandshakeGrace: 30 * time.Second, Now: clock})
	from := e.join("g")
	young := router.Connection{ID: "young=", ConnectedAt: now, Identity: &router.Identity{ServiceID: "svc-young", Group: "g"}}
	if err := e.r.Connect(t.Context(), young); err != nil {
		t.Fatal(err)
	}
	e.sender.gone[young.ID] = true // its $connect has not returned yet
	from.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)
	if _, err := e.store.Connection(t.Context(), young.ID); err != nil {
		t.Fatalf("a member still in its handshake was forgotten on a 410: %v", err)
	}
	delete(e.sender.gone, young.ID) // $connect returned
	from.send(`{"op":0,"event":"LATER","intent":{"target":"GROUP","identifier":"g"}}`)
	if got := e.sender.frames(young.ID); len(got) != 1 || got[0].Event != "LATER" {
		t.Fatalf("the member got %+v, want the later message", got)
	}

	e.sender.gone[young.ID] = true // gone for good, 31 s after it connected
	now = now.Add(31 * time.Second)
	from.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)
	if _, err := e.store.Connection(t.Context(), young.ID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("a member gone past its handshake is still stored: %v", err)
	}
}

// receipt returns the counts of a RECEIPT frame with id, or fails.
func receipt(t *testing.T, f *protocol.Frame, id string) protocol.Receipt {
	t.Helper()
	var r protocol.Receipt
	if f == nil || f.Op != protocol.OpReceipt || f.ID != id || json.Unmarshal(f.Data, &r) != nil {
		t.Fatalf("got %+v, want the RECEIPT of %q", f, id)
	}
	return r
}

func TestAMessageSentWithAckGetsItsDeliveryReceipt(t *testing.T) {
	e := newEnv(t, router.Config{HandshakeGrace: time.Nanosecond})
	from, a, b, dead := e.join("g"), e.join("g"), e.join("g"), e.join("g")
	other := e.join("h")
	e.sender.gone[dead.id] = true

	tests := []struct {
		name, body, id string
		want           protocol.Receipt
	}{
		{"a GROUP counts its members and the gone one", `{"op":0,"id":"g1","ack":true,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`, "g1", protocol.Receipt{Delivered: 2, Gone: 1}},
		{"a GLOBAL counts everyone but the sender", `{"op":0,"id":"all","ack":true,"event":"E","intent":{"target":"GLOBAL"}}`, "all", protocol.Receipt{Delivered: 3}},
		{"a DIRECT counts its one delivery", `{"op":0,"id":"d1","ack":true,"event":"E","intent":{"target":"DIRECT","identifier":"` + a.serviceID + `"}}`, "d1", protocol.Receipt{Delivered: 1}},
		{"a REPLY gets one too", `{"op":5,"id":"r1","ack":true,"intent":{"target":"DIRECT","identifier":"` + b.serviceID + `"}}`, "r1", protocol.Receipt{Delivered: 1}},
		{"a GROUP of nobody counts nothing", `{"op":0,"id":"n","ack":true,"event":"E","intent":{"target":"GROUP","identifier":"empty"}}`, "n", protocol.Receipt{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := receipt(t, from.send(tt.body), tt.id); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// The receipt names the id the server gave an EVENT sent without one.
	f := from.send(`{"op":0,"ack":true,"event":"E","intent":{"target":"GROUP","identifier":"h"}}`)
	if got := receipt(t, f, f.ID); got.Delivered != 1 || len(f.ID) != 36 {
		t.Errorf("got %+v for id %q, want one delivery and the assigned UUID", got, f.ID)
	}
	if got := e.sender.frames(other.id); len(got) != 2 || got[1].ID != f.ID {
		t.Errorf("the member got %+v, want the EVENT with the receipt's id %s", got, f.ID)
	}
	// Recipients never see the ack.
	for _, fr := range e.sender.frames(a.id) {
		if strings.Contains(string(fr.Data)+fr.Event, "ack") {
			t.Errorf("a delivered frame carries the ack: %+v", fr)
		}
	}
	// A DIRECT to nobody is TARGET_NOT_FOUND, ack or not; no ack, no receipt.
	wantError(t, from.send(`{"op":0,"id":"x","ack":true,"event":"E","intent":{"target":"DIRECT","identifier":"nobody"}}`), protocol.CodeTargetNotFound, "x")
	if f := from.send(`{"op":0,"id":"q","event":"E","intent":{"target":"GROUP","identifier":"g"}}`); f != nil {
		t.Errorf("without ack got %+v, want nothing", f)
	}
	wantError(t, from.send(`{"op":0,"id":"bad","ack":"yes","event":"E","intent":{"target":"GLOBAL"}}`), protocol.CodeInvalidPayload, "bad")
}

// When no delivery succeeds, a message sent with ack still gets its
// receipt (failed: N), not only a gateway error without an id that a
// waiting sender cannot match; without ack, the function fails as before.
func TestAReceiptCountsDeliveriesThatAllFailed(t *testing.T) {
	e := newEnv(t, router.Config{})
	from, a, b := e.join("g"), e.join("g"), e.join("solo")
	e.sender.broken[a.id] = errors.New("500 from the gateway")
	e.sender.broken[b.id] = errors.New("500 from the gateway")
	if got := receipt(t, from.send(`{"op":0,"id":"g","ack":true,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`), "g"); got != (protocol.Receipt{Failed: 1}) {
		t.Errorf("GROUP: got %+v, want failed 1", got)
	}
	if got := receipt(t, from.send(`{"op":0,"id":"d","ack":true,"event":"E","intent":{"target":"DIRECT","identifier":"`+b.serviceID+`"}}`), "d"); got != (protocol.Receipt{Failed: 1}) {
		t.Errorf("DIRECT: got %+v, want failed 1", got)
	}
	req := router.Request{ConnectionID: from.id, ConnectedAt: from.at, Body: []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)}
	if _, err := e.r.Handle(t.Context(), req); err == nil {
		t.Error("without ack, a message none of whose deliveries succeeded returned no error")
	}
}
