package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Close codes the gateway sends.
const (
	closeNormal        ws.StatusCode = 1000
	closeGoingAway     ws.StatusCode = 1001
	closeProtocolError ws.StatusCode = 1002
	closeUnsupported   ws.StatusCode = 1003
	closeNoStatus                    = 1005 // reported in $disconnect, never sent
	closeAbnormal                    = 1006 // reported in $disconnect, never sent
	closeInvalidData   ws.StatusCode = 1007
	closeTooBig        ws.StatusCode = 1009
)

// Connection states.
const (
	stateConnecting int32 = iota // $connect has not returned: posts are 410
	stateOpen
	stateClosed
)

var (
	errGone = errors.New("connection is gone")
	errBusy = errors.New("connection's send queue is full")
)

// frame is one message or control frame waiting to be written.
type frame struct {
	op      ws.OpCode
	payload []byte
}

// conn is one client connection.
type conn struct {
	g  *Gateway
	id string
	nc net.Conn
	br *bufio.Reader

	connectedAt time.Time
	sourceIP    string
	userAgent   string
	domainName  string
	localAddr   string
	// authorizer is requestContext.authorizer of every event after the
	// $connect authorizer allowed the connection: principalId and the
	// authorizer's context. Set before the connection opens; read-only after.
	authorizer map[string]any

	lastActive   atomic.Int64 // unix nanoseconds of the last frame in or out (the idle timer)
	lastReceived atomic.Int64 // unix nanoseconds of the last frame from the client (lastActiveAt)
	queued       atomic.Int64 // bytes waiting in out
	out          chan frame
	quit         chan struct{} // closed by shutdown
	readerDone   chan struct{} // closed when the reader returns
	watchdog     *time.Timer   // closes the connection when idle or too old

	// mu orders "is it open? then queue" in send against shutdown, so that
	// a post answered 200 is in the queue that the writer drains.
	mu    sync.Mutex
	state atomic.Int32 // written under mu
	once  sync.Once
	// Set by shutdown before quit is closed; read by the writer after.
	closeCode   ws.StatusCode // 0: no close frame, just drop the TCP connection
	closeReason string
}

func (g *Gateway) newConn(nc net.Conn, br *bufio.Reader, req *request) *conn {
	now := time.Now()
	ip, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	c := &conn{
		g:           g,
		id:          newID(),
		nc:          nc,
		br:          br,
		connectedAt: now,
		sourceIP:    ip,
		userAgent:   req.get("User-Agent"),
		domainName:  req.get("Host"),
		localAddr:   nc.LocalAddr().String(),
		out:         make(chan frame, g.cfg.SendQueue),
		quit:        make(chan struct{}),
		readerDone:  make(chan struct{}),
	}
	if c.domainName == "" {
		c.domainName = nc.LocalAddr().String()
	}
	c.lastActive.Store(now.UnixNano())
	c.lastReceived.Store(now.UnixNano())
	c.watchdog = time.AfterFunc(time.Hour, c.watch)
	c.watchdog.Stop() // serve starts it
	return c
}

// register adds a connecting connection and counts its handshake; false
// once the gateway is closing.
func (g *Gateway) register(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.handshakes.Add(1)
	g.conns[c.id] = c
	return true
}

func (g *Gateway) unregister(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns[c.id] == c {
		delete(g.conns, c.id)
	}
}

// lookup returns an open connection.
func (g *Gateway) lookup(id string) (*conn, bool) {
	g.mu.RLock()
	c, ok := g.conns[id]
	g.mu.RUnlock()
	if !ok || c.state.Load() != stateOpen {
		return nil, false
	}
	return c, true
}

// markOpen makes a connection whose $connect succeeded usable.
func (c *conn) markOpen() {
	c.g.sessions.Add(1)
	c.mu.Lock()
	c.state.Store(stateOpen)
	c.mu.Unlock()
}

// serve starts writing queued frames, reading the client's, and watching
// for idleness and age.
func (c *conn) serve() {
	c.nc.SetDeadline(time.Time{})
	c.watchdog.Reset(time.Until(c.deadline()))
	c.g.writers.Add(1)
	go c.writer()
	go c.reader()
}

// received records a frame from the client: activity for the idle timer,
// and GetConnection's lastActiveAt.
func (c *conn) received() {
	now := time.Now().UnixNano()
	c.lastActive.Store(now)
	c.lastReceived.Store(now)
}

