package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// State is where a client is in its life.
type State int

// The states of a client: Connecting until Dial returns, then Connected and
// Reconnecting in turn, and Closed at the end.
const (
	StateConnecting State = iota
	StateConnected
	StateReconnecting
	StateClosed
)

// String returns the state's name, such as "connected".
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Client is a service connected to the bus. Its methods are safe for
// concurrent use. Make one with Dial; stop it with Close.
type Client struct {
	url       string
	opts      Options
	log       *slog.Logger
	http      *http.Client
	transport *http.Transport // ours, nil when Options.HTTPClient is the user's

	ctx      context.Context // ends when the client stops: handlers' context
	cancel   context.CancelFunc
	closing  chan struct{} // closed when the client stops
	stopOnce sync.Once

	mu    sync.Mutex
	cur   *session      // the identified connection, nil while (re)connecting
	ready chan struct{} // closed when cur is set; replaced when it is cleared
	state State
	err   error // why the client stopped; nil after Close
	// lastIdentity is the last connection's, for ID while reconnecting.
	lastIdentity identity

	loops     sync.WaitGroup // the supervisor and the readers
	users     sync.WaitGroup // handler workers and the callback runner
	handlers  *queue[*Message]
	callbacks *queue[func()]
	recent    *recentIDs
}

// Dial connects to the bus at url (ws:// or wss://, the stack's
// WebSocketURL), authenticates, and returns once the connection is
// identified: its service id is known (ID) and anything sent afterwards is
// sent as this service. ctx bounds the first connection only: the handshake
// and the IDENTIFY answer. Dial does not retry: any failure is returned, a
// *HandshakeError when the server refused the handshake (401, 403), a
// *ServerError IDENTIFY_FAILED when it refused the token in IDENTIFY. Once
// Dial has returned, the client reconnects on its own until Close or a
// terminal error.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("client: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("client: url %q: want ws:// or wss://", rawURL)
	}
	if !o.IdentifyAfterConnect {
		q := u.Query()
		q.Set("group", o.Group)
		u.RawQuery = q.Encode()
	}
	c := &Client{
		url:       u.String(),
		opts:      o,
		log:       o.Logger,
		http:      o.HTTPClient,
		closing:   make(chan struct{}),
		ready:     make(chan struct{}),
		handlers:  newQueue[*Message](o.MaxPending),
		callbacks: newQueue[func()](o.MaxPending),
		recent:    newRecentIDs(),
	}
	if c.http == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		c.http = &http.Client{Transport: c.transport}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for range o.HandlerConcurrency {
		c.users.Add(1)
		go c.work()
	}
	c.users.Add(1)
	go c.runCallbacks()

	s, err := c.connect(ctx)
	if err != nil {
		err = modeHint(err, o.IdentifyAfterConnect)
		c.stop(err)
		c.callbacks.close(false)
		c.loops.Wait()
		c.users.Wait()
		c.release()
		return nil, err
	}
	c.loops.Add(1)
	c.connected(s, false)
	go c.supervise(s)
	return c, nil
}

// modeHint adds to the error of a first connection what a mismatch of
// modes looks like: a server deployed with ConnectAuth=off fails the "who am
// I" of a connection it holds anonymous with IDENTIFY_FAILED; one deployed
// with ConnectAuth=required refuses a handshake without a token with 401.
func modeHint(err error, identifyAfterConnect bool) error {
	var he *HandshakeError
	switch {
	case !identifyAfterConnect && CodeOf(err) == CodeIdentifyFailed:
		return fmt.Errorf("%w (the server did not authenticate the handshake: if it runs with ConnectAuth=off, set Options.IdentifyAfterConnect)", err)
	case identifyAfterConnect && errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w (the server authenticates the handshake, as ConnectAuth=required does: leave Options.IdentifyAfterConnect false)", err)
	}
	return err
}

// ID returns the service id of the current connection: what Direct
// targets. It changes on every reconnect (OnConnect says so); while the
// client reconnects it is the last one's.
func (c *Client) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID()
}

func (c *Client) lastID() string {
	if c.cur != nil {
		return c.cur.id
	}
	return c.lastIdentity.id
}

// Group returns the group this service joined.
func (c *Client) Group() string { return c.opts.Group }

// State returns the client's state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Close stops the client: it closes the connection (a normal WebSocket
// close, which the server's $disconnect records), ends calls in flight with
// ErrClosed, drops the messages waiting for a handler and cancels the
// handlers' context. It returns once the client's own goroutines have
// exited; handlers still running are not waited for, so Close may be called
// from a handler or a callback. Call Wait to wait for those too. Close is
// idempotent and returns nil.
func (c *Client) Close() error {
	c.stop(nil)
	c.loops.Wait()
	c.release()
	return nil
}

