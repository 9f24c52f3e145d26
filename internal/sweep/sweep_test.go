package sweep_test

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
	"github.com/mastersocket/mastersocket/internal/sweep"
)

// gateway is a fake sweep.Gateway: connections it knows, with their last
// activity; what was sent and closed, in order.
type gateway struct {
	mu       sync.Mutex
	live     map[string]sweep.Status
	broken   map[string]bool
	calls    []string
	sent     map[string][]byte
	inFlight int
	peak     int
	delay    time.Duration
}

func newGateway() *gateway {
	return &gateway{live: map[string]sweep.Status{}, broken: map[string]bool{}, sent: map[string][]byte{}}
}

func (g *gateway) Status(_ context.Context, id string) (sweep.Status, error) {
	g.mu.Lock()
	g.inFlight++
	g.peak = max(g.peak, g.inFlight)
	g.mu.Unlock()
	time.Sleep(g.delay)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if g.broken[id] {
		return sweep.Status{}, errors.New("status: connection reset")
	}
	st, ok := g.live[id]
	if !ok {
		return sweep.Status{}, fmt.Errorf("get connection %s: %w", id, router.ErrGone)
	}
	return st, nil
}

func (g *gateway) Send(_ context.Context, id string, frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, "send:"+id)
	g.sent[id] = frame
	return nil
}

func (g *gateway) Close(_ context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, "close:"+id)
	delete(g.live, id)
	return nil
}

// disconnect returns the DISCONNECT frame's data sent to id.
func (g *gateway) disconnect(t *testing.T, id string) protocol.ErrorData {
	t.Helper()
	g.mu.Lock()
	raw := g.sent[id]
	g.mu.Unlock()
	var f protocol.Frame
	var d protocol.ErrorData
	if err := json.Unmarshal(raw, &f); err != nil || f.Op != protocol.OpDisconnect || json.Unmarshal(f.Data, &d) != nil {
		t.Fatalf("sent to %s: %s, want a DISCONNECT frame", id, raw)
	}
	return d
}

type world struct {
	t     *testing.T
	now   time.Time
	store *memstore.Store
	gw    *gateway
	n     int
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, now: time.Now().UTC().Truncate(time.Millisecond), store: memstore.New(), gw: newGateway()}
	w.store.Now = func() time.Time { return w.now }
	return w
}

// conn records a connection made age ago, last active idle ago; gone ones
// the gateway does not know. group "" leaves it anonymous.
func (w *world) conn(age, idle time.Duration, group string, live bool) string {
	w.t.Helper()
	w.n++
	id := fmt.Sprintf("conn%03d=", w.n)
	at := w.now.Add(-age)
	c := router.Connection{ID: id, ConnectedAt: at, ExpiresAt: at.Add(2*time.Hour + 10*time.Minute), Gateway: testGateway}
	if err := w.store.AddConnection(w.t.Context(), c); err != nil {
		w.t.Fatal(err)
	}
	if group != "" {
		c.Identity = &router.Identity{ServiceID: "svc-" + id, Group: group, IdentifiedAt: at}
		if err := w.store.Identify(w.t.Context(), c); err != nil {
			w.t.Fatal(err)
		}
	}
	if live {
		w.gw.live[id] = sweep.Status{ConnectedAt: at, LastActiveAt: w.now.Add(-idle)}
	}
	return id
}

// testGateway is the gateway the world's connections belong to.
const testGateway = "https://sweep.example/prod"

