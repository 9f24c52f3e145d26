package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/lambdart"
)

// answer is what a fake authorizer does with its event.
type answer func(ctx context.Context, payload []byte) ([]byte, error)

// authInvoker runs the authorizer function "Authorize" with an answer and
// records its events; every other function goes to next.
type authInvoker struct {
	next   gateway.Invoker
	answer answer
	mu     sync.Mutex
	events [][]byte
}

func (a *authInvoker) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	if function != "Authorize" {
		return a.next.Invoke(ctx, function, payload)
	}
	a.mu.Lock()
	a.events = append(a.events, payload)
	a.mu.Unlock()
	return a.answer(ctx, payload)
}

// authorizerEvents returns the authorizer's events so far.
func (a *authInvoker) authorizerEvents() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// raw answers with these bytes, as a function binary's runtime could.
func raw(body string) answer {
	return func(context.Context, []byte) ([]byte, error) { return []byte(body), nil }
}

// policy answers with principalId user-1, a policy of statements and a context.
func policy(context map[string]any, statements ...map[string]any) answer {
	b, err := json.Marshal(map[string]any{
		"principalId":    "user-1",
		"policyDocument": map[string]any{"Version": "2012-10-17", "Statement": statements},
		"context":        context,
	})
	if err != nil {
		panic(err)
	}
	return raw(string(b))
}

func stmt(effect string, action, resource any) map[string]any {
	return map[string]any{"Effect": effect, "Action": action, "Resource": resource}
}

// inProcess answers as the Go handler f does, run by gateway.InProcess.
func inProcess(f any) answer {
	p := gateway.NewInProcess(map[string]any{"f": f})
	return func(ctx context.Context, payload []byte) ([]byte, error) { return p.Invoke(ctx, "f", payload) }
}

// fails answers with err, as an Invoker reports a failed invocation.
func fails(err error) answer {
	return func(context.Context, []byte) ([]byte, error) { return nil, err }
}

const testArn = "arn:aws:execute-api:eu-west-3:123456789012:abcdef1234/prod/$connect"

// authConfig is a gateway whose $connect has the authorizer Authorize with
// these identity sources, in a stage whose methodArn is testArn.
func authConfig(inv gateway.Invoker, sources ...string) gateway.Config {
	routes := standardRoutes()
	routes[0].Authorizer = &gateway.Authorizer{Name: "ConnectAuthorizer", Function: "Authorize", IdentitySources: sources}
	return gateway.Config{Routes: routes, Invoker: inv, Region: "eu-west-3", AccountID: "123456789012", APIID: "abcdef1234", Stage: "prod"}
}

func count(rec *recorder, function string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.events[function])
}

