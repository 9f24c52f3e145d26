package client_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/client"
	"github.com/mastersocket/mastersocket/internal/token"
)

// lifecycle records a client's callbacks, in the order they came.
type lifecycle struct {
	mu     sync.Mutex
	events []string
	ch     chan any
}

func newLifecycle() *lifecycle { return &lifecycle{ch: make(chan any, 100)} }

func (l *lifecycle) edit(o *client.Options) {
	o.OnConnect = func(_ *client.Client, e client.ConnectEvent) {
		l.add(fmt.Sprintf("connect reconnect=%v", e.Reconnect), e)
	}
	o.OnDisconnect = func(_ *client.Client, e client.DisconnectEvent) {
		l.add(fmt.Sprintf("disconnect reconnecting=%v", e.Reconnecting), e)
	}
	o.OnClose = func(_ *client.Client, err error) { l.add("close", closeEvent{err}) }
}

type closeEvent struct{ err error }

func (l *lifecycle) add(name string, e any) {
	l.mu.Lock()
	l.events = append(l.events, name)
	l.mu.Unlock()
	l.ch <- e
}

func (l *lifecycle) log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, ", ")
}

// next returns the next callback's event, failing after 15 s.
func (l *lifecycle) next(t *testing.T) any {
	t.Helper()
	select {
	case e := <-l.ch:
		return e
	case <-time.After(15 * time.Second):
		t.Fatalf("no callback came; so far: %s", l.log())
		return nil
	}
}

func (l *lifecycle) disconnect(t *testing.T) client.DisconnectEvent {
	t.Helper()
	e, ok := l.next(t).(client.DisconnectEvent)
	if !ok {
		t.Fatalf("got %#v, want OnDisconnect; so far: %s", e, l.log())
	}
	return e
}

func (l *lifecycle) connect(t *testing.T) client.ConnectEvent {
	t.Helper()
	e, ok := l.next(t).(client.ConnectEvent)
	if !ok {
		t.Fatalf("got %#v, want OnConnect; so far: %s", e, l.log())
	}
	return e
}

func (l *lifecycle) closed(t *testing.T) error {
	t.Helper()
	e, ok := l.next(t).(closeEvent)
	if !ok {
		t.Fatalf("got %#v, want OnClose; so far: %s", e, l.log())
	}
	return e.err
}

func TestAClientReconnectsAfterTheServerDropsItsConnection(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		l := newLifecycle()
		in := newInbox()
		c := dial(t, g, m, "alpha", func(o *client.Options) { l.edit(o); o.Default = in.handler() })
		peer := dial(t, g, m, "beta", nil)
		first := l.connect(t)
		old := c.ID()

		g.drop(old)
		if e := l.disconnect(t); e.ServiceID != old || !e.Reconnecting || e.Err == nil {
			t.Errorf("OnDisconnect got %+v, want the old id, reconnecting", e)
		}
		e := l.connect(t)
		if !e.Reconnect || e.ServiceID == old || e.ServiceID != c.ID() || e.Group != "alpha" {
			t.Errorf("OnConnect got %+v (first %+v), want a new service id, which ID returns (%s)", e, first, c.ID())
		}
		if c.State() != client.StateConnected {
			t.Errorf("state %v, want connected", c.State())
		}
		// The new identity is the one the server knows; the old one is gone.
		ctx := timeout(t, 10*time.Second)
		if _, err := peer.SendAck(ctx, "OLD", client.Direct(old), nil); client.CodeOf(err) != client.CodeTargetNotFound {
			t.Errorf("a DIRECT to the old id: %v, want TARGET_NOT_FOUND", err)
		}
		if r, err := peer.SendAck(ctx, "NEW", client.Direct(c.ID()), nil); err != nil || r.Delivered != 1 {
			t.Errorf("a DIRECT to the new id: %+v, %v", r, err)
		}
		if got := in.next(t); got.Event != "NEW" {
			t.Errorf("got %q, want NEW", got.Event)
		}
		if r, err := c.SendAck(ctx, "BACK", client.Group("beta"), nil); err != nil || r.Delivered != 1 {
			t.Errorf("sending after the reconnect: %+v, %v", r, err)
		}
	})
}