// deadline is when the connection closes for idleness or age, unless a
// frame comes or goes before.
func (c *conn) deadline() time.Time {
	idle := time.Unix(0, c.lastActive.Load()).Add(c.g.cfg.IdleTimeout)
	return earliest(idle, c.connectedAt.Add(c.g.cfg.MaxLifetime))
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// watch closes the connection with 1001 once it is idle or too old, and
// otherwise waits for the next deadline: frames in either direction count
// as activity.
func (c *conn) watch() {
	now := time.Now()
	if d := c.deadline(); now.Before(d) {
		c.watchdog.Reset(d.Sub(now))
		return
	}
	limit := "IDLE"
	if !now.Before(c.connectedAt.Add(c.g.cfg.MaxLifetime)) {
		limit = "LIFETIME"
	}
	c.g.log.Info(limit, "conn", c.id)
	c.shutdown(closeGoingAway, "Going away", int(closeGoingAway), "Going away")
}

// send queues a message for the client without waiting: errGone if the
// connection is not open, errBusy if the client is not reading fast enough
// (its queue is full, in frames or in bytes).
func (c *conn) send(op ws.OpCode, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() != stateOpen {
		return errGone
	}
	n := int64(len(payload))
	if q := c.queued.Load(); q > 0 && q+n > int64(c.g.cfg.SendQueueBytes) {
		return errBusy
	}
	c.queued.Add(n)
	select {
	case c.out <- frame{op, payload}:
		return nil
	default:
		c.queued.Add(-n)
		return errBusy
	}
}

// reply queues a frame the gateway itself sends (a route response, an
// error), and reports it to the observer as sent via via. It never waits:
// when the client has left its queue full (it is not reading), the gateway
// drops the client, as it drops one that leaves a frame unread for
// WriteTimeout, so that a client that does not read costs only itself and
// never holds an invocation slot.
func (c *conn) reply(payload []byte, via string) {
	err := c.send(ws.OpText, payload)
	if errors.Is(err, errBusy) {
		c.g.log.Info("SLOW", "conn", c.id, "queued", len(c.out), "bytes", c.queued.Load())
		c.shutdown(0, "", closeAbnormal, "")
	}
	c.g.observe(Observation{Kind: ObservedSend, ConnectionID: c.id, Via: via, Body: payload, Size: len(payload), Status: sendStatus(err)})
}

// gatewayMessage is the JSON API Gateway sends for its own errors
// ("Forbidden", "Internal server error").
func gatewayMessage(message, connID, requestID string) []byte {
	b, _ := json.Marshal(struct {
		Message      string `json:"message"`
		ConnectionID string `json:"connectionId"`
		RequestID    string `json:"requestId"`
	}{message, connID, requestID})
	return b
}

// lingerTime bounds the wait for the client's close after the gateway's.
const lingerTime = 2 * time.Second

// writer writes queued frames in order, batching what is queued into one
// flush. On shutdown it writes what is still queued, then the close frame,
// and lingers for the client's close so that the close frame is not lost
// to a reset.
func (c *conn) writer() {
	defer c.g.writers.Done()
	bw := bufio.NewWriterSize(c.nc, 32<<10)
	timeout := c.g.cfg.WriteTimeout
	var deadline time.Time // the write deadline in force
	write := func(f frame) error {
		// Every frame has at least WriteTimeout to be written. The
		// deadline is pushed back, by WriteTimeout and a 64th, only once
		// less than WriteTimeout is left: not on every frame, which would
		// reset the connection's timer for each.
		now := time.Now()
		if deadline.Sub(now) < timeout {
			deadline = now.Add(timeout + timeout/64)
			c.nc.SetWriteDeadline(deadline)
		}
		c.queued.Add(-int64(len(f.payload)))
		if f.op == ws.OpText {
			c.lastActive.Store(now.UnixNano()) // a frame out is activity
			return writeMessage(bw, f.payload, c.g.cfg.MaxFrameBytes)
		}
		return writeFrame(bw, true, f.op, f.payload)
	}
	for {
		select {
		case f := <-c.out:
			err := write(f)
			for err == nil && len(c.out) > 0 {
				err = write(<-c.out)
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				c.shutdown(0, "", closeAbnormal, "")
				c.nc.Close()
				return
			}
		case <-c.quit:
			if c.closeCode == 0 {
				c.nc.Close()
				return
			}
			for drained := false; !drained; {
				select {
				case f := <-c.out:
					drained = write(f) != nil
				default:
					drained = true
				}
			}
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			writeFrame(bw, true, ws.OpClose, ws.NewCloseFrameBody(c.closeCode, c.closeReason))
			if bw.Flush() == nil {
				if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
					tc.CloseWrite()
				}
				select {
				case <-c.readerDone:
				case <-time.After(lingerTime):
				}
			}
			c.nc.Close()
			return
		}
	}
}

