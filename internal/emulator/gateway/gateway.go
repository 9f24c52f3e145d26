// Package gateway emulates an API Gateway WebSocket API on a laptop: it
// accepts WebSocket connections, invokes the route functions with the same
// event JSON that AWS sends ($connect, $disconnect, route selection,
// $default, route responses), enforces API Gateway's limits and close codes,
// and serves the @connections management API (PostToConnection,
// GetConnection, DeleteConnection) with the status codes, X-Amzn-ErrorType
// headers and JSON bodies that the AWS SDK expects.
//
// The gateway knows nothing of mastersocket: it runs whatever functions its
// Invoker runs. One port serves both the WebSocket endpoint
// ws://ADDR/STAGE and the management API http://ADDR/STAGE/@connections/ID.
package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config, from API Gateway's quotas (and a placeholder account).
const (
	DefaultAddr               = "127.0.0.1:3001"
	DefaultStage              = "dev"
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultMaxLifetime        = 2 * time.Hour
	DefaultMaxFrameBytes      = 32 << 10
	DefaultMaxMessageBytes    = 128 << 10
	DefaultIntegrationTimeout = 29 * time.Second
	DefaultSendQueue          = 1024
	DefaultSendQueueBytes     = 4 << 20
	DefaultWriteTimeout       = time.Minute
	DefaultMaxInvocations     = 1000 // AWS's default account concurrency
	DefaultManagementTimeout  = 10 * time.Second
	DefaultRouteSelection     = "$request.body.action"
	DefaultAccountID          = "000000000000"
)

