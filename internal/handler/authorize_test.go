package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/storetest"
	"github.com/mastersocket/mastersocket/internal/token"
)

// authorizerEvent returns testdata/apigw/authorizer.json (AWS's example
// input) with its headers and query string replaced by those given (nil
// keeps the fixture's).
func authorizerEvent(t testing.TB, connID string, headers map[string]string, query map[string]string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/apigw/authorizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["requestContext"].(map[string]any)["connectionId"] = connID
	if headers != nil {
		mv := map[string][]string{}
		for k, v := range headers {
			mv[k] = []string{v}
		}
		ev["headers"], ev["multiValueHeaders"] = headers, mv
	}
	if query != nil {
		mv := map[string][]string{}
		for k, v := range query {
			mv[k] = []string{v}
		}
		ev["queryStringParameters"], ev["multiValueQueryStringParameters"] = query, mv
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// authorize runs the authorizer as Lambda does and returns its response,
// or the error message Lambda would report.
func authorize(t testing.TB, h *handler.Handlers, payload []byte) (events.APIGatewayCustomAuthorizerResponse, error) {
	t.Helper()
	var resp events.APIGatewayCustomAuthorizerResponse
	out, err := lambda.NewHandler(h.Authorize).Invoke(context.Background(), payload)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("authorizer response %s: %v", out, err)
	}
	return resp, nil
}

func TestTheAuthorizerAnswersAsAPIGatewayExpects(t *testing.T) {
	arn := "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/$connect"
	tests := []struct {
		name    string
		headers map[string]string
		query   map[string]string
		// want: "Allow", "Deny" or "Unauthorized" (the error message).
		want string
	}{
		{"a valid bearer token and group are allowed", map[string]string{"Authorization": "Bearer " + testToken, "X-Mastersocket-Group": "edge"}, nil, "Allow"},
		{"the group may be in the query string", map[string]string{"Authorization": "Bearer " + testToken}, map[string]string{"group": "edge"}, "Allow"},
		{"a browser's subprotocol token is allowed",
			map[string]string{"Sec-WebSocket-Protocol": "mastersocket, bearer." + testToken}, map[string]string{"group": "edge"}, "Allow"},
		{"no credentials are Unauthorized", map[string]string{"Host": "x"}, map[string]string{"group": "edge"}, "Unauthorized"},
		{"an unknown token is Unauthorized", map[string]string{"Authorization": "Bearer mst_nobody", "X-Mastersocket-Group": "edge"}, nil, "Unauthorized"},
		{"a group the token does not allow is denied",
			map[string]string{"Authorization": "Bearer mst_edge-only", "X-Mastersocket-Group": "core"}, nil, "Deny"},
		{"no group is denied", map[string]string{"Authorization": "Bearer " + testToken}, nil, "Deny"},
	}
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			putToken(t, store)
			if err := store.PutToken(t.Context(), token.Token{Hash: token.HashOf("mst_edge-only"), Groups: []string{"edge"}}); err != nil {
				t.Fatal(err)
			}
			h := newHandlers(t, store, newMgmtServer(t))
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, err := authorize(t, h, authorizerEvent(t, "CdmAuth00001Q=", tt.headers, tt.query))
					if tt.want == "Unauthorized" {
						if err == nil || err.Error() != "Unauthorized" {
							t.Fatalf("got %+v, %v; want the error Unauthorized (401)", resp, err)
						}
						return
					}
					if err != nil {
						t.Fatalf("got error %v, want %s", err, tt.want)
					}
					st := resp.PolicyDocument.Statement
					if resp.PrincipalID == "" || len(st) != 1 || st[0].Effect != tt.want ||
						fmt.Sprint(st[0].Action) != "[execute-api:Invoke]" || fmt.Sprint(st[0].Resource) != "["+arn+"]" {
						t.Fatalf("got %+v, want %s of execute-api:Invoke on %s", resp, tt.want, arn)
					}
					if tt.want == "Deny" {
						if len(resp.Context) != 0 {
							t.Errorf("a denial carries a context %v", resp.Context)
						}
						return
					}
					sid, _ := resp.Context["serviceId"].(string)
					if resp.Context["group"] != "edge" || len(sid) != 36 || resp.Context["tokenId"] != resp.PrincipalID {
						t.Errorf("got context %v and principal %q, want group edge, a UUID service id and the token id", resp.Context, resp.PrincipalID)
					}
				})
			}
		})
	}
}

