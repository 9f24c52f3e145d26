package gateway

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// header is one request header as the client wrote it.
type header struct{ key, value string }

// request is the head of an HTTP request, headers kept in the client's order
// and casing, as API Gateway passes them to $connect.
type request struct {
	method, target, path, rawQuery string
	headers                        []header
}

// get returns the first value of a header, matched without regard to case.
func (r *request) get(key string) string {
	for _, h := range r.headers {
		if strings.EqualFold(h.key, key) {
			return h.value
		}
	}
	return ""
}

const maxHeadBytes = 16 << 10

var errHeadTooLarge = errors.New("request head too large")

// readRequestHead reads a request line and headers, at most maxHeadBytes in
// all (and one buffer's worth per line); raw is the bytes read.
func readRequestHead(br *bufio.Reader) (*request, string, error) {
	var raw strings.Builder
	line := func() (string, error) {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errHeadTooLarge
		}
		raw.Write(b)
		if err != nil {
			return "", err
		}
		if raw.Len() > maxHeadBytes {
			return "", errHeadTooLarge
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	first, err := line()
	if err != nil {
		return nil, "", err
	}
	parts := strings.Split(first, " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return nil, "", fmt.Errorf("malformed request line %q", first)
	}
	req := &request{method: parts[0], target: parts[1]}
	u, err := url.ParseRequestURI(parts[1])
	if err != nil {
		return nil, "", fmt.Errorf("malformed request target %q", parts[1])
	}
	req.path, req.rawQuery = u.Path, u.RawQuery
	for {
		l, err := line()
		if err != nil {
			return nil, "", err
		}
		if l == "" {
			return req, raw.String(), nil
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, "", fmt.Errorf("malformed header line %q", l)
		}
		req.headers = append(req.headers, header{k, strings.TrimSpace(v)})
	}
}

// writeHTTPError answers a request that will not become a WebSocket.
func writeHTTPError(w io.Writer, status int, body string, extra http.Header) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	for k, vs := range extra {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if body != "" && extra.Get("Content-Type") == "" {
		b.WriteString("Content-Type: application/json\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	io.WriteString(w, b.String())
}

const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// handshake runs $connect's authorizer, if it has one, and $connect for a
// WebSocket upgrade request and, when the authorizer allows it and $connect
// answers 2xx, completes the upgrade. Otherwise the client gets the
// authorizer's refusal (401, 403 or 500, $connect not invoked) or the
// function's status (502 if the function failed), and no $disconnect follows.
func (g *Gateway) handshake(nc net.Conn, br *bufio.Reader, req *request) {
	fail := func(status int, body string) {
		writeHTTPError(nc, status, body, nil)
		nc.Close()
	}
	if req.path != "/"+g.cfg.Stage {
		fail(http.StatusForbidden, `{"message":"Forbidden"}`)
		return
	}
	key := req.get("Sec-WebSocket-Key")
	if req.method != http.MethodGet || !strings.EqualFold(req.get("Upgrade"), "websocket") ||
		!headerHasToken(req.get("Connection"), "upgrade") || key == "" {
		fail(http.StatusUpgradeRequired, `{"message":"Upgrade Required: this is a WebSocket endpoint"}`)
		return
	}
	if v := req.get("Sec-WebSocket-Version"); v != "13" {
		writeHTTPError(nc, http.StatusBadRequest, `{"message":"Unsupported WebSocket version"}`,
			http.Header{"Sec-WebSocket-Version": {"13"}})
		nc.Close()
		return
	}

	c := g.newConn(nc, br, req)
	if !g.register(c) {
		fail(http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`)
		return
	}
	defer g.handshakes.Done()
	var ev *events.APIGatewayWebsocketProxyRequest // the CONNECT event, if there is a $connect route
	if _, ok := g.routes["$connect"]; ok {
		e := g.connectEvent(c, req)
		ev = &e
	}
	if g.auth != nil {
		if status, body := g.authorize(c, ev); status != http.StatusOK {
			g.unregister(c)
			writeHTTPError(nc, status, body, nil)
			nc.Close()
			return
		}
	}
	start := time.Now()
	status, respHeaders, body, err := g.connect(c, ev)
	dur := time.Since(start)
	if err != nil || status < 200 || status > 299 {
		g.unregister(c)
		if err != nil {
			status, body = http.StatusBadGateway, `{"message":"Internal server error"}`
		}
		g.log.Info("CONNECT", "conn", c.id, "function", g.routes["$connect"].Function, "status", status, "duration", ms(dur), "from", c.sourceIP, errAttr(err))
		writeHTTPError(nc, status, body, respHeaders)
		nc.Close()
		return
	}

	sum := sha1.Sum([]byte(key + websocketGUID))
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
	for k, vs := range respHeaders {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	// The observer learns of the connection before any post can reach it.
	g.observe(Observation{Kind: ObservedOpen, ConnectionID: c.id, SourceIP: c.sourceIP, UserAgent: c.userAgent,
		ConnectedAt: c.connectedAt, Authorizer: c.authorizer})
	// Usable from now on: a post queues behind the 101, which goes first.
	c.markOpen()
	g.log.Info("CONNECT", "conn", c.id, "function", g.routes["$connect"].Function, "status", status, "duration", ms(dur), "from", c.sourceIP)
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(nc, b.String())
	c.serve()
	if err != nil {
		c.shutdown(0, "", closeAbnormal, "")
	}
}

// connect invokes the $connect route with its event ev (nil: there is no
// such route) and returns its status, the headers it sets on the handshake
// response, and its body.
func (g *Gateway) connect(c *conn, ev *events.APIGatewayWebsocketProxyRequest) (int, http.Header, string, error) {
	if ev == nil {
		return http.StatusOK, nil, "", nil
	}
	resp, err := g.invoke(g.hsCtx, c, g.routes["$connect"], ev, "CONNECT")
	if err != nil {
		return 0, nil, "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		return 0, nil, "", fmt.Errorf("malformed Lambda proxy response: statusCode %d", resp.StatusCode)
	}
	return resp.StatusCode, responseHeaders(resp), resp.Body, nil
}

// responseHeaders merges a proxy response's headers as API Gateway does:
// for a name in both maps, multiValueHeaders wins. Headers that would break
// the handshake response are dropped.
func responseHeaders(resp events.APIGatewayProxyResponse) http.Header {
	h := http.Header{}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		if _, ok := h[http.CanonicalHeaderKey(k)]; !ok {
			h.Add(k, v)
		}
	}
	for k, vs := range h {
		if strings.ContainsAny(k, "\r\n: ") || slices.ContainsFunc(vs, func(v string) bool { return strings.ContainsAny(v, "\r\n") }) {
			delete(h, k)
		}
	}
	for _, k := range []string{"Content-Length", "Connection", "Upgrade", "Sec-Websocket-Accept", "Transfer-Encoding"} {
		h.Del(k)
	}
	return h
}

// invoke runs a route's function with an event and decodes its proxy
// response. label names the event in verbose logs.
func (g *Gateway) invoke(parent context.Context, c *conn, route Route, ev *events.APIGatewayWebsocketProxyRequest, label string) (events.APIGatewayProxyResponse, error) {
	var resp events.APIGatewayProxyResponse
	payload, err := json.Marshal(ev)
	if err != nil {
		return resp, fmt.Errorf("encode event: %w", err)
	}
	if g.cfg.Verbose && label != "" {
		g.log.Debug(label+" event", "conn", c.id, "event", string(redactedEvent(ev, g.cfg.Redact)))
	}
	out, err := g.call(parent, route.Function, payload)
	if err != nil {
		return resp, fmt.Errorf("%s: %w", route.Function, err)
	}
	if len(out) == 0 || string(out) == "null" {
		return resp, nil
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return resp, fmt.Errorf("%s: malformed Lambda proxy response %.200q", route.Function, out)
	}
	return resp, nil
}

func headerHasToken(v, token string) bool {
	for _, t := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }

// replayConn is a connection whose first bytes were read already.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands sorted connections to the management API's server.
type chanListener struct {
	addr  net.Addr
	ch    chan net.Conn
	once  sync.Once
	close chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), close: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.close:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.close:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.close) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