// writeMessage writes a text message in frames of at most maxFrame bytes,
// as API Gateway does.
func writeMessage(w *bufio.Writer, p []byte, maxFrame int) error {
	op := ws.OpText
	for {
		n := min(len(p), maxFrame)
		fin := n == len(p)
		if err := writeFrame(w, fin, op, p[:n]); err != nil {
			return err
		}
		if fin {
			return nil
		}
		p, op = p[n:], ws.OpContinuation
	}
}

// writeFrame writes one unmasked frame, as a server sends it: the header
// that ws.WriteHeader would write, built on the stack rather than in a
// buffer allocated for each frame, then the payload.
func writeFrame(w *bufio.Writer, fin bool, op ws.OpCode, payload []byte) error {
	var h [10]byte
	h[0] = byte(op)
	if fin {
		h[0] |= 0x80
	}
	n := 2
	switch l := len(payload); {
	case l < 126:
		h[1] = byte(l)
	case l <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:4], uint16(l))
		n = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:10], uint64(l))
		n = 10
	}
	if _, err := w.Write(h[:n]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// validCloseCode reports whether a client may send code in a close frame.
func validCloseCode(code ws.StatusCode) bool {
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

// reader reads the client's frames, enforces API Gateway's limits, answers
// pings and hands each complete text message to the routes. After the
// connection is shut down it only drains what the client still sends.
func (c *conn) reader() {
	defer close(c.readerDone)
	cfg := &c.g.cfg
	var msg []byte
	inMessage := false
	fail := func(code ws.StatusCode, reason string) {
		c.shutdown(code, reason, int(code), reason)
	}
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.readFailed(err)
			return
		}
		closed := c.state.Load() == stateClosed
		if !closed {
			c.received()
		}
		switch {
		case closed:
		case !h.Masked:
			fail(closeProtocolError, "Client frames must be masked")
		case h.Rsv != 0:
			fail(closeProtocolError, "Reserved bits set")
		case h.OpCode.IsControl() && (h.Length > 125 || !h.Fin):
			fail(closeProtocolError, "Malformed control frame")
		case h.Length > int64(cfg.MaxFrameBytes):
			fail(closeTooBig, "Message too big")
		}
		if c.state.Load() == stateClosed {
			// Drain what the client sends until its close frame or EOF.
			if h.OpCode == ws.OpClose || h.Length > int64(cfg.MaxFrameBytes) {
				return
			}
			if _, err := io.CopyN(io.Discard, c.br, h.Length); err != nil {
				return
			}
			continue
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			c.readFailed(err)
			return
		}
		ws.Cipher(payload, h.Mask, 0)

		switch h.OpCode {
		case ws.OpPing:
			c.send(ws.OpPong, payload)
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			switch {
			case len(payload) == 1:
				// A close body holds a 2-byte code or nothing (RFC 6455 §5.5.1).
				fail(closeProtocolError, "Invalid close frame")
			case code.Empty():
				c.shutdown(closeNormal, "", closeNoStatus, "")
			case !validCloseCode(code) || !utf8.ValidString(reason):
				fail(closeProtocolError, "Invalid close frame")
			default:
				c.shutdown(code, "", int(code), reason)
			}
			return
		case ws.OpBinary:
			fail(closeUnsupported, "Binary frames are not supported")
			continue
		case ws.OpText:
			if inMessage {
				fail(closeProtocolError, "Expected a continuation frame")
				continue
			}
			msg, inMessage = payload, true
		case ws.OpContinuation:
			if !inMessage {
				fail(closeProtocolError, "Unexpected continuation frame")
				continue
			}
			msg = append(msg, payload...)
		default:
			fail(closeProtocolError, "Unknown opcode")
			continue
		}
		if len(msg) > cfg.MaxMessageBytes {
			fail(closeTooBig, "Message too big")
			continue
		}
		if !h.Fin {
			continue
		}
		inMessage = false
		if !utf8.Valid(msg) {
			fail(closeInvalidData, "Invalid UTF-8 in text frame")
			continue
		}
		if !c.g.startInvocation(c.quit) {
			continue
		}
		go func(msg []byte) {
			defer c.g.endInvocation()
			c.g.handleMessage(c, msg, false)
		}(msg)
		msg = nil
	}
}