func TestAClientReconnectsAfterTheGatewayRestarts(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		l := newLifecycle()
		c := dial(t, g, m, "alpha", l.edit)
		l.connect(t)
		old := c.ID()

		addr := g.Addr()
		g.stop()
		if e := l.disconnect(t); !e.Reconnecting {
			t.Errorf("OnDisconnect got %+v, want reconnecting", e)
		}
		time.Sleep(300 * time.Millisecond) // a few attempts fail meanwhile
		g2 := startGateway(t, m.params, addr)
		if e := l.connect(t); !e.Reconnect || e.ServiceID == old {
			t.Errorf("OnConnect got %+v, want a reconnect with a new id", e)
		}
		peer := dial(t, g2, m, "alpha", nil)
		if r, err := c.SendAck(timeout(t, 10*time.Second), "HI", client.Group("alpha"), nil); err != nil || r.Delivered != 1 {
			t.Errorf("after the restart: %+v, %v, want delivered to the peer %s", r, err, peer.ID())
		}
	})
}

func TestAKickWithPingTimeoutReconnects(t *testing.T) {
	g := startGateway(t, nil, "")
	l := newLifecycle()
	c := dial(t, g, modes[0], "alpha", l.edit)
	l.connect(t)
	g.kick(c.ID(), client.CodePingTimeout)
	e := l.disconnect(t)
	var se *client.ServerError
	if !errors.As(e.Err, &se) || se.Code != client.CodePingTimeout || !se.Fatal() || !e.Reconnecting {
		t.Errorf("OnDisconnect got %+v, want PING_TIMEOUT, reconnecting", e)
	}
	l.connect(t)
}

func TestIdentifyFailedFromTheServerIsTerminal(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		l := newLifecycle()
		c := dial(t, g, m, "alpha", l.edit)
		l.connect(t)
		before := g.Stats()
		g.kick(c.ID(), client.CodeIdentifyFailed)
		if e := l.disconnect(t); e.Reconnecting || client.CodeOf(e.Err) != client.CodeIdentifyFailed {
			t.Errorf("OnDisconnect got %+v, want IDENTIFY_FAILED, not reconnecting", e)
		}
		if err := l.closed(t); client.CodeOf(err) != client.CodeIdentifyFailed {
			t.Errorf("OnClose got %v, want IDENTIFY_FAILED", err)
		}
		if err := c.Wait(); client.CodeOf(err) != client.CodeIdentifyFailed {
			t.Errorf("Wait: %v, want IDENTIFY_FAILED", err)
		}
		if err := c.Send(t.Context(), "HI", client.Global(), nil); !errors.Is(err, client.ErrClosed) || client.CodeOf(err) != client.CodeIdentifyFailed {
			t.Errorf("Send after the end: %v, want ErrClosed and IDENTIFY_FAILED", err)
		}
		time.Sleep(200 * time.Millisecond)
		if after := g.Stats(); after.Invocations["ConnectFunction"] != before.Invocations["ConnectFunction"] {
			t.Errorf("the client connected again after IDENTIFY_FAILED")
		}
	})
}

// socketctl kick's DISCONNECT 4009 KICKED ends the client: the operator
// asked the service to go.
func TestAKickByAnOperatorIsTerminal(t *testing.T) {
	g := startGateway(t, nil, "")
	l := newLifecycle()
	c := dial(t, g, modes[0], "alpha", l.edit)
	l.connect(t)
	before := g.Stats()
	g.kick(c.ID(), client.CodeKicked)
	if e := l.disconnect(t); e.Reconnecting || client.CodeOf(e.Err) != client.CodeKicked {
		t.Errorf("OnDisconnect got %+v, want KICKED, not reconnecting", e)
	}
	if err := c.Wait(); client.CodeOf(err) != client.CodeKicked {
		t.Errorf("Wait: %v, want KICKED", err)
	}
	time.Sleep(200 * time.Millisecond)
	if after := g.Stats(); after.Invocations["ConnectFunction"] != before.Invocations["ConnectFunction"] {
		t.Errorf("the client connected again after KICKED")
	}
}