// Invoker runs the functions that routes name.
type Invoker interface {
	// Invoke runs function with an event payload and returns its response
	// payload. An error means the invocation failed: the function returned
	// an error, panicked, timed out or could not run.
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Route is a route of the WebSocket API: its key ($connect, $disconnect,
// $default or a value of the route selection expression), the function its
// integration invokes, whether it has a route response (only then is the
// function's response body sent back to the client), and, for $connect
// only, a Lambda REQUEST authorizer that decides each handshake before the
// function runs (see docs/AUTHORIZERS.md).
type Route struct {
	Key           string
	Function      string
	RouteResponse bool
	Authorizer    *Authorizer
}

// Config describes a gateway. Zero fields mean their documented defaults.
type Config struct {
	// Addr is where to listen when Listener is nil; default 127.0.0.1:3001.
	Addr string
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	// Stage is the stage name, the first segment of every path; default dev.
	Stage string
	// APIID is the API id reported in events; default "local".
	APIID string
	// Region is reported in ARNs and ids; default us-east-1.
	Region string
	// AccountID is the account in the authorizer's methodArn; default
	// 000000000000.
	AccountID string
	// StageVariables are the stage's variables: sent in every event as
	// stageVariables (the authorizer's event carries {} when there are
	// none), and looked up by stageVariables.NAME identity sources.
	StageVariables map[string]string
	// RouteSelectionExpression picks a route for each message; default
	// $request.body.action.
	RouteSelectionExpression string
	// Routes are the API's routes.
	Routes []Route
	// Invoker runs the routes' functions; required.
	Invoker Invoker
	// IdleTimeout closes a connection with no traffic; default 10 min.
	IdleTimeout time.Duration
	// MaxLifetime closes every connection at this age; default 2 h.
	MaxLifetime time.Duration
	// MaxFrameBytes is the largest frame a client may send (larger ones
	// close the connection with 1009); default 32 KiB.
	MaxFrameBytes int
	// MaxMessageBytes is the largest message, in one frame or many, a
	// client may send, and the largest PostToConnection body; default 128 KiB.
	MaxMessageBytes int
	// IntegrationTimeout bounds each invocation; default 29 s.
	IntegrationTimeout time.Duration
	// SendQueue and SendQueueBytes bound what waits for a slow client, in
	// frames and in bytes, before PostToConnection answers 429
	// LimitExceededException; default 1024 frames and 4 MiB.
	SendQueue      int
	SendQueueBytes int
	// WriteTimeout is how long a client may leave a frame unread before
	// the gateway gives up on it (its $disconnect says 1006); default 1 min.
	// A client whose queue is full when a route response comes is dropped
	// at once.
	WriteTimeout time.Duration
	// ManagementTimeout bounds the reading of one @connections request,
	// head and body, and the idle time of a kept-alive connection to the
	// management API; default 10 s.
	ManagementTimeout time.Duration
	// MaxInvocations bounds the invocations running at once, across all
	// connections; a connection's messages wait for a slot. Default 1000.
	MaxInvocations int
	// Logger receives one line per connection event and invocation;
	// default slog.Default().
	Logger *slog.Logger
	// Verbose adds message and response bodies and events to the log, and
	// logs every management API call.
	Verbose bool
	// ManagementThrottle, if set, makes the @connections API answer as
	// AWS's does under load: with a latency, and 429 beyond a rate (AWS's
	// account quota is 10,000 calls per second). Default nil: at once,
	// without limit.
	ManagementThrottle *Throttle
	// APIs are other HTTP APIs served on the gateway's port beside the
	// management API, by path prefix: the local Lambda Invoke API
	// (/2015-03-31/functions/), for one. ManagementTransport reaches them
	// too.
	APIs map[string]http.Handler
	// Redact is applied to every body and response the verbose log holds
	// (the authorizer's response too); events, the authorizer's included,
	// are logged with their body through it and the values of headers,
	// query parameters, stage variables and authorizer context keys that
	// carry credentials (Authorization, Cookie, X-Api-Key,
	// Sec-WebSocket-Protocol, names with token, secret, key...) replaced.
	// Default RedactSecrets.
	Redact func(string) string
	// Observer, if set, is told of every connection, message, frame sent,
	// management DELETE and failed invocation (see Observer). Default nil:
	// nothing is reported, at no cost.
	Observer Observer
	// Home, if set, serves requests for exactly "/" on the gateway's port
	// (a page for people, such as the local inspector). Default nil: "/"
	// is refused with 403 Forbidden, as every path outside the stage.
	Home http.Handler
}

func (c *Config) setDefaults() error {
	if c.Invoker == nil {
		return errors.New("localgw: an Invoker is required")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Stage == "" {
		c.Stage = DefaultStage
	}
	if strings.ContainsAny(c.Stage, "/ ") {
		return fmt.Errorf("localgw: stage %q must not contain / or spaces", c.Stage)
	}
	if err := c.checkReserved(); err != nil {
		return err
	}
	if c.APIID == "" {
		c.APIID = "local"
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.StageVariables != nil {
		c.StageVariables = maps.Clone(c.StageVariables)
	}
	if c.RouteSelectionExpression == "" {
		c.RouteSelectionExpression = DefaultRouteSelection
	}
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.MaxLifetime, DefaultMaxLifetime)
	defDur(&c.IntegrationTimeout, DefaultIntegrationTimeout)
	def(&c.MaxFrameBytes, DefaultMaxFrameBytes)
	def(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&c.SendQueue, DefaultSendQueue)
	def(&c.SendQueueBytes, DefaultSendQueueBytes)
	def(&c.MaxInvocations, DefaultMaxInvocations)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.ManagementTimeout, DefaultManagementTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Redact == nil {
		c.Redact = RedactSecrets
	}
	return nil
}

// Gateway is a running emulation of one stage of a WebSocket API.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	selector selector
	routes   map[string]Route
	// customRoutes: some route is neither $connect, $disconnect nor $default.
	customRoutes bool
	auth         *authorizer // $connect's, if it has one
	stats        stats
	mgmt         *http.Server
	mgmtLn       *chanListener

	mu      sync.RWMutex
	conns   map[string]*conn      // connecting and open connections
	pending map[net.Conn]struct{} // TCP connections whose first request is not read yet
	closing bool

	ctx        context.Context // invocations; cancelled once Close has drained them
	cancel     context.CancelFunc
	hsCtx      context.Context // $connect invocations; cancelled as Close starts
	hsCancel   context.CancelFunc
	slots      chan struct{}  // one per running MESSAGE invocation
	handshakes sync.WaitGroup // registered connections whose handshake is under way
	sessions   sync.WaitGroup // open connections and their $disconnect
	writers    sync.WaitGroup // connections' writers: the close frame and the linger after it
	closeOnce  sync.Once
	done       chan struct{}
}

// New returns a gateway listening on cfg.Addr (or cfg.Listener). It serves
// nothing until Run. It fails on a configuration API Gateway would refuse
// (an authorizer on a route other than $connect, an identity source it
// cannot parse) and when it cannot listen.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	sel, err := parseSelector(cfg.RouteSelectionExpression)
	if err != nil {
		return nil, err
	}
	auth, err := checkAuthorizers(cfg.Routes)
	if err != nil {
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("localgw: listen: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	hsCtx, hsCancel := context.WithCancel(ctx)
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger,
		ln:       ln,
		selector: sel,
		routes:   make(map[string]Route),
		conns:    make(map[string]*conn),
		pending:  make(map[net.Conn]struct{}),
		ctx:      ctx,
		cancel:   cancel,
		hsCtx:    hsCtx,
		hsCancel: hsCancel,
		slots:    make(chan struct{}, cfg.MaxInvocations),
		done:     make(chan struct{}),
		mgmtLn:   newChanListener(ln.Addr()),
	}
	for _, r := range cfg.Routes {
		g.routes[r.Key] = r
		g.customRoutes = g.customRoutes || !strings.HasPrefix(r.Key, "$")
	}
	g.auth = auth
	g.stats.invocations = make(map[string]int64)
	g.mgmt = &http.Server{
		Handler: g.apiHandler(),
		// A request must arrive whole in time: a client that sends a head
		// and stops short of its body is not served for ever.
		ReadHeaderTimeout: cfg.ManagementTimeout,
		ReadTimeout:       cfg.ManagementTimeout,
		IdleTimeout:       cfg.ManagementTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// Stats are a gateway's counters since New.
type Stats struct {
	// Invocations counts, by function name, the invocations the gateway
	// started: of routes' functions and of the $connect authorizer,
	// whatever their outcome.
	Invocations map[string]int64
	// Authorized counts the handshakes the $connect authorizer allowed;
	// $connect ran next.
	Authorized int64
	// Unauthorized401 counts the handshakes refused with 401: an identity
	// source was missing or empty (the authorizer was not invoked), or the
	// authorizer failed with the error message "Unauthorized".
	Unauthorized401 int64
	// Forbidden403 counts the handshakes refused with 403: the authorizer's
	// policy denied execute-api:Invoke on the $connect method ARN, or did
	// not allow it.
	Forbidden403 int64
	// Failed500 counts the handshakes refused with 500: the authorizer
	// failed with another error or timed out, or answered with a malformed
	// response.
	Failed500 int64
}

// stats are the counters behind Stats.
type stats struct {
	mu          sync.Mutex
	invocations map[string]int64

	authorized, unauthorized, forbidden, failed atomic.Int64
}

// Stats returns the gateway's counters. It is safe for concurrent use.
func (g *Gateway) Stats() Stats {
	g.stats.mu.Lock()
	inv := maps.Clone(g.stats.invocations)
	g.stats.mu.Unlock()
	return Stats{
		Invocations:     inv,
		Authorized:      g.stats.authorized.Load(),
		Unauthorized401: g.stats.unauthorized.Load(),
		Forbidden403:    g.stats.forbidden.Load(),
		Failed500:       g.stats.failed.Load(),
	}
}

// countHandshake counts an authorizer's verdict on a handshake.
func (s *stats) countHandshake(status int) {
	switch status {
	case http.StatusOK:
		s.authorized.Add(1)
	case http.StatusUnauthorized:
		s.unauthorized.Add(1)
	case http.StatusForbidden:
		s.forbidden.Add(1)
	default:
		s.failed.Add(1)
	}
}

// call invokes function with payload under the integration timeout, and
// counts the invocation.
func (g *Gateway) call(parent context.Context, function string, payload []byte) ([]byte, error) {
	g.stats.mu.Lock()
	g.stats.invocations[function]++
	g.stats.mu.Unlock()
	ctx, cancel := context.WithTimeout(parent, g.cfg.IntegrationTimeout)
	defer cancel()
	return g.cfg.Invoker.Invoke(ctx, function, payload)
}

// Addr returns the address the gateway listens on.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// URL returns the WebSocket URL clients connect to: ws://ADDR/STAGE.
func (g *Gateway) URL() string { return "ws://" + g.Addr() + "/" + g.cfg.Stage }

// ManagementEndpoint returns the @connections API endpoint with its stage,
// as the AWS SDK's BaseEndpoint wants it: http://ADDR/STAGE.
func (g *Gateway) ManagementEndpoint() string { return "http://" + g.Addr() + "/" + g.cfg.Stage }

// Run serves until ctx is done or Close is called, then closes every
// connection as API Gateway does when it goes away (1001), waits for their
// $disconnect invocations and returns. It returns nil after a clean stop.
func (g *Gateway) Run(ctx context.Context) error {
	go g.mgmt.Serve(g.mgmtLn)
	go g.accept()
	select {
	case <-ctx.Done():
	case <-g.ctx.Done(): // Close was called
	}
	return g.Close()
}

// Close stops the gateway: it refuses new WebSocket handshakes, cancels the
// $connect invocations under way, closes every connection with 1001 Going
// away, waits (up to the integration timeout) for their $disconnect and for
// the invocations running, then stops listening. The management API keeps
// answering until then, so that functions can still reach it. It is
// idempotent.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closing = true
		g.mu.Unlock()
		g.observe(Observation{Kind: ObservedShutdown})
		g.hsCancel()
		g.handshakes.Wait() // handshakes under way finish: connected or refused
		g.mu.RLock()
		conns := make([]*conn, 0, len(g.conns))
		for _, c := range g.conns {
			conns = append(conns, c)
		}
		g.mu.RUnlock()
		for _, c := range conns {
			c.shutdown(closeGoingAway, "Going away", 1001, "Going away")
		}
		drained := make(chan struct{})
		go func() {
			g.sessions.Wait()
			for range cap(g.slots) { // every invocation slot free: none running
				g.slots <- struct{}{}
			}
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(g.cfg.IntegrationTimeout):
			g.log.Warn("gave up waiting for $disconnect and running invocations")
		}
		// Every close frame written and its linger over before the process
		// may exit: exiting with a client's bytes unread resets the TCP
		// connection, and the client loses the close frame (1006).
		written := make(chan struct{})
		go func() { g.writers.Wait(); close(written) }()
		select {
		case <-written:
		case <-time.After(lingerTime + 2*time.Second):
			g.log.Warn("gave up waiting for clients to take their close frames")
			for _, c := range conns {
				c.nc.Close() // unblocks a writer stuck on a client that does not read
			}
		}
		g.cancel()
		g.ln.Close()
		g.mu.Lock()
		for nc := range g.pending {
			nc.Close()
		}
		g.mu.Unlock()
		g.mgmtLn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.mgmt.Shutdown(ctx)
		close(g.done)
	})
	<-g.done
	return nil
}

// startInvocation takes a slot for a MESSAGE invocation, waiting while
// MaxInvocations are running; false if quit closes first.
func (g *Gateway) startInvocation(quit <-chan struct{}) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	case <-quit:
		return false
	}
}