// Wait blocks until the client has stopped and every goroutine it started,
// running handlers and callbacks included, has returned. It returns nil
// after Close, and otherwise what stopped the client: a *ServerError
// IDENTIFY_FAILED, a *HandshakeError 401 or 403 on a reconnect, or an error
// wrapping ErrReconnectLimit. Do not call it from a handler or a callback:
// it would wait for itself.
func (c *Client) Wait() error {
	<-c.closing
	c.loops.Wait()
	c.users.Wait()
	c.release()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// release frees the idle handshake connections of the client's own
// transport.
func (c *Client) release() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// stop marks the client stopped, for cause (nil: Close), once.
func (c *Client) stop(cause error) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.state, c.err = StateClosed, cause
		if c.cur != nil {
			c.lastIdentity = identity{c.cur.id, c.cur.ping}
		}
		c.cur = nil
		c.mu.Unlock()
		close(c.closing)
		c.cancel()
		c.handlers.close(false)
		if cause != nil {
			c.log.Info("client stopped", "err", cause)
		}
	})
}

// stopped reports whether the client has stopped.
func (c *Client) stopped() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// closedErr is what calls on a stopped client return.
func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	}
	return ErrClosed
}

// identity is what the client remembers of its last connection.
type identity struct {
	id   string
	ping time.Duration
}

// connect opens a connection and identifies it; it returns the session once
// the IDENTIFY answer came, or the first error.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // Close ends an attempt
	defer stop()

	tok := c.opts.Token
	if c.opts.TokenFunc != nil {
		var err error
		if tok, err = c.opts.TokenFunc(ctx); err != nil {
			return nil, fmt.Errorf("client: token: %w", err)
		}
	}
	header := c.opts.HTTPHeader.Clone()
	if header == nil {
		header = http.Header{}
	}
	if !c.opts.IdentifyAfterConnect {
		header.Set("Authorization", "Bearer "+tok)
	}
	conn, resp, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: header})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Body: string(body), Err: err}
		}
		if ctx.Err() != nil && c.stopped() {
			return nil, c.closedErr()
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	conn.SetReadLimit(readLimit)
	s := newSession(c, conn)
	c.loops.Add(1)
	go s.read()

	id := newID()
	w := s.addWaiter(id, &waiter{kind: waitIdentify, res: make(chan *inFrame, 1)})
	f := outFrame{Op: OpIdentify, ID: id}
	if c.opts.IdentifyAfterConnect {
		f.Data, _ = marshalData(struct {
			Token string `json:"token"`
			Group string `json:"group"`
		}{tok, c.opts.Group})
	}
	b, _ := encode(f, MaxMessageBytesLimit)
	if err = s.write(b); err == nil {
		select {
		case r := <-w.res:
			if r.op() != OpIdentify {
				err = r.serverError()
			}
		case <-s.done:
			err = s.cause()
		case <-ctx.Done():
			err = ctx.Err()
			if c.stopped() {
				err = c.closedErr()
			}
		}
	}
	if err != nil {
		s.kill(err)
		<-s.done
		if se := s.disconnected(); se != nil {
			err = se // the server's DISCONNECT says why
		}
		return nil, err
	}
	return s, nil
}

// publish makes s the connection calls use, from the moment the server
// identified it.
func (c *Client) publish(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateClosed || c.cur != nil {
		return
	}
	c.cur = s
	close(c.ready)
}

// unpublish stops calls from using s, which has ended.
func (c *Client) unpublish(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == s {
		c.lastIdentity = identity{s.id, s.ping}
		c.cur = nil
		c.ready = make(chan struct{})
	}
}

// session returns the identified connection, waiting for one while the
// client reconnects, until ctx ends or the client stops.
func (c *Client) session(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		c.mu.Lock()
		s, ready, state := c.cur, c.ready, c.state
		c.mu.Unlock()
		if state == StateClosed {
			return nil, c.closedErr()
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closing:
		}
	}
}

// connected records an identified connection and tells OnConnect.
func (c *Client) connected(s *session, reconnect bool) {
	c.mu.Lock()
	if c.state != StateClosed {
		c.state = StateConnected
	}
	c.mu.Unlock()
	c.log.Debug("connected", "service", s.id, "group", s.group, "ping", s.ping, "reconnect", reconnect)
	if fn := c.opts.OnConnect; fn != nil {
		e := ConnectEvent{ServiceID: s.id, Group: s.group, PingInterval: s.ping, Reconnect: reconnect}
		c.lifecycle(func() { fn(c, e) })
	}
}