// countingStore counts the reads of connections.
type countingStore struct {
	storetest.Store
	connReads atomic.Int64
}

func (s *countingStore) Connection(ctx context.Context, connID string) (router.Connection, error) {
	s.connReads.Add(1)
	return s.Store.Connection(ctx, connID)
}

// connectAuthorized runs the authorizer then $connect with its context, as
// API Gateway does for a handshake with credentials.
func connectAuthorized(t testing.TB, h *handler.Handlers, group string) *client {
	t.Helper()
	c := connect0(t, h)
	resp, err := authorize(t, h, authorizerEvent(t, c.id, map[string]string{
		"Authorization": "Bearer " + testToken, "Sec-WebSocket-Protocol": "mastersocket, bearer." + testToken,
	}, map[string]string{"group": group}))
	if err != nil || resp.PolicyDocument.Statement[0].Effect != "Allow" {
		t.Fatalf("authorizer: %+v, %v", resp, err)
	}
	c.authorizer = map[string]any{"principalId": resp.PrincipalID}
	for k, v := range resp.Context {
		c.authorizer[k] = v
	}
	c.serviceID = resp.Context["serviceId"].(string)
	var ev map[string]any
	json.Unmarshal(event(t, "connect", c.id, c.at, ""), &ev)
	ev["requestContext"].(map[string]any)["authorizer"] = c.authorizer
	ev["headers"].(map[string]any)["Sec-WebSocket-Protocol"] = "mastersocket, bearer." + testToken
	ev["multiValueHeaders"].(map[string]any)["Sec-WebSocket-Protocol"] = []string{"mastersocket, bearer." + testToken}
	payload, _ := json.Marshal(ev)
	cr, err := invoke(t, h.Connect, payload)
	if err != nil || cr.StatusCode != 200 {
		t.Fatalf("$connect: %+v, %v", cr, err)
	}
	if got := cr.Headers["Sec-WebSocket-Protocol"]; got != "mastersocket" {
		t.Errorf("$connect selected the subprotocol %q, want mastersocket (and never the token)", got)
	}
	return c
}

func TestAConnectionAuthorizedAtTheHandshakeIsIdentifiedFromItsFirstMessage(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := &countingStore{Store: open(t)}
			putToken(t, store)
			m := newMgmtServer(t)
			connectFn := newHandlers(t, store, m)
			messageFn := newHandlers(t, store, m) // another container: nothing cached
			a := connectAuthorized(t, connectFn, "edge")
			b := connectAuthorized(t, connectFn, "edge")
			a.h, b.h = messageFn, messageFn

			// No IDENTIFY, no wait: the first message is routed.
			if f := a.send(`{"op":0,"id":"first","event":"HI","intent":{"target":"GROUP","identifier":"edge"}}`); f != nil {
				t.Fatalf("EVENT answered %+v", f)
			}
			got := m.frames(t, b.id)
			if len(got) != 1 || got[0].ID != "first" || got[0].Source == nil || got[0].Source.ID != a.serviceID || got[0].Source.Group != "edge" {
				t.Fatalf("b got %+v, want the EVENT from %s", got, a.serviceID)
			}
			if n := store.connReads.Load(); n != 0 {
				t.Errorf("routing read the sender's connection %d times, want 0: the authorizer context says who it is", n)
			}
			// DIRECT reaches the service id the authorizer gave.
			m.reset()
			b.send(`{"op":0,"event":"D","intent":{"target":"DIRECT","identifier":"` + a.serviceID + `"}}`)
			if got := m.frames(t, a.id); len(got) != 1 || got[0].Event != "D" {
				t.Fatalf("DIRECT to the authorizer's service id: a got %+v", got)
			}

			// IDENTIFY without a token: who am I.
			for _, body := range []string{`{"op":1,"id":"w"}`, `{"op":1,"id":"w","data":{}}`, `{"op":1,"id":"w","data":{"group":"edge"}}`} {
				f := a.send(body)
				var d protocol.IdentifiedData
				if f == nil || f.Op != protocol.OpIdentify || f.ID != "w" || json.Unmarshal(f.Data, &d) != nil ||
					d.ID != a.serviceID || d.Group != "edge" || d.Ping != 15000 {
					t.Errorf("%s: got %+v, want the identity %s in edge, ping 15000", body, f, a.serviceID)
				}
			}
			if f := a.send(`{"op":1,"id":"w","data":{"group":"other"}}`); f == nil || f.Op != protocol.OpError || !strings.Contains(string(f.Data), "4005") {
				t.Errorf("who am I naming another group: got %+v, want ALREADY_IDENTIFIED", f)
			}
			// IDENTIFY with a token: the connection has its identity already.
			if f := a.send(`{"op":1,"id":"t","data":{"token":"` + testToken + `","group":"edge"}}`); f == nil || f.Op != protocol.OpError || !strings.Contains(string(f.Data), "4005") {
				t.Errorf("IDENTIFY with a token: got %+v, want ALREADY_IDENTIFIED", f)
			}

			// $disconnect removes it whole.
			a.disconnect(m)
			if _, err := store.ServiceConnection(t.Context(), a.serviceID); err == nil {
				t.Error("the service of a disconnected connection is still reachable")
			}
		})
	}
}

