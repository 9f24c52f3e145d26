package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Authorizer is a Lambda REQUEST authorizer of the $connect route.
type Authorizer struct {
	// Name names it in logs (the template's logical id).
	Name string
	// Function is the function the Invoker runs for it.
	Function string
	// IdentitySources must all be present and non-empty in the handshake, or the client gets 401 without the function being invoked:
	// route.request.header.NAME (any case), route.request.querystring.NAME, stageVariables.NAME, context.NAME.
	IdentitySources []string
}

// The bodies of the gateway's answers to a handshake its authorizer refuses.
const (
	bodyUnauthorized = `{"message":"Unauthorized"}`
	bodyForbidden    = `{"message":"Forbidden"}`
	bodyServerError  = `{"message":"Internal server error"}`
)

// authorizer is an Authorizer with its identity sources parsed.
type authorizer struct {
	Authorizer
	sources []identitySource
}

// checkAuthorizers refuses what API Gateway refuses: an authorizer on a
// route other than $connect, one without a function, and identity sources
// it cannot parse. It returns the $connect route's authorizer, or nil.
func checkAuthorizers(routes []Route) (*authorizer, error) {
	var connect *authorizer
	for _, r := range routes {
		if r.Authorizer == nil {
			continue
		}
		if r.Key != "$connect" {
			return nil, fmt.Errorf("localgw: route %s has authorizer %q: API Gateway allows an authorizer only on $connect", r.Key, r.Authorizer.Name)
		}
		a, err := newAuthorizer(*r.Authorizer)
		if err != nil {
			return nil, err
		}
		connect = a
	}
	return connect, nil
}

func newAuthorizer(a Authorizer) (*authorizer, error) {
	if a.Function == "" {
		return nil, fmt.Errorf("localgw: authorizer %q has no function", a.Name)
	}
	a.IdentitySources = slices.Clone(a.IdentitySources)
	out := &authorizer{Authorizer: a}
	for _, s := range a.IdentitySources {
		src, err := parseIdentitySource(s)
		if err != nil {
			return nil, fmt.Errorf("localgw: authorizer %q: identity source %q: %w", a.Name, s, err)
		}
		out.sources = append(out.sources, src)
	}
	return out, nil
}

// identitySource is one parsed identity source: where to look, and for what.
type identitySource struct {
	expr string // as configured
	kind string // "header", "querystring", "stageVariables" or "context"
	name string
}

// contextVariables are the $context variables of a $connect request that a
// context.NAME identity source can name.
var contextVariables = map[string]func(*events.APIGatewayWebsocketProxyRequestContext) string{
	"apiId": func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.APIID },
	"connectedAt": func(rc *events.APIGatewayWebsocketProxyRequestContext) string {
		return strconv.FormatInt(rc.ConnectedAt, 10)
	},
	"connectionId":       func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.ConnectionID },
	"domainName":         func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.DomainName },
	"eventType":          func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.EventType },
	"extendedRequestId":  func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.ExtendedRequestID },
	"identity.sourceIp":  func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.Identity.SourceIP },
	"identity.userAgent": func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.Identity.UserAgent },
	"messageDirection":   func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.MessageDirection },
	"requestId":          func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.RequestID },
	"requestTime":        func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.RequestTime },
	"requestTimeEpoch": func(rc *events.APIGatewayWebsocketProxyRequestContext) string {
		return strconv.FormatInt(rc.RequestTimeEpoch, 10)
	},
	"routeKey": func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.RouteKey },
	"stage":    func(rc *events.APIGatewayWebsocketProxyRequestContext) string { return rc.Stage },
}

// parseIdentitySource parses route.request.header.NAME,
// route.request.querystring.NAME, stageVariables.NAME or context.NAME.
func parseIdentitySource(s string) (identitySource, error) {
	for _, p := range []struct{ prefix, kind string }{
		{"route.request.header.", "header"},
		{"route.request.querystring.", "querystring"},
		{"stageVariables.", "stageVariables"},
		{"context.", "context"},
	} {
		name, ok := strings.CutPrefix(s, p.prefix)
		if !ok {
			continue
		}
		switch {
		case name == "":
			return identitySource{}, fmt.Errorf("no name after %s", p.prefix)
		case p.kind == "header" && strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }):
			return identitySource{}, fmt.Errorf("%q is not a header name", name)
		case p.kind == "context" && contextVariables[name] == nil:
			return identitySource{}, fmt.Errorf("the local gateway knows no $context.%s; it knows %s", name, strings.Join(slices.Sorted(maps.Keys(contextVariables)), ", "))
		}
		return identitySource{expr: s, kind: p.kind, name: name}, nil
	}
	hint := ""
	if strings.HasPrefix(s, "$request.") || strings.HasPrefix(s, "method.request.") {
		hint = " (that is the form of HTTP or REST APIs)"
	}
	return identitySource{}, fmt.Errorf("want route.request.header.NAME, route.request.querystring.NAME, stageVariables.NAME or context.NAME%s", hint)
}