// supervise keeps the client connected: it runs the heartbeat of each
// connection and reconnects when one ends, until the client stops.
func (c *Client) supervise(s *session) {
	defer c.loops.Done()
	defer c.callbacks.close(true) // after the last callback is queued
	for {
		cause := c.keepAlive(s)
		if c.stopped() {
			c.disconnected(s, nil, false)
			c.closed()
			return
		}
		reconnect := !terminal(cause) && c.opts.Backoff.MaxAttempts >= 0
		c.log.Info("disconnected", "service", s.id, "err", cause, "reconnecting", reconnect)
		if !reconnect {
			c.stop(cause)
			c.disconnected(s, cause, false)
			c.closed()
			return
		}
		c.mu.Lock()
		if c.state != StateClosed {
			c.state = StateReconnecting
		}
		c.mu.Unlock()
		c.disconnected(s, cause, true)
		if s = c.reconnect(); s == nil {
			c.closed()
			return
		}
		c.connected(s, true)
	}
}

// reconnect connects again with backoff; it returns nil when the client
// stopped meanwhile (Close, a terminal error, too many attempts).
func (c *Client) reconnect() *session {
	b := c.opts.Backoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for attempt := 1; ; attempt++ {
		if b.MaxAttempts > 0 && attempt > b.MaxAttempts {
			c.stop(fmt.Errorf("%w: %d in a row failed, the last with: %w", ErrReconnectLimit, b.MaxAttempts, last))
			return nil
		}
		timer.Reset(b.delay(attempt))
		select {
		case <-timer.C:
		case <-c.closing:
			return nil
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.ConnectTimeout)
		s, err := c.connect(ctx)
		cancel()
		if err == nil {
			return s
		}
		if c.stopped() {
			return nil
		}
		last = err
		c.log.Info("reconnect failed", "attempt", attempt, "err", err)
		c.reportError(&ReconnectError{Attempt: attempt, Err: err})
		if terminal(err) {
			c.stop(err)
			return nil
		}
	}
}

// disconnected tells OnDisconnect that s ended.
func (c *Client) disconnected(s *session, cause error, reconnecting bool) {
	if fn := c.opts.OnDisconnect; fn != nil {
		e := DisconnectEvent{ServiceID: s.id, Err: cause, Reconnecting: reconnecting}
		c.lifecycle(func() { fn(c, e) })
	}
}

// closed tells OnClose that the client stopped.
func (c *Client) closed() {
	if fn := c.opts.OnClose; fn != nil {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		c.lifecycle(func() { fn(c, err) })
	}
}

// reportError hands err to OnError.
func (c *Client) reportError(err error) {
	if fn := c.opts.OnError; fn != nil {
		c.callback(func() { fn(c, err) })
	}
}

// callback queues an OnError report for the callback runner; if callbacks
// fell MaxPending behind, it is dropped.
func (c *Client) callback(fn func()) {
	if !c.callbacks.push(fn) {
		c.log.Warn("callbacks fell behind: an error report dropped")
	}
}

// lifecycle queues an OnConnect, OnDisconnect or OnClose call: never
// dropped, however far behind the callbacks are (there are a few per
// connection), so that every new service id is announced and OnClose comes.
func (c *Client) lifecycle(fn func()) {
	c.callbacks.pushAlways(fn)
}

// runCallbacks runs the callbacks one at a time, in order, until the
// supervisor has queued the last one.
func (c *Client) runCallbacks() {
	defer c.users.Done()
	for {
		fn, ok := c.callbacks.pop()
		if !ok {
			return
		}
		fn()
	}
}

// dispatch hands a received message to the handlers.
func (c *Client) dispatch(m *Message) {
	if c.opts.Handlers[m.Event] == nil && c.opts.Default == nil {
		c.log.Debug("no handler: message dropped", "event", m.Event, "id", m.ID)
		return
	}
	if !c.handlers.push(m) {
		if c.stopped() {
			return
		}
		c.reportError(fmt.Errorf("%w: %s %q id %s from %s", ErrSlowConsumer, m.Op, m.Event, m.ID, m.Source.ID))
	}
}

// work runs handlers until the client stops.
func (c *Client) work() {
	defer c.users.Done()
	for {
		m, ok := c.handlers.pop()
		if !ok {
			return
		}
		h := c.opts.Handlers[m.Event]
		if h == nil {
			h = c.opts.Default
		}
		h(c.ctx, c, m)
	}
}