func TestWhoAmIOnAnAnonymousConnectionFailsLikeAMissingToken(t *testing.T) {
	store := newStoreWithToken(t)
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	c := connect(t, h)
	if f := c.send(`{"op":1,"id":"w"}`); f != nil {
		t.Fatalf("got %+v, want no answer (a DISCONNECT is posted)", f)
	}
	got := m.frames(t, c.id)
	if len(got) != 1 || got[0].Op != protocol.OpDisconnect || !strings.Contains(string(got[0].Data), "4004") {
		t.Errorf("got %+v, want DISCONNECT IDENTIFY_FAILED", got)
	}
}

func TestAnIncompleteAuthorizerContextRefusesTheHandshake(t *testing.T) {
	store := newStoreWithToken(t)
	h := newHandlers(t, store, newMgmtServer(t))
	var ev map[string]any
	json.Unmarshal(event(t, "connect", "CdmBadCtx001Q=", time.Now(), ""), &ev)
	ev["requestContext"].(map[string]any)["authorizer"] = map[string]any{"principalId": "x", "serviceId": "s1", "group": 7}
	payload, _ := json.Marshal(ev)
	if resp, err := invoke(t, h.Connect, payload); err == nil {
		t.Fatalf("got %+v, want an error (API Gateway answers 502)", resp)
	}
	if _, err := store.Connection(t.Context(), "CdmBadCtx001Q="); err == nil {
		t.Error("a connection was recorded")
	}
}

func newStoreWithToken(t *testing.T) storetest.Store {
	t.Helper()
	s := stores(t)["memory"](t)
	putToken(t, s)
	return s
}

// The authorizer's policy in template.yaml grants exactly what it does on
// DynamoDB: one GetItem of the token, on the table, and nothing else.
func TestAuthorizerPolicyIsWhatItDoes(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	setup, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	putToken(t, setup)
	rec := &countingAPI{API: db, calls: map[string]int{}}
	st, err := dynamostore.New(rec, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	h := newHandlers(t, st, newMgmtServer(t))
	for _, hdr := range []map[string]string{
		{"Authorization": "Bearer " + testToken, "X-Mastersocket-Group": "edge"}, // allowed
		{"Authorization": "Bearer mst_nobody", "X-Mastersocket-Group": "edge"},   // unknown
	} {
		authorize(t, h, authorizerEvent(t, "CdmPolicy0001Q=", hdr, nil))
	}
	var did []string
	for op, n := range rec.take() {
		did = append(did, fmt.Sprintf("dynamodb:%s on table ×%d", op, n))
	}
	tmpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var granted []string
	for _, p := range tmpl.Functions()["AuthorizerFunction"].Policies {
		if p.Template != "" || p.Managed != "" {
			t.Errorf("the authorizer's policies include %v: want only its own statements", p.Raw)
		}
		for _, s := range p.Statements {
			for _, a := range s.Action {
				for _, r := range s.Resource {
					granted = append(granted, a+" on "+r)
				}
			}
		}
	}
	if want := []string{"dynamodb:GetItem on table ×2"}; !slices.Equal(did, want) {
		t.Errorf("two handshakes with two tokens made %v, want %v", did, want)
	}
	if want := []string{"dynamodb:GetItem on getatt:Table.Arn"}; !slices.Equal(granted, want) {
		t.Errorf("the authorizer's policy grants %v, want %v", granted, want)
	}
}