// readFailed ends a connection whose read failed: a malformed frame header
// is a protocol error (1002); anything else means the client vanished (1006).
func (c *conn) readFailed(err error) {
	if c.state.Load() == stateClosed {
		return
	}
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
		c.shutdown(0, "", closeAbnormal, "")
		return
	}
	c.shutdown(closeProtocolError, "Malformed frame", int(closeProtocolError), "Malformed frame")
}

// shutdown ends the connection once: it stops posts (410 from now on), has
// the writer send what is queued and then a close frame with sendCode (none
// if 0), and invokes $disconnect with discCode and discReason.
func (c *conn) shutdown(sendCode ws.StatusCode, sendReason string, discCode int, discReason string) {
	c.once.Do(func() {
		c.mu.Lock()
		prev := c.state.Swap(stateClosed)
		c.closeCode, c.closeReason = sendCode, sendReason
		close(c.quit)
		c.mu.Unlock()
		c.g.unregister(c)
		c.watchdog.Stop()
		if prev != stateOpen {
			c.nc.Close()
			return
		}
		c.g.observe(Observation{Kind: ObservedClose, ConnectionID: c.id, Code: discCode, Reason: discReason})
		go func() {
			defer c.g.sessions.Done()
			c.g.disconnect(c, discCode, discReason)
		}()
	})
}

// handleMessage routes one message and invokes its function; the function's
// response body goes back to the client when the route has a route response.
// injected says that Inject handed it in.
func (g *Gateway) handleMessage(c *conn, msg []byte, injected bool) {
	route, ok := g.route(msg)
	g.observe(Observation{Kind: ObservedMessage, ConnectionID: c.id, Route: route.Key, Function: route.Function,
		Injected: injected, Body: msg, Size: len(msg)})
	ev := g.messageEvent(c, route.Key, msg)
	if !ok {
		g.log.Info("MESSAGE", "conn", c.id, "route", "(none)", "status", 403)
		c.reply(gatewayMessage("Forbidden", c.id, ev.RequestContext.RequestID), ViaGateway)
		return
	}
	start := time.Now()
	resp, err := g.invoke(g.ctx, c, route, &ev, "MESSAGE")
	attrs := []any{"conn", c.id, "route", route.Key, "function", route.Function, "status", resp.StatusCode, "duration", ms(time.Since(start))}
	if g.cfg.Verbose {
		attrs = append(attrs, "body", g.cfg.Redact(string(msg)), "response", g.cfg.Redact(resp.Body))
	}
	if err != nil {
		g.log.Info("MESSAGE", append(attrs, errAttr(err))...)
		g.observe(Observation{Kind: ObservedInvokeError, ConnectionID: c.id, Route: route.Key, Function: route.Function, Err: err})
		text := "Internal server error"
		if errors.Is(err, context.DeadlineExceeded) {
			text = "Endpoint request timed out"
		}
		c.reply(gatewayMessage(text, c.id, ev.RequestContext.RequestID), ViaGateway)
		return
	}
	g.log.Info("MESSAGE", attrs...)
	if route.RouteResponse && resp.Body != "" {
		c.reply([]byte(resp.Body), ViaRouteResponse)
	}
}

// disconnect invokes $disconnect, if there is such a route.
func (g *Gateway) disconnect(c *conn, code int, reason string) {
	route, ok := g.routes["$disconnect"]
	if !ok {
		g.log.Info("DISCONNECT", "conn", c.id, "code", code, "reason", reason)
		return
	}
	ev := g.disconnectEvent(c, code, reason)
	start := time.Now()
	resp, err := g.invoke(g.ctx, c, route, &ev, "DISCONNECT")
	if err != nil {
		g.observe(Observation{Kind: ObservedInvokeError, ConnectionID: c.id, Route: route.Key, Function: route.Function, Err: err})
	}
	g.log.Info("DISCONNECT", "conn", c.id, "code", code, "reason", reason, "function", route.Function,
		"status", resp.StatusCode, "duration", ms(time.Since(start)), errAttr(err))
}

// errAttr logs an error, or nothing when err is nil.
func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("err", err.Error())
}
