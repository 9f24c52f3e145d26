package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// newID returns an id shaped like API Gateway's connection, request and
// message ids: 15 letters and digits and a final "=", such as
// R1kmxc2VNjMCFIA=.
func newID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [16]byte
	rand.Read(b[:15])
	for i := range 15 {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[15] = '='
	return string(b[:])
}

// newTraceID returns an X-Amzn-Trace-Id value.
func newTraceID(now time.Time) string {
	var b [12]byte
	rand.Read(b[:])
	return "Root=1-" + strconv.FormatInt(now.Unix(), 16) + "-" + hex.EncodeToString(b[:])
}

// requestContext returns the requestContext every event of c carries.
func (g *Gateway) requestContext(c *conn, routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	id := newID()
	rc := events.APIGatewayWebsocketProxyRequestContext{
		RouteKey:          routeKey,
		EventType:         eventType,
		ExtendedRequestID: id,
		RequestTime:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		MessageDirection:  "IN",
		Stage:             g.cfg.Stage,
		ConnectedAt:       c.connectedAt.UnixMilli(),
		RequestTimeEpoch:  now.UnixMilli(),
		Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		RequestID:         id,
		DomainName:        c.domainName,
		ConnectionID:      c.id,
		APIID:             g.cfg.APIID,
	}
	if c.authorizer != nil { // a nil map in the interface would be "authorizer": null
		rc.Authorizer = c.authorizer
	}
	return rc
}

// connectEvent is the CONNECT event: the client's headers in its own
// casing plus those API Gateway adds, and the query string when there is one.
func (g *Gateway) connectEvent(c *conn, req *request) events.APIGatewayWebsocketProxyRequest {
	now := time.Now()
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:           map[string]string{},
		MultiValueHeaders: map[string][]string{},
		StageVariables:    g.cfg.StageVariables,
		RequestContext:    g.requestContext(c, "$connect", "CONNECT", now),
	}
	add := func(k, v string) {
		// Repeated headers keep the casing of their first occurrence.
		for have := range ev.MultiValueHeaders {
			if strings.EqualFold(have, k) {
				k = have
				break
			}
		}
		ev.Headers[k] = v // the last value, as in multiValueHeaders' last
		ev.MultiValueHeaders[k] = append(ev.MultiValueHeaders[k], v)
	}
	skip := map[string]bool{"connection": true, "upgrade": true, "x-forwarded-for": true,
		"x-forwarded-port": true, "x-forwarded-proto": true, "x-amzn-trace-id": true}
	for _, h := range req.headers {
		if !skip[strings.ToLower(h.key)] {
			add(h.key, h.value)
		}
	}
	_, port, _ := net.SplitHostPort(c.localAddr)
	add("X-Amzn-Trace-Id", newTraceID(now))
	add("X-Forwarded-For", c.sourceIP)
	add("X-Forwarded-Port", port)
	add("X-Forwarded-Proto", "http")
	if req.rawQuery != "" {
		if q, err := parseQuery(req.rawQuery); err == nil && len(q) > 0 {
			ev.MultiValueQueryStringParameters = q
			ev.QueryStringParameters = map[string]string{}
			for k, vs := range q {
				ev.QueryStringParameters[k] = vs[len(vs)-1]
			}
		}
	}
	return ev
}

func parseQuery(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		uk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		out[uk] = append(out[uk], uv)
	}
	return out, nil
}

// messageEvent is the MESSAGE event of one client message.
func (g *Gateway) messageEvent(c *conn, routeKey string, body []byte) events.APIGatewayWebsocketProxyRequest {
	rc := g.requestContext(c, routeKey, "MESSAGE", time.Now())
	rc.MessageID = newID()
	return events.APIGatewayWebsocketProxyRequest{RequestContext: rc, Body: string(body), StageVariables: g.cfg.StageVariables}
}

// disconnectEvent is the DISCONNECT event: the close code and reason, and
// the few headers API Gateway sends with it.
func (g *Gateway) disconnectEvent(c *conn, code int, reason string) events.APIGatewayWebsocketProxyRequest {
	rc := g.requestContext(c, "$disconnect", "DISCONNECT", time.Now())
	rc.DisconnectStatusCode = int64(code)
	rc.DisconnectReason = &reason
	h := map[string]string{"Host": c.domainName, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
	mv := map[string][]string{}
	for k, v := range h {
		mv[k] = []string{v}
	}
	return events.APIGatewayWebsocketProxyRequest{Headers: h, MultiValueHeaders: mv, StageVariables: g.cfg.StageVariables, RequestContext: rc}
}