func (g *Gateway) endInvocation() { <-g.slots }

// accept takes TCP connections and sorts them: requests for the management
// API go to the HTTP server, anything else is a WebSocket handshake.
// Errors other than the listener closing are retried with a backoff, as
// net/http does (running out of file descriptors is one).
func (g *Gateway) accept() {
	var delay time.Duration
	for {
		nc, err := g.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) { // Close
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("accept failed; retrying", "err", err, "in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		g.mu.Lock()
		g.pending[nc] = struct{}{}
		g.mu.Unlock()
		go g.sort(nc)
	}
}

// sort reads the first request of a TCP connection and hands it on.
func (g *Gateway) sort(nc net.Conn) {
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(nc, 8<<10)
	req, raw, err := readRequestHead(br)
	g.mu.Lock()
	delete(g.pending, nc)
	g.mu.Unlock()
	if err != nil {
		// An HTTP client may open a connection it ends up not using: a
		// timeout or EOF before any request closes it without a word.
		var ne net.Error
		switch {
		case errors.Is(err, errHeadTooLarge):
			writeHTTPError(nc, http.StatusRequestHeaderFieldsTooLarge, `{"message":"Request Header Fields Too Large"}`, nil)
		case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()):
			writeHTTPError(nc, http.StatusBadRequest, `{"message":"Bad Request"}`, nil)
		}
		nc.Close()
		return
	}
	if strings.Contains(req.path, "/@connections") || g.otherAPI(req.path) != nil || // any stage's: the API answers ForbiddenException for others
		(req.path == "/" && g.cfg.Home != nil) {

		nc.SetReadDeadline(time.Time{})
		if !g.mgmtLn.deliver(&replayConn{Conn: nc, r: io.MultiReader(strings.NewReader(raw), br)}) {
			nc.Close()
		}
		return
	}
	g.handshake(nc, br, req)
}