func TestTheConnectAuthorizerDecidesTheHandshake(t *testing.T) {
	allow := stmt("Allow", "execute-api:Invoke", testArn)
	deny := stmt("Deny", "execute-api:Invoke", testArn)
	auth := http.Header{"Auth": {"secret"}}
	tests := []struct {
		name        string
		sources     []string
		stageVars   map[string]string
		header      http.Header
		query       string
		answer      answer
		timeout     time.Duration
		wantStatus  int // 101: connected
		wantInvoked bool
	}{
		{name: "a missing identity header is 401 and the authorizer is not invoked",
			sources: []string{"route.request.header.Auth"}, answer: policy(nil, allow), wantStatus: 401},
		{name: "an empty identity header is 401 and the authorizer is not invoked",
			sources: []string{"route.request.header.Auth"}, header: http.Header{"Auth": {""}}, answer: policy(nil, allow), wantStatus: 401},
		{name: "a header source matches the header in any case",
			sources: []string{"route.request.header.AUTH"}, header: http.Header{"auth": {"x"}}, answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "a missing query string source is 401 and the authorizer is not invoked",
			sources: []string{"route.request.querystring.token"}, query: "?other=1", answer: policy(nil, allow), wantStatus: 401},
		{name: "a query string source that is present invokes the authorizer",
			sources: []string{"route.request.querystring.token"}, query: "?token=abc", answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "every source must be present",
			sources: []string{"route.request.header.Auth", "route.request.querystring.token"}, header: auth, answer: policy(nil, allow), wantStatus: 401},
		{name: "a stage variable source that is set invokes the authorizer",
			sources: []string{"stageVariables.tier"}, stageVars: map[string]string{"tier": "gold"}, answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "a stage variable source that is not set is 401",
			sources: []string{"stageVariables.tier"}, answer: policy(nil, allow), wantStatus: 401},
		{name: "a context source that is set invokes the authorizer",
			sources: []string{"context.identity.sourceIp"}, answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "no identity sources invokes the authorizer",
			answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "Allow connects", header: auth, answer: policy(nil, allow), wantStatus: 101, wantInvoked: true},
		{name: "Action and Resource may be lists",
			answer:     policy(nil, stmt("Allow", []string{"execute-api:ManageConnections", "execute-api:Invoke"}, []string{"arn:aws:execute-api:*:*:other/*", testArn})),
			wantStatus: 101, wantInvoked: true},
		{name: "a Statement may be one object",
			answer: raw(`{"principalId":"u","policyDocument":{"Statement":{"Effect":"Allow","Action":"execute-api:*","Resource":"*"}}}`), wantStatus: 101, wantInvoked: true},
		{name: "a wildcard resource allows",
			answer: policy(nil, stmt("Allow", "execute-api:Invoke", "arn:aws:execute-api:*:*:*/*/$connect")), wantStatus: 101, wantInvoked: true},
		{name: "a ? wildcard matches one character",
			answer: policy(nil, stmt("Allow", "execute-api:Invoke", "arn:aws:execute-api:eu-west-?:123456789012:abcdef1234/pro?/$connect")), wantStatus: 101, wantInvoked: true},
		{name: "Deny is 403", answer: policy(nil, deny), wantStatus: 403, wantInvoked: true},
		{name: "Allow for another resource is 403",
			answer: policy(nil, stmt("Allow", "execute-api:Invoke", "arn:aws:execute-api:eu-west-3:123456789012:abcdef1234/dev/$connect")), wantStatus: 403, wantInvoked: true},
		{name: "Allow of another action is 403",
			answer: policy(nil, stmt("Allow", "execute-api:ManageConnections", testArn)), wantStatus: 403, wantInvoked: true},
		{name: "Deny wins over Allow", answer: policy(nil, allow, deny), wantStatus: 403, wantInvoked: true},
		{name: "a wildcard Deny wins over Allow", answer: policy(nil, allow, stmt("Deny", "*", "*")), wantStatus: 403, wantInvoked: true},
		{name: "an Unauthorized error is 401",
			answer: inProcess(func(context.Context, json.RawMessage) (events.APIGatewayCustomAuthorizerResponse, error) {
				return events.APIGatewayCustomAuthorizerResponse{}, errors.New("Unauthorized")
			}), wantStatus: 401, wantInvoked: true},
		{name: "an Unauthorized error of a function binary is 401",
			answer: fails(&lambdart.FunctionError{Type: "errorString", Message: "Unauthorized"}), wantStatus: 401, wantInvoked: true},
		{name: "another error is 500",
			answer: inProcess(func(context.Context, json.RawMessage) (events.APIGatewayCustomAuthorizerResponse, error) {
				return events.APIGatewayCustomAuthorizerResponse{}, errors.New("unauthorized")
			}), wantStatus: 500, wantInvoked: true},
		{name: "an error without an error message is 500", answer: fails(errors.New("Unauthorized")), wantStatus: 500, wantInvoked: true},
		{name: "a timeout is 500",
			answer: inProcess(func(context.Context, json.RawMessage) (events.APIGatewayCustomAuthorizerResponse, error) {
				time.Sleep(time.Second)
				return events.APIGatewayCustomAuthorizerResponse{}, nil
			}), timeout: 100 * time.Millisecond, wantStatus: 500, wantInvoked: true},
		{name: "a response that is not JSON is 500", answer: raw(`not json`), wantStatus: 500, wantInvoked: true},
		{name: "a response that is not an object is 500", answer: raw(`["Allow"]`), wantStatus: 500, wantInvoked: true},
		{name: "a response without principalId is 500",
			answer: raw(`{"policyDocument":{"Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}]}}`), wantStatus: 500, wantInvoked: true},
		{name: "a response without policyDocument is 500", answer: raw(`{"principalId":"u"}`), wantStatus: 500, wantInvoked: true},
		{name: "a policy without statements is 500", answer: policy(nil), wantStatus: 500, wantInvoked: true},
		{name: "a statement with another Effect is 500", answer: policy(nil, stmt("allow", "execute-api:Invoke", testArn)), wantStatus: 500, wantInvoked: true},
		{name: "a context with an object is 500", answer: policy(map[string]any{"user": map[string]any{"id": 1}}, allow), wantStatus: 500, wantInvoked: true},
		{name: "a context with an array is 500", answer: policy(map[string]any{"groups": []string{"a"}}, allow), wantStatus: 500, wantInvoked: true},
		{name: "a context with null is 500", answer: policy(map[string]any{"nothing": nil}, allow), wantStatus: 500, wantInvoked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(standardFuncs())
			inv := &authInvoker{next: rec, answer: tt.answer}
			cfg := authConfig(inv, tt.sources...)
			cfg.StageVariables = tt.stageVars
			cfg.IntegrationTimeout = tt.timeout
			gw := start(t, cfg)

			c, err := tryDial(gw.URL()+tt.query, tt.header)
			status := 101
			var refused *dialStatus
			switch {
			case errors.As(err, &refused):
				status = refused.status
			case err != nil:
				t.Fatalf("dial: %v", err)
			default:
				c.nc.Close()
			}
			if status != tt.wantStatus {
				t.Fatalf("got status %d, want %d", status, tt.wantStatus)
			}
			if body := map[int]string{401: `{"message":"Unauthorized"}`, 403: `{"message":"Forbidden"}`, 500: `{"message":"Internal server error"}`}[status]; body != "" &&
				!strings.HasSuffix(refused.body, "\r\n\r\n"+body) {
				t.Errorf("got answer %q, want the body %s", refused.body, body)
			}

			evs := inv.authorizerEvents()
			if got := len(evs) == 1; got != tt.wantInvoked || len(evs) > 1 {
				t.Errorf("the authorizer ran %d times, want invoked: %v", len(evs), tt.wantInvoked)
			}
			want := gateway.Stats{Invocations: map[string]int64{}}
			if tt.wantInvoked {
				want.Invocations["Authorize"] = 1
			}
			switch status {
			case 101:
				want.Authorized = 1
				want.Invocations["Connect"] = 1
				rec.event(t, "Disconnect") // then the counts are settled
				want.Invocations["Disconnect"] = 1
			case 401:
				want.Unauthorized401 = 1
			case 403:
				want.Forbidden403 = 1
			case 500:
				want.Failed500 = 1
			}
			if status == 101 {
				checkStats(t, gw, want)
				return
			}

			// A refused handshake leaves nothing behind: no $connect, no
			// $disconnect, no connection.
			time.Sleep(50 * time.Millisecond)
			if n, m := count(rec, "Connect"), count(rec, "Disconnect"); n+m != 0 {
				t.Errorf("$connect ran %d times and $disconnect %d times after a refused handshake", n, m)
			}
			checkStats(t, gw, want)
			if len(evs) == 1 {
				var ev struct {
					RequestContext struct{ ConnectionID string } `json:"requestContext"`
				}
				json.Unmarshal(evs[0], &ev)
				var gone *types.GoneException
				_, err := mgmtClient(gw).GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(ev.RequestContext.ConnectionID)})
				if !errors.As(err, &gone) {
					t.Errorf("GetConnection of the refused connection: got %v, want *types.GoneException", err)
				}
			}
		})
	}
}