// isTokenChar reports whether r may appear in an HTTP header name (RFC 9110 token).
func isTokenChar(r rune) bool {
	return r < 0x7f && r > 0x20 && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

// present reports whether the source has a non-empty value in the
// authorizer's event.
func (s identitySource) present(ev *authorizerRequest) bool {
	nonEmpty := func(vs []string) bool { return slices.ContainsFunc(vs, func(v string) bool { return v != "" }) }
	switch s.kind {
	case "header":
		for k, vs := range ev.MultiValueHeaders {
			if strings.EqualFold(k, s.name) && nonEmpty(vs) {
				return true
			}
		}
		return false
	case "querystring":
		return nonEmpty(ev.MultiValueQueryStringParameters[s.name])
	case "stageVariables":
		return ev.StageVariables[s.name] != ""
	default:
		return contextVariables[s.name](&ev.RequestContext) != ""
	}
}

// authorizerRequest is the event a Lambda REQUEST authorizer of a WebSocket
// API's $connect route receives, in the shape of the example input on AWS's
// "Control access to WebSocket APIs with AWS Lambda REQUEST authorizers"
// page. aws-lambda-go has no type for it: its
// APIGatewayCustomAuthorizerRequestTypeRequest is the REST API's.
type authorizerRequest struct {
	Type                            string                                        `json:"type"`
	MethodArn                       string                                        `json:"methodArn"`
	Headers                         map[string]string                             `json:"headers"`
	MultiValueHeaders               map[string][]string                           `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string                             `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string                           `json:"multiValueQueryStringParameters,omitempty"`
	StageVariables                  map[string]string                             `json:"stageVariables"`
	RequestContext                  events.APIGatewayWebsocketProxyRequestContext `json:"requestContext"`
}

// methodArn is the ARN the authorizer's policy must allow:
// arn:aws:execute-api:REGION:ACCOUNT:APIID/STAGE/$connect.
func (g *Gateway) methodArn() string {
	partition := "aws"
	switch r := g.cfg.Region; {
	case strings.HasPrefix(r, "cn-"):
		partition = "aws-cn"
	case strings.HasPrefix(r, "us-gov-"):
		partition = "aws-us-gov"
	}
	return "arn:" + partition + ":execute-api:" + g.cfg.Region + ":" + g.cfg.AccountID + ":" + g.cfg.APIID + "/" + g.cfg.Stage + "/$connect"
}

// authorizerEvent is the authorizer's event for a handshake whose CONNECT
// event is ev: the same headers, query and request context, plus the
// Connection, Upgrade and content-length headers that AWS's example input
// shows and the CONNECT event lacks.
func (g *Gateway) authorizerEvent(ev *events.APIGatewayWebsocketProxyRequest) authorizerRequest {
	h := maps.Clone(ev.Headers)
	mv := maps.Clone(ev.MultiValueHeaders)
	for _, kv := range [][2]string{{"Connection", "upgrade"}, {"content-length", "0"}, {"Upgrade", "websocket"}} {
		for have := range mv {
			if strings.EqualFold(have, kv[0]) {
				delete(h, have)
				delete(mv, have)
			}
		}
		h[kv[0]] = kv[1]
		mv[kv[0]] = []string{kv[1]}
	}
	sv := ev.StageVariables
	if sv == nil {
		sv = map[string]string{}
	}
	rc := ev.RequestContext
	rc.Authorizer = nil
	return authorizerRequest{
		Type:                            "REQUEST",
		MethodArn:                       g.methodArn(),
		Headers:                         h,
		MultiValueHeaders:               mv,
		QueryStringParameters:           ev.QueryStringParameters,
		MultiValueQueryStringParameters: ev.MultiValueQueryStringParameters,
		StageVariables:                  sv,
		RequestContext:                  rc,
	}
}

// verdict is what the authorizer decided for a handshake.
type verdict struct {
	status int    // 200 (allowed), 401, 403 or 500
	reason string // why it was refused, for the log
	// authorizer is requestContext.authorizer of the connection's events
	// when allowed: principalId and the context's keys.
	authorizer map[string]any
}

// authorize runs the $connect authorizer for the handshake whose CONNECT
// event is ev. It returns 200 when the authorizer allows the connection,
// after setting the connection's requestContext.authorizer (ev's too), or
// the status and body the client gets instead: 401, 403 or 500.
func (g *Gateway) authorize(c *conn, ev *events.APIGatewayWebsocketProxyRequest) (int, string) {
	a := g.auth
	aev := g.authorizerEvent(ev)
	start := time.Now()
	var v verdict
	var out []byte
	for _, s := range a.sources {
		if !s.present(&aev) {
			v = verdict{status: http.StatusUnauthorized, reason: "missing identity source " + s.expr + " (function not invoked)"}
			break
		}
	}
	if v.status == 0 {
		payload, err := json.Marshal(&aev)
		if err != nil {
			v = verdict{status: http.StatusInternalServerError, reason: "encode event: " + err.Error()}
		} else {
			if g.cfg.Verbose {
				g.log.Debug("AUTHORIZE event", "conn", c.id, "event", string(redactedAuthorizerEvent(&aev)))
			}
			out, err = g.call(g.hsCtx, a.Function, payload)
			v = evaluate(out, err, aev.MethodArn)
		}
	}
	g.stats.countHandshake(v.status)
	attrs := []any{"conn", c.id, "authorizer", a.Name, "function", a.Function, "status", v.status,
		"duration", ms(time.Since(start)), "from", c.sourceIP}
	if v.reason != "" {
		attrs = append(attrs, "reason", v.reason)
	}
	if g.cfg.Verbose && out != nil {
		attrs = append(attrs, "response", g.cfg.Redact(string(out)))
	}
	g.log.Info("AUTHORIZE", attrs...)
	switch v.status {
	case http.StatusOK:
		c.authorizer = v.authorizer
		ev.RequestContext.Authorizer = v.authorizer
		return http.StatusOK, ""
	case http.StatusUnauthorized:
		return v.status, bodyUnauthorized
	case http.StatusForbidden:
		return v.status, bodyForbidden
	default:
		return http.StatusInternalServerError, bodyServerError
	}
}

// evaluate decides a handshake from the authorizer's response out, or the
// error its invocation failed with:
//
//   - the function failed with errorMessage "Unauthorized": 401;
//   - it failed otherwise, timed out, or answered with a malformed
//     response (not a JSON object, no principalId, no policyDocument with
//     statements, a context value that is not a string, number or
//     boolean): 500;
//   - a Deny statement covers execute-api:Invoke on methodArn: 403;
//   - else an Allow statement does: 200, with principalId and the context;
//   - else 403.
func evaluate(out []byte, err error, methodArn string) verdict {
	fail := func(format string, args ...any) verdict {
		return verdict{status: http.StatusInternalServerError, reason: fmt.Sprintf(format, args...)}
	}
	if err != nil {
		var fe interface{ ErrorMessage() string }
		switch {
		case errors.As(err, &fe) && fe.ErrorMessage() == "Unauthorized":
			return verdict{status: http.StatusUnauthorized, reason: "the function failed with Unauthorized"}
		case errors.Is(err, context.DeadlineExceeded):
			return fail("the function timed out: %v", err)
		default:
			return fail("the function failed: %v", err)
		}
	}
	resp, err := parseAuthorizerResponse(out)
	if err != nil {
		return fail("malformed response: %v", err)
	}
	allowed := false
	for _, st := range resp.statements {
		if !st.covers(methodArn) {
			continue
		}
		if st.effect == "Deny" {
			return verdict{status: http.StatusForbidden, reason: "a Deny statement covers " + methodArn}
		}
		allowed = true
	}
	if !allowed {
		return verdict{status: http.StatusForbidden, reason: "no Allow statement covers " + methodArn}
	}
	auth := make(map[string]any, len(resp.context)+1)
	maps.Copy(auth, resp.context)
	auth["principalId"] = resp.principalID
	return verdict{status: http.StatusOK, authorizer: auth}
}

// authorizerResponse is an authorizer's response as far as the gateway
// reads it: the shape of events.APIGatewayCustomAuthorizerResponse.
type authorizerResponse struct {
	principalID string
	statements  []statement
	context     map[string]any // strings, json.Numbers and booleans
}

// statement is one statement of the policy: Action and Resource patterns
// with IAM's wildcards * and ?.
type statement struct {
	effect             string // "Allow" or "Deny"
	actions, resources []string
}

// covers reports whether the statement is about execute-api:Invoke on arn.
// Actions match without regard to case, as IAM matches them; resources
// match exactly.
func (s statement) covers(arn string) bool {
	action := slices.ContainsFunc(s.actions, func(p string) bool {
		return wildcardMatch(strings.ToLower(p), "execute-api:invoke")
	})
	return action && slices.ContainsFunc(s.resources, func(p string) bool { return wildcardMatch(p, arn) })
}

// parseAuthorizerResponse reads an authorizer's response as leniently as
// IAM reads a policy: Statement, Action and Resource may each be one value
// or a list. It fails, saying what is wrong, on anything else that is not
// a valid response.
func parseAuthorizerResponse(out []byte) (authorizerResponse, error) {
	var resp authorizerResponse
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber() // context numbers keep their JSON text: 1 stays 1
	var top any
	if err := d.Decode(&top); err != nil {
		return resp, fmt.Errorf("not JSON: %.100q", out)
	}
	if _, err := d.Token(); err != io.EOF {
		return resp, fmt.Errorf("not JSON: %.100q", out)
	}
	m, ok := top.(map[string]any)
	if !ok {
		return resp, fmt.Errorf("not a JSON object: %.100q", out)
	}
	switch p := m["principalId"].(type) {
	case nil:
		return resp, errors.New("no principalId")
	case string:
		if p == "" {
			return resp, errors.New("principalId is empty")
		}
		resp.principalID = p
	default:
		return resp, fmt.Errorf("principalId is %s, not a string", jsonKind(p))
	}
	doc, ok := m["policyDocument"].(map[string]any)
	if !ok {
		return resp, errors.New("no policyDocument object")
	}
	var sts []any
	switch s := doc["Statement"].(type) {
	case []any:
		sts = s
	case map[string]any:
		sts = []any{s}
	}
	if len(sts) == 0 {
		return resp, errors.New("policyDocument has no Statement")
	}
	for i, s := range sts {
		sm, ok := s.(map[string]any)
		if !ok {
			return resp, fmt.Errorf("statement %d is %s, not an object", i, jsonKind(s))
		}
		st := statement{}
		switch e := sm["Effect"]; e {
		case "Allow", "Deny":
			st.effect = e.(string)
		case nil:
			return resp, fmt.Errorf("statement %d has no Effect", i)
		default:
			return resp, fmt.Errorf("statement %d: Effect %v is neither Allow nor Deny", i, e)
		}
		var err error
		if st.actions, err = stringOrList(sm["Action"]); err != nil {
			return resp, fmt.Errorf("statement %d: Action: %w (NotAction is not supported)", i, err)
		}
		if st.resources, err = stringOrList(sm["Resource"]); err != nil {
			return resp, fmt.Errorf("statement %d: Resource: %w (NotResource is not supported)", i, err)
		}
		resp.statements = append(resp.statements, st)
	}
	switch c := m["context"].(type) {
	case nil:
	case map[string]any:
		for k, v := range c {
			switch v.(type) {
			case string, json.Number, bool:
			default:
				return resp, fmt.Errorf("context value %q is %s: only strings, numbers and booleans are allowed", k, jsonKind(v))
			}
		}
		resp.context = c
	default:
		return resp, fmt.Errorf("context is %s, not an object", jsonKind(c))
	}
	return resp, nil
}

// stringOrList reads an IAM element that is one string or a list of them.
func stringOrList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s in the list, not a string", jsonKind(e))
			}
			out = append(out, s)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("missing or not a string or a list of strings")
}

// jsonKind names the kind of a decoded JSON value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// wildcardMatch reports whether s matches pattern, in which * matches any
// run of characters (/ and : included) and ? any one character, as in IAM
// policies.
func wildcardMatch(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	starP, starT := -1, 0 // the last * seen, and where in t it matched up to
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			starP, starT = pi, ti
			pi++
		case starP >= 0: // let the last * take one more character
			starT++
			pi, ti = starP+1, starT
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