func (w *world) sweeper(reg sweep.Registry, cfg sweep.Config) *sweep.Sweeper {
	w.t.Helper()
	if cfg.Gateway == "" {
		cfg.Gateway = testGateway
	}
	cfg.Now = func() time.Time { return w.now }
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if reg == nil {
		reg = w.store
	}
	s, err := sweep.New(reg, w.gw, cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) stored(id string) bool {
	_, err := w.store.Connection(w.t.Context(), id)
	return err == nil
}

func TestSweep(t *testing.T) {
	w := newWorld(t)
	ping := 30 * time.Second
	active := w.conn(time.Hour, 10*time.Second, "bots", true)
	silent := w.conn(time.Hour, 61*time.Second, "bots", true)
	edge := w.conn(time.Hour, 60*time.Second, "bots", true) // exactly twice the interval: not yet
	goneMember := w.conn(time.Hour, 0, "bots", false)
	goneAnon := w.conn(time.Minute, 0, "", false)
	lateAnon := w.conn(11*time.Second, 11*time.Second, "", true)
	youngAnon := w.conn(9*time.Second, 9*time.Second, "", true)

	r, err := w.sweeper(nil, sweep.Config{PingInterval: ping, IdentifyTimeout: 10 * time.Second}).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (sweep.Report{Checked: 7, Gone: 2, Silent: 1, Anonymous: 1}); r != want {
		t.Errorf("got report %+v, want %+v", r, want)
	}
	for id, want := range map[string]bool{active: true, edge: true, youngAnon: true, silent: false, goneMember: false, goneAnon: false, lateAnon: false} {
		if got := w.stored(id); got != want {
			t.Errorf("%s: stored %v, want %v", id, got, want)
		}
	}
	if _, err := w.store.ServiceConnection(t.Context(), "svc-"+goneMember); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the gone member's service is still reachable: %v", err)
	}
	var members []string
	w.store.GroupMembers(t.Context(), "bots", func(page []router.Member) error {
		for _, m := range page {
			members = append(members, m.ConnectionID)
		}
		return nil
	})
	if len(members) != 2 {
		t.Errorf("group bots has %v, want the active member and the one at the edge", members)
	}

	if d := w.gw.disconnect(t, silent); d.Code != protocol.CodePingTimeout || d.Reason != "PING_TIMEOUT" || !strings.Contains(d.Message, "1m1s") {
		t.Errorf("silent connection told %+v, want 4008 PING_TIMEOUT saying how long it was silent", d)
	}
	if d := w.gw.disconnect(t, lateAnon); d.Code != protocol.CodeIdentifyFailed || !strings.Contains(d.Message, "within 10s") {
		t.Errorf("late anonymous connection told %+v, want 4004 IDENTIFY_FAILED naming the deadline", d)
	}
	got := strings.Join(w.gw.calls, " ")
	for _, id := range []string{silent, lateAnon} {
		if !strings.Contains(got, "send:"+id) || !strings.Contains(got, "close:"+id) {
			t.Errorf("calls %s: want DISCONNECT sent to %s, then %s closed", got, id, id)
		}
		if strings.Index(got, "send:"+id) > strings.Index(got, "close:"+id) {
			t.Errorf("calls %s: %s closed before its DISCONNECT was sent", got, id)
		}
	}
	for _, id := range []string{active, edge, youngAnon, goneMember, goneAnon} {
		if strings.Contains(got, id) {
			t.Errorf("calls %s: %s should not have been sent to or closed", got, id)
		}
	}

	// A second sweep finds nothing more to do.
	r, err = w.sweeper(nil, sweep.Config{PingInterval: ping, IdentifyTimeout: 10 * time.Second}).Run(t.Context())
	if err != nil || r != (sweep.Report{Checked: 3}) {
		t.Errorf("second sweep: got %+v, %v; want 3 checked and nothing done", r, err)
	}
}

func TestAGatewayErrorRemovesNothing(t *testing.T) {
	w := newWorld(t)
	id := w.conn(time.Hour, time.Hour, "bots", true)
	w.gw.broken[id] = true
	r, err := w.sweeper(nil, sweep.Config{}).Run(t.Context())
	if err != nil || r != (sweep.Report{Checked: 1, Failed: 1}) {
		t.Fatalf("got %+v, %v; want the check counted as failed", r, err)
	}
	if !w.stored(id) || len(w.gw.calls) != 0 {
		t.Fatalf("stored %v, calls %v: a failed status call must change nothing", w.stored(id), w.gw.calls)
	}
}

// stale lists connections as they were before they identified, as an
// eventually consistent index may.
type stale struct {
	*memstore.Store
	listed []router.Connection
}

func (s stale) Connections(_ context.Context, _ string, fn func([]router.Connection) error) error {
	return fn(s.listed)
}