func TestARevokedTokenEndsTheClientAtItsNextReconnect(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		params := maps.Clone(m.params)
		params["AuthorizerCacheSeconds"] = "0" // revocation takes effect at once
		g := startGateway(t, params, "")
		const revocable = "mst_revocable"
		if err := g.Store().PutToken(t.Context(), token.Token{Hash: token.HashOf(revocable), AllGroups: true}); err != nil {
			t.Fatal(err)
		}
		var reported errs
		l := newLifecycle()
		c := dial(t, g, m, "alpha", func(o *client.Options) { o.Token = revocable; o.OnError = reported.on; l.edit(o) })
		l.connect(t)
		if err := g.Store().DeleteToken(t.Context(), token.HashOf(revocable)); err != nil {
			t.Fatal(err)
		}
		g.drop(c.ID())
		l.disconnect(t)
		err := l.closed(t)
		var he *client.HandshakeError
		switch {
		case !m.off && (!errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized):
			t.Errorf("OnClose got %v, want a *HandshakeError 401", err)
		case m.off && client.CodeOf(err) != client.CodeIdentifyFailed:
			t.Errorf("OnClose got %v, want IDENTIFY_FAILED", err)
		}
		if werr := c.Wait(); werr != err {
			t.Errorf("Wait: %v, want %v", werr, err)
		}
		var re *client.ReconnectError
		if got := reported.all(); len(got) != 1 || !errors.As(got[0], &re) || re.Attempt != 1 {
			t.Errorf("OnError got %v, want one failed attempt: no retry against a bad token", got)
		}
	})
}

func TestAClientGivesUpAfterMaxAttempts(t *testing.T) {
	g := startGateway(t, nil, "")
	var reported errs
	c := dial(t, g, modes[0], "alpha", func(o *client.Options) {
		o.Backoff = client.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond, MaxAttempts: 3}
		o.OnError = reported.on
	})
	g.stop()
	if err := c.Wait(); !errors.Is(err, client.ErrReconnectLimit) {
		t.Errorf("Wait: %v, want ErrReconnectLimit", err)
	}
	if n := len(reported.all()); n != 3 {
		t.Errorf("%d failed attempts reported, want 3", n)
	}
}

func TestAClientThatMustNotReconnectStopsWhenItsConnectionEnds(t *testing.T) {
	g := startGateway(t, nil, "")
	c := dial(t, g, modes[0], "alpha", func(o *client.Options) { o.Backoff.MaxAttempts = -1 })
	g.drop(c.ID())
	if err := c.Wait(); err == nil || c.State() != client.StateClosed {
		t.Errorf("Wait: %v, state %v; want the lost connection, closed", err, c.State())
	}
}

func TestSendingWhileReconnectingWaitsForTheNewConnection(t *testing.T) {
	g := startGateway(t, nil, "")
	c := dial(t, g, modes[0], "alpha", nil)
	addr := g.Addr()
	g.stop()
	eventually(t, "the client notices", func() bool { return c.State() == client.StateReconnecting })

	// Without a new connection in time, the context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, "HI", client.Global(), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send while no gateway runs: %v, want the deadline", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.SendAck(timeout(t, 15*time.Second), "HI", client.Group("alpha"), nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	startGateway(t, nil, addr)
	if err := <-done; err != nil {
		t.Errorf("SendAck across the restart: %v", err)
	}
}

