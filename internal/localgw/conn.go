package localgw

import (
	"bufio"
	"context"
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

	state      atomic.Int32
	lastActive atomic.Int64 // unix nanoseconds of the last frame in or out
	out        chan frame
	quit       chan struct{}
	once       sync.Once
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
	}
	if c.domainName == "" {
		c.domainName = nc.LocalAddr().String()
	}
	c.lastActive.Store(now.UnixNano())
	return c
}

// register adds a connecting connection; false once the gateway is closing.
func (g *Gateway) register(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
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
	c.state.Store(stateOpen)
}

// serve starts writing queued frames and reading the client's.
func (c *conn) serve() {
	c.nc.SetDeadline(time.Time{})
	go c.writer()
	go c.reader()
}

func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// send queues a message for the client without waiting: errGone if the
// connection is not open, errBusy if the client is not reading fast enough.
func (c *conn) send(op ws.OpCode, payload []byte) error {
	if c.state.Load() != stateOpen {
		return errGone
	}
	select {
	case <-c.quit:
		return errGone
	default:
	}
	select {
	case c.out <- frame{op, payload}:
		return nil
	default:
		return errBusy
	}
}

// reply queues a frame the gateway itself sends (a route response, an
// error), waiting for room rather than dropping it.
func (c *conn) reply(payload []byte) {
	if c.state.Load() != stateOpen {
		return
	}
	select {
	case c.out <- frame{ws.OpText, payload}:
	case <-c.quit:
	}
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

const writeTimeout = 10 * time.Second

// writer writes queued frames in order, batching what is queued into one
// flush. On shutdown it writes what is still queued, then the close frame.
func (c *conn) writer() {
	bw := bufio.NewWriterSize(c.nc, 32<<10)
	write := func(f frame) error {
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if f.op == ws.OpText {
			c.touch()
			return writeMessage(bw, f.payload, c.g.cfg.MaxFrameBytes)
		}
		if err := ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: f.op, Length: int64(len(f.payload))}); err != nil {
			return err
		}
		_, err := bw.Write(f.payload)
		return err
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
			if c.closeCode != 0 {
				for drained := false; !drained; {
					select {
					case f := <-c.out:
						if write(f) != nil {
							drained = true
						}
					default:
						drained = true
					}
				}
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				ws.WriteFrame(bw, ws.NewCloseFrame(ws.NewCloseFrameBody(c.closeCode, c.closeReason)))
				bw.Flush()
			}
			c.nc.Close()
			return
		}
	}
}

// writeMessage writes a text message in frames of at most maxFrame bytes,
// as API Gateway does.
func writeMessage(w io.Writer, p []byte, maxFrame int) error {
	op := ws.OpText
	for {
		n := min(len(p), maxFrame)
		fin := n == len(p)
		if err := ws.WriteHeader(w, ws.Header{Fin: fin, OpCode: op, Length: int64(n)}); err != nil {
			return err
		}
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		if fin {
			return nil
		}
		p, op = p[n:], ws.OpContinuation
	}
}

// reader reads the client's frames, enforces API Gateway's limits, answers
// pings and hands each complete text message to the routes.
func (c *conn) reader() {
	cfg := &c.g.cfg
	var msg []byte
	inMessage := false
	fail := func(code ws.StatusCode, reason string) {
		c.shutdown(code, reason, int(code), reason)
	}
	for {
		c.nc.SetReadDeadline(c.readDeadline())
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.readFailed(err)
			return
		}
		c.touch()
		switch {
		case !h.Masked:
			fail(closeProtocolError, "Client frames must be masked")
			return
		case h.Rsv != 0:
			fail(closeProtocolError, "Reserved bits set")
			return
		case h.OpCode.IsControl() && (h.Length > 125 || !h.Fin):
			fail(closeProtocolError, "Malformed control frame")
			return
		case h.Length > int64(cfg.MaxFrameBytes):
			fail(closeTooBig, "Message too big")
			return
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
			if code.Empty() {
				c.shutdown(closeNormal, "", closeNoStatus, "")
			} else {
				c.shutdown(code, "", int(code), reason)
			}
			return
		case ws.OpBinary:
			fail(closeUnsupported, "Binary frames are not supported")
			return
		case ws.OpText:
			if inMessage {
				fail(closeProtocolError, "Expected a continuation frame")
				return
			}
			msg, inMessage = payload, true
		case ws.OpContinuation:
			if !inMessage {
				fail(closeProtocolError, "Unexpected continuation frame")
				return
			}
			msg = append(msg, payload...)
		default:
			fail(closeProtocolError, "Unknown opcode")
			return
		}
		if len(msg) > cfg.MaxMessageBytes {
			fail(closeTooBig, "Message too big")
			return
		}
		if !h.Fin {
			continue
		}
		inMessage = false
		if !utf8.Valid(msg) {
			fail(closeInvalidData, "Invalid UTF-8 in text frame")
			return
		}
		go c.g.handleMessage(c, msg)
		msg = nil
	}
}