func checkStats(t *testing.T, gw *gateway.Gateway, want gateway.Stats) {
	t.Helper()
	got := gw.Stats()
	if !equalStats(got, want) {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
}

func equalStats(a, b gateway.Stats) bool {
	for k, v := range a.Invocations {
		if b.Invocations[k] != v {
			return false
		}
	}
	return len(a.Invocations) == len(b.Invocations) && a.Authorized == b.Authorized &&
		a.Unauthorized401 == b.Unauthorized401 && a.Forbidden403 == b.Forbidden403 && a.Failed500 == b.Failed500
}

// authorizerOf returns requestContext.authorizer of an event, numbers as
// json.Number.
func authorizerOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var ev struct {
		RequestContext struct {
			Authorizer map[string]any `json:"authorizer"`
		} `json:"requestContext"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev.RequestContext.Authorizer
}

func TestAnAllowedConnectionCarriesTheAuthorizerOnEveryEvent(t *testing.T) {
	rec := newRecorder(standardFuncs())
	inv := &authInvoker{next: rec, answer: policy(
		map[string]any{"clientId": 1, "clientName": "Exata", "admin": true, "ratio": 0.5},
		stmt("Allow", "execute-api:Invoke", testArn))}
	gw := start(t, authConfig(inv, "route.request.header.Auth"))
	c := dial(t, gw.URL(), http.Header{"Auth": {"secret"}})
	c.text("hi")
	c.readText()
	c.frame(true, ws.OpClose, ws.NewCloseFrameBody(1000, ""))

	_, connect := rec.event(t, "Connect")
	_, message := rec.event(t, "Echo")
	_, disconnect := rec.event(t, "Disconnect")
	want := map[string]any{"principalId": "user-1", "clientId": json.Number("1"), "clientName": "Exata", "admin": true, "ratio": json.Number("0.5")}
	for name, raw := range map[string][]byte{"CONNECT": connect, "MESSAGE": message, "DISCONNECT": disconnect} {
		got := authorizerOf(t, raw)
		if len(got) != len(want) {
			t.Errorf("%s: got requestContext.authorizer %v, want %v", name, got, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: got authorizer.%s = %#v, want %#v", name, k, got[k], v)
			}
		}
	}
	if !bytes.Contains(connect, []byte(`"clientId":1,`)) && !bytes.Contains(connect, []byte(`"clientId":1}`)) {
		t.Errorf("a number in the context must stay a JSON number: %s", connect)
	}
}

func TestAConnectionWithoutAnAuthorizerHasNoAuthorizerField(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec})
	dial(t, gw.URL(), nil)
	if _, raw := rec.event(t, "Connect"); bytes.Contains(raw, []byte(`"authorizer"`)) {
		t.Errorf("got %s, want no requestContext.authorizer", raw)
	}
}

func TestTheAuthorizerEventHasTheShapeAWSDocuments(t *testing.T) {
	rec := newRecorder(standardFuncs())
	inv := &authInvoker{next: rec, answer: policy(nil, stmt("Allow", "execute-api:Invoke", testArn))}
	gw := start(t, authConfig(inv, "route.request.header.HeaderAuth1", "route.request.querystring.QueryString1"))
	dial(t, gw.URL()+"?QueryString1=queryValue1", http.Header{
		"HeaderAuth1":              {"headerValue1"},
		"User-Agent":               {"mastersocket-test"},
		"Sec-WebSocket-Extensions": {"permessage-deflate; client_max_window_bits"},
	})
	_, rawConnect := rec.event(t, "Connect")
	raw := inv.authorizerEvents()[0]

	fixture, err := os.ReadFile("../../../testdata/apigw/authorizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, raw), keys(t, fixture); !slices.Equal(got, want) {
		t.Errorf("got fields\n%v\nwant (as AWS's example input)\n%v", got, want)
	}

	var ev, doc struct {
		Type                            string              `json:"type"`
		MethodArn                       string              `json:"methodArn"`
		Headers                         map[string]string   `json:"headers"`
		MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
		QueryStringParameters           map[string]string   `json:"queryStringParameters"`
		MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
		StageVariables                  map[string]string   `json:"stageVariables"`
		RequestContext                  events.APIGatewayWebsocketProxyRequestContext
	}
	json.Unmarshal(raw, &ev)
	json.Unmarshal(fixture, &doc)
	if ev.Type != "REQUEST" {
		t.Errorf("got type %q, want REQUEST", ev.Type)
	}
	if ev.MethodArn != testArn {
		t.Errorf("got methodArn %q, want %q", ev.MethodArn, testArn)
	}
	want := append(slices.Collect(maps.Keys(doc.Headers)), "User-Agent")
	if got := slices.Sorted(maps.Keys(ev.Headers)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("got headers %v, want those of AWS's example and the client's User-Agent %v", got, want)
	}
	for _, k := range []string{"Connection", "content-length", "Upgrade", "HeaderAuth1", "Sec-WebSocket-Extensions", "Sec-WebSocket-Version"} {
		if ev.Headers[k] != doc.Headers[k] || !slices.Equal(ev.MultiValueHeaders[k], doc.MultiValueHeaders[k]) {
			t.Errorf("header %s: got %q %q, want %q %q", k, ev.Headers[k], ev.MultiValueHeaders[k], doc.Headers[k], doc.MultiValueHeaders[k])
		}
	}
	if ev.QueryStringParameters["QueryString1"] != "queryValue1" || !slices.Equal(ev.MultiValueQueryStringParameters["QueryString1"], []string{"queryValue1"}) {
		t.Errorf("got query %v %v", ev.QueryStringParameters, ev.MultiValueQueryStringParameters)
	}
	if ev.StageVariables == nil || len(ev.StageVariables) != 0 {
		t.Errorf("got stageVariables %v, want {}", ev.StageVariables)
	}

	// The request context is the $connect event's.
	var connect events.APIGatewayWebsocketProxyRequest
	json.Unmarshal(rawConnect, &connect)
	arc, crc := ev.RequestContext, connect.RequestContext
	crc.Authorizer = nil
	if arc.Authorizer != nil || arc.RouteKey != "$connect" || arc.EventType != "CONNECT" || arc.MessageDirection != "IN" ||
		arc.Stage != "prod" || arc.APIID != "abcdef1234" || arc.Identity.UserAgent != "mastersocket-test" ||
		arc.ConnectionID != crc.ConnectionID || arc.RequestID != crc.RequestID || arc.ConnectedAt != crc.ConnectedAt {
		t.Errorf("got requestContext %+v, want the $connect event's %+v", arc, crc)
	}
}

func TestTheMethodArnNamesRegionAccountAPIAndStage(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*gateway.Config)
		want string
	}{
		{"as configured", func(*gateway.Config) {}, testArn},
		{"with the default account, API id and region", func(c *gateway.Config) { c.Region, c.AccountID, c.APIID, c.Stage = "", "", "", "" },
			"arn:aws:execute-api:us-east-1:000000000000:local/dev/$connect"},
		{"in a China region", func(c *gateway.Config) { c.Region = "cn-north-1" },
			"arn:aws-cn:execute-api:cn-north-1:123456789012:abcdef1234/prod/$connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &authInvoker{next: newRecorder(standardFuncs()), answer: policy(nil, stmt("Allow", "*", "*"))}
			cfg := authConfig(inv)
			tt.cfg(&cfg)
			gw := start(t, cfg)
			dial(t, gw.URL(), nil)
			var ev struct{ MethodArn string }
			json.Unmarshal(inv.authorizerEvents()[0], &ev)
			if ev.MethodArn != tt.want {
				t.Errorf("got methodArn %q, want %q", ev.MethodArn, tt.want)
			}
		})
	}
}

func TestStageVariablesReachTheEvents(t *testing.T) {
	rec := newRecorder(standardFuncs())
	inv := &authInvoker{next: rec, answer: policy(nil, stmt("Allow", "*", "*"))}
	cfg := authConfig(inv)
	cfg.StageVariables = map[string]string{"tier": "gold"}
	gw := start(t, cfg)
	dial(t, gw.URL(), nil)
	connect, _ := rec.event(t, "Connect")
	var ev struct{ StageVariables map[string]string }
	json.Unmarshal(inv.authorizerEvents()[0], &ev)
	if ev.StageVariables["tier"] != "gold" || connect.StageVariables["tier"] != "gold" {
		t.Errorf("got stageVariables %v (authorizer) and %v ($connect), want tier=gold", ev.StageVariables, connect.StageVariables)
	}
}

func TestEveryHandshakeInvokesTheAuthorizer(t *testing.T) {
	rec := newRecorder(standardFuncs())
	inv := &authInvoker{next: rec, answer: policy(nil, stmt("Allow", "execute-api:Invoke", testArn))}
	gw := start(t, authConfig(inv, "route.request.header.Auth"))
	for range 2 {
		dial(t, gw.URL(), http.Header{"Auth": {"same-token"}})
		rec.event(t, "Connect")
	}
	if n := len(inv.authorizerEvents()); n != 2 {
		t.Errorf("two handshakes with the same identity invoked the authorizer %d times, want 2 (no cache)", n)
	}
	if s := gw.Stats(); s.Invocations["Authorize"] != 2 || s.Authorized != 2 {
		t.Errorf("got stats %+v, want 2 invocations of Authorize and 2 authorized", s)
	}
}

func TestNewRefusesAuthorizersAPIGatewayWouldRefuse(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		auth    gateway.Authorizer
		wantErr string
	}{
		{"an authorizer on $default", "$default", gateway.Authorizer{Name: "A", Function: "F"}, "only on $connect"},
		{"an authorizer on a custom route", "join", gateway.Authorizer{Name: "A", Function: "F"}, "only on $connect"},
		{"an authorizer without a function", "$connect", gateway.Authorizer{Name: "A"}, "no function"},
		{"an HTTP API identity source", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"$request.header.Auth"}}, "HTTP or REST"},
		{"a REST API identity source", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"method.request.header.Auth"}}, "HTTP or REST"},
		{"a source without a name", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"route.request.header."}}, "no name"},
		{"a header name with a space", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"route.request.header.X Auth"}}, "not a header name"},
		{"an unknown kind of source", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"route.request.cookie.sid"}}, "want route.request.header.NAME"},
		{"an unknown context variable", "$connect", gateway.Authorizer{Name: "A", Function: "F", IdentitySources: []string{"context.nope"}}, "connectionId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := append(standardRoutes(), gateway.Route{Key: "join", Function: "Echo"})
			for i := range routes {
				if routes[i].Key == tt.key {
					routes[i].Authorizer = &tt.auth
				}
			}
			gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Routes: routes, Invoker: newRecorder(standardFuncs()), Logger: discard()})
			if err == nil {
				gw.Close()
				t.Fatalf("New accepted it, want an error about %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %q, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerboseLogsOfTheAuthorizerHoldNoSecret(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	rec := newRecorder(standardFuncs())
	inv := &authInvoker{next: rec, answer: policy(map[string]any{"sessionToken": "context-secret-1", "group": "bots"}, stmt("Allow", "*", "*"))}
	cfg := authConfig(inv, "route.request.header.Authorization")
	cfg.Verbose = true
	cfg.Logger = newTextLogger(&lockedWriter{mu: &mu, w: &logs})
	gw := start(t, cfg)
	c := dial(t, gw.URL()+"?access_token=query-secret-2", http.Header{
		"Authorization":          {"Bearer header-secret-3"},
		"Sec-WebSocket-Protocol": {"mst.v1, protocol-secret-4"},
	})
	c.text("hi")
	c.readText()
	c.frame(true, ws.OpClose, ws.NewCloseFrameBody(1000, ""))
	c.expectClose()
	rec.event(t, "Disconnect")
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, secret := range []string{"context-secret-1", "query-secret-2", "header-secret-3", "protocol-secret-4"} {
		if strings.Contains(out, secret) {
			t.Errorf("the verbose log holds %s", secret)
		}
	}
	for _, kept := range []string{"msg=AUTHORIZE", "AUTHORIZE event", "bots", "status=200"} {
		if !strings.Contains(out, kept) {
			t.Errorf("the verbose log lacks %s\n%s", kept, out)
		}
	}
}

func TestTheAuthorizeLogLineSaysWhy(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		answer answer
		want   string
	}{
		{"a missing source", nil, policy(nil), "missing identity source route.request.header.Auth"},
		{"a Deny", http.Header{"Auth": {"x"}}, policy(nil, stmt("Deny", "*", "*")), "a Deny statement covers"},
		{"an error", http.Header{"Auth": {"x"}}, fails(errors.New("boom")), "the function failed: boom"},
		{"a malformed context", http.Header{"Auth": {"x"}}, policy(map[string]any{"user": map[string]any{}}, stmt("Allow", "*", "*")),
			`context value \"user\" is an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var logs strings.Builder
			cfg := authConfig(&authInvoker{next: newRecorder(standardFuncs()), answer: tt.answer}, "route.request.header.Auth")
			cfg.Logger = newTextLogger(&lockedWriter{mu: &mu, w: &logs})
			gw := start(t, cfg)
			tryDial(gw.URL(), tt.header)
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			if !strings.Contains(out, "msg=AUTHORIZE") || !strings.Contains(out, tt.want) {
				t.Errorf("got log\n%s\nwant an AUTHORIZE line saying %s", out, tt.want)
			}
		})
	}
}

func TestInProcessReportsAFunctionsErrorAsLambdaDoes(t *testing.T) {
	p := gateway.NewInProcess(map[string]any{
		"Plain": func(context.Context, json.RawMessage) (string, error) { return "", errors.New("Unauthorized") },
		"Wrapped": func(context.Context, json.RawMessage) (string, error) {
			return "", errors.Join(errors.New("a"), errors.New("b"))
		},
	})
	tests := []struct{ function, wantType, wantMessage string }{
		{"Plain", "errorString", "Unauthorized"},
		{"Wrapped", "joinError", "a\nb"},
	}
	for _, tt := range tests {
		_, err := p.Invoke(context.Background(), tt.function, []byte(`{}`))
		var fe *gateway.FunctionError
		if !errors.As(err, &fe) || fe.Type != tt.wantType || fe.ErrorMessage() != tt.wantMessage {
			t.Errorf("%s: got %#v, want a *FunctionError %s %q", tt.function, err, tt.wantType, tt.wantMessage)
		}
	}
}