func TestCallsInFlightFailWhenTheirConnectionEnds(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	dial(t, g, modes[0], "damon", nil) // never answers
	done := make(chan error, 1)
	go func() {
		_, err := asker.Request(context.Background(), "ASK", client.Group("damon"), nil)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	g.drop(asker.ID())
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrDisconnected) || errors.Is(err, client.ErrClosed) {
			t.Errorf("got %v, want ErrDisconnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Request still waiting after its connection ended")
	}
	eventually(t, "the client reconnects", func() bool { return asker.State() == client.StateConnected })
}

func TestTheHeartbeatPingsAtTheAnnouncedInterval(t *testing.T) {
	g := startGateway(t, map[string]string{"PingIntervalMs": "1000"}, "")
	l := newLifecycle()
	c := dial(t, g, modes[0], "alpha", l.edit)
	if e := l.connect(t); e.PingInterval != time.Second {
		t.Errorf("ping interval %v, want 1s", e.PingInterval)
	}
	time.Sleep(2500 * time.Millisecond)
	if n := g.bodies(`\"op\":3,\"id\":\"ping-`); n != 2 {
		t.Errorf("%d PINGs in 2.5 s, want 2", n)
	}
	if c.State() != client.StateConnected {
		t.Errorf("state %v, want connected: every PING had its PONG", c.State())
	}
}

func TestAConnectionWhosePongsStopIsDeclaredDeadAndReplaced(t *testing.T) {
	g := startGateway(t, map[string]string{"PingIntervalMs": "1000"}, "")
	p := newProxy(t, g.Addr())
	l := newLifecycle()
	c, err := dialErr(p.url(g.URL()), modes[0], "alpha", func(o *client.Options) { o.PongTimeout = 300 * time.Millisecond; l.edit(o) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close(); c.Wait() }()
	l.connect(t)
	old := c.ID()
	p.freeze() // the connection stays open, but nothing passes any more
	start := time.Now()
	e := l.disconnect(t)
	if !errors.Is(e.Err, client.ErrNoPong) || !e.Reconnecting {
		t.Errorf("OnDisconnect got %+v, want ErrNoPong, reconnecting", e)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("declared dead after %v, want within the interval plus the pong timeout", d)
	}
	if e := l.connect(t); e.ServiceID == old {
		t.Errorf("reconnected with the old id")
	}
}

func TestTheServersPingsAreAnswered(t *testing.T) {
	g := startGateway(t, nil, "")
	c := dial(t, g, modes[0], "alpha", nil)
	if status := g.manage(http.MethodPost, g.connection(c.ID()), `{"op":3,"id":"server-ping"}`); status != http.StatusOK {
		t.Fatalf("PostToConnection: %d", status)
	}
	eventually(t, "the client answers PONG", func() bool { return g.bodies(`{\"op\":4,\"id\":\"server-ping\"}`) == 1 })
}

func TestTokenFuncIsAskedBeforeEveryConnection(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		var asked atomic.Int32
		l := newLifecycle()
		c := dial(t, g, m, "alpha", func(o *client.Options) {
			o.Token = ""
			o.TokenFunc = func(context.Context) (string, error) { asked.Add(1); return testToken, nil }
			l.edit(o)
		})
		l.connect(t)
		g.drop(c.ID())
		l.disconnect(t)
		l.connect(t)
		if n := asked.Load(); n != 2 {
			t.Errorf("TokenFunc asked %d times, want 2", n)
		}
	})
}

func TestCallbacksComeInOrderAndOnCloseLast(t *testing.T) {
	g := startGateway(t, nil, "")
	l := newLifecycle()
	c := dial(t, g, modes[0], "alpha", l.edit)
	l.connect(t)
	g.drop(c.ID())
	l.disconnect(t)
	l.connect(t)
	c.Close()
	if err := c.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	want := "connect reconnect=false, disconnect reconnecting=true, connect reconnect=true, disconnect reconnecting=false, close"
	if got := l.log(); got != want {
		t.Errorf("callbacks: %s\nwant %s", got, want)
	}
}