// readDeadline is when the connection is closed for idleness or age.
func (c *conn) readDeadline() time.Time {
	idle := time.Unix(0, c.lastActive.Load()).Add(c.g.cfg.IdleTimeout)
	life := c.connectedAt.Add(c.g.cfg.MaxLifetime)
	if life.Before(idle) {
		return life
	}
	return idle
}

// readFailed ends a connection whose read failed: a deadline means idle or
// too old (1001), anything else that the client vanished (1006).
func (c *conn) readFailed(err error) {
	if c.state.Load() == stateClosed {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		reason := "Going away"
		if !time.Now().Before(c.connectedAt.Add(c.g.cfg.MaxLifetime)) {
			c.g.log.Info("LIFETIME", "conn", c.id, "after", c.g.cfg.MaxLifetime.String())
		} else {
			c.g.log.Info("IDLE", "conn", c.id, "after", c.g.cfg.IdleTimeout.String())
		}
		c.shutdown(closeGoingAway, reason, int(closeGoingAway), reason)
		return
	}
	c.shutdown(0, "", closeAbnormal, "")
}

// shutdown ends the connection once: it stops posts (410 from now on), has
// the writer send what is queued and then a close frame with sendCode (none
// if 0), and invokes $disconnect with discCode and discReason.
func (c *conn) shutdown(sendCode ws.StatusCode, sendReason string, discCode int, discReason string) {
	c.once.Do(func() {
		prev := c.state.Swap(stateClosed)
		c.g.unregister(c)
		c.closeCode, c.closeReason = sendCode, sendReason
		close(c.quit)
		if prev != stateOpen {
			c.nc.Close()
			return
		}
		go func() {
			defer c.g.sessions.Done()
			c.g.disconnect(c, discCode, discReason)
		}()
	})
}

// handleMessage routes one message and invokes its function; the function's
// response body goes back to the client when the route has a route response.
func (g *Gateway) handleMessage(c *conn, msg []byte) {
	route, ok := g.route(msg)
	ev := g.messageEvent(c, route.Key, msg)
	if !ok {
		g.log.Info("MESSAGE", "conn", c.id, "route", "(none)", "status", 403)
		c.reply(gatewayMessage("Forbidden", c.id, ev.RequestContext.RequestID))
		return
	}
	start := time.Now()
	resp, err := g.invoke(c, route, &ev, "MESSAGE")
	attrs := []any{"conn", c.id, "route", route.Key, "function", route.Function, "status", resp.StatusCode, "duration", ms(time.Since(start))}
	if g.cfg.Verbose {
		attrs = append(attrs, "body", string(msg), "response", resp.Body)
	}
	if err != nil {
		g.log.Info("MESSAGE", append(attrs, errAttr(err))...)
		text := "Internal server error"
		if errors.Is(err, context.DeadlineExceeded) {
			text = "Endpoint request timed out"
		}
		c.reply(gatewayMessage(text, c.id, ev.RequestContext.RequestID))
		return
	}
	g.log.Info("MESSAGE", attrs...)
	if route.RouteResponse && resp.Body != "" {
		c.reply([]byte(resp.Body))
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
	resp, err := g.invoke(c, route, &ev, "DISCONNECT")
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