func TestAConnectionThatIdentifiedSinceTheListingIsKept(t *testing.T) {
	w := newWorld(t)
	id := w.conn(time.Minute, time.Second, "", true)
	listed, _ := w.store.Connection(t.Context(), id)
	c := listed
	c.Identity = &router.Identity{ServiceID: "svc", Group: "g", IdentifiedAt: w.now}
	if err := w.store.Identify(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	r, err := w.sweeper(stale{w.store, []router.Connection{listed}}, sweep.Config{}).Run(t.Context())
	if err != nil || r != (sweep.Report{Checked: 1}) || !w.stored(id) || len(w.gw.calls) != 0 {
		t.Fatalf("got %+v, %v, stored %v, calls %v; want the connection left alone", r, err, w.stored(id), w.gw.calls)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	w := newWorld(t)
	for range 50 {
		w.conn(time.Hour, time.Second, "bots", true)
	}
	w.gw.delay = 5 * time.Millisecond
	r, err := w.sweeper(nil, sweep.Config{Concurrency: 4}).Run(t.Context())
	if err != nil || r.Checked != 50 {
		t.Fatalf("got %+v, %v", r, err)
	}
	if w.gw.peak > 4 {
		t.Fatalf("got %d status calls in flight at once, want at most 4", w.gw.peak)
	}
}

func TestACancelledSweepSaysSo(t *testing.T) {
	w := newWorld(t)
	for range 5 {
		w.conn(time.Hour, time.Second, "bots", true)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := w.sweeper(nil, sweep.Config{}).Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestConfigIsChecked(t *testing.T) {
	for _, cfg := range []sweep.Config{{PingInterval: -1}, {IdentifyTimeout: -1}, {Concurrency: -1}, {HandshakeGrace: -1}} {
		if _, err := sweep.New(memstore.New(), newGateway(), cfg); err == nil {
			t.Errorf("New(%+v): got no error", cfg)
		}
	}
}

// A connection the gateway does not know, recorded a moment ago, may be in
// its handshake ($connect has recorded it and not returned yet, and the
// gateway answers 410 until it has): it is left for a later sweep.
func TestAConnectionInItsHandshakeIsLeftAlone(t *testing.T) {
	w := newWorld(t)
	id := w.conn(10*time.Second, 0, "", false)
	s := w.sweeper(nil, sweep.Config{HandshakeGrace: 30 * time.Second})
	if r, err := s.Run(t.Context()); err != nil || r != (sweep.Report{Checked: 1, Young: 1}) || !w.stored(id) {
		t.Fatalf("got %+v, %v, stored %v; want it left, counted young", r, err, w.stored(id))
	}
	w.now = w.now.Add(21 * time.Second)
	if r, err := s.Run(t.Context()); err != nil || r != (sweep.Report{Checked: 1, Gone: 1}) || w.stored(id) {
		t.Fatalf("30 s after it connected: got %+v, %v, stored %v; want it removed", r, err, w.stored(id))
	}
}

// Another gateway sharing the registry answers 410 for every connection of
// this one: its sweeper must not see them at all.
func TestOnlyTheGatewaysOwnConnectionsAreSwept(t *testing.T) {
	w := newWorld(t)
	ours := w.conn(time.Hour, time.Second, "bots", true)
	theirs := w.conn(time.Hour, time.Second, "bots", false) // unknown to our gateway
	c, _ := w.store.Connection(t.Context(), theirs)
	w.store.RemoveConnection(t.Context(), theirs)
	c.Identity, c.Gateway = nil, "http://127.0.0.1:3001/dev"
	w.store.AddConnection(t.Context(), c)
	r, err := w.sweeper(nil, sweep.Config{}).Run(t.Context())
	if err != nil || r != (sweep.Report{Checked: 1}) || !w.stored(ours) || !w.stored(theirs) {
		t.Fatalf("got %+v, %v; stored ours %v, theirs %v: want only ours checked, both kept", r, err, w.stored(ours), w.stored(theirs))
	}
}

// A sweep whose time runs out after the listing says so, rather than
// counting the checks it could not make as failures only.
func TestASweepOutOfTimeSaysSo(t *testing.T) {
	w := newWorld(t)
	for range 20 {
		w.conn(time.Hour, time.Second, "bots", true)
	}
	w.gw.delay = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
	defer cancel()
	r, err := w.sweeper(nil, sweep.Config{Concurrency: 2}).Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || r.Checked == 0 {
		t.Fatalf("got %+v, %v; want the checks made so far and context.DeadlineExceeded", r, err)
	}
}
