package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/sweep"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// nopSender is a Sender whose posts cost nothing, so that a benchmark
// measures our code and not the SDK's or the network's. It counts the
// posts, so that a benchmark can check its message was delivered.
type nopSender struct{ posts atomic.Int64 }

func (s *nopSender) Send(context.Context, string, []byte) error { s.posts.Add(1); return nil }
func (s *nopSender) Close(context.Context, string) error        { return nil }
func (s *nopSender) Status(context.Context, string) (sweep.Status, error) {
	return sweep.Status{}, nil
}

var _ handler.Sender = (*nopSender)(nil)

// BenchmarkHandlerMessage measures the CPU time and the allocations of one
// $default invocation of a warm container: one call of Handlers.Message
// with the event as the Lambda runtime hands it over (decoded from
// testdata/apigw/message.json, requestContext.authorizer carrying the
// identity that the $connect authorizer gave the connection), on the memory
// store and a sender that costs nothing, configured as template.yaml
// configures the function (MANAGEMENT_ENDPOINT set, LOG_LEVEL info, JSON
// logs). PING is answered PONG; DIRECT goes to a connected service whose
// connection the container has cached; GROUP-10 goes to a group of 10
// members, the sender not among them.
func BenchmarkHandlerMessage(b *testing.B) {
	store := memstore.New()
	snd := &nopSender{}
	h, err := handler.New(handler.Backend{
		Store:     store,
		NewSender: func(string) (handler.Sender, error) { return snd, nil },
		Settings: handler.Settings{
			ManagementEndpoint: "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod",
			LogLevel:           slog.LevelInfo,
		},
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		// As on AWS: each invocation writes its metrics (to standard
		// output there).
		Metrics: telemetry.NewEmitter(io.Discard, telemetry.DefaultNamespace),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	connect := func(connID, serviceID, group string) {
		b.Helper()
		ev := benchEvent(b, "connect", connID, serviceID, group, "")
		if _, err := h.Connect(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	connect("SenderConnID0=", "svc-sender", "senders")
	connect("TargetConnID0=", "svc-target", "targets")
	for i := range 10 {
		connect(fmt.Sprintf("MemberConnID%d=", i), fmt.Sprintf("svc-member-%d", i), "ten")
	}

	const data = `{"orderId":42,"items":["a","b"],"note":"hello"}`
	cases := []struct {
		name, body string
		wantReply  string // the response body
		wantPosts  int64
	}{
		{"PING", `{"op":3}`, `{"op":4}`, 0},
		{"DIRECT", `{"op":0,"id":"3f0c7b8e-5a2d-4c1e-9b7a-1d2e3f405162","event":"order.created","data":` + data +
			`,"intent":{"target":"DIRECT","identifier":"svc-target"}}`, "", 1},
		{"GROUP-10", `{"op":0,"id":"3f0c7b8e-5a2d-4c1e-9b7a-1d2e3f405163","event":"order.created","data":` + data +
			`,"intent":{"target":"GROUP","identifier":"ten"}}`, "", 10},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ev := benchEvent(b, "message", "SenderConnID0=", "svc-sender", "senders", tc.body)
			// Warm up (the DIRECT target's connection is cached from
			// now on) and check what one message does.
			before := snd.posts.Load()
			resp, err := h.Message(ctx, ev)
			if err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Body != tc.wantReply {
				b.Fatalf("got %d %q, want 200 %q", resp.StatusCode, resp.Body, tc.wantReply)
			}
			if got := snd.posts.Load() - before; got != tc.wantPosts {
				b.Fatalf("got %d posts, want %d", got, tc.wantPosts)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Message(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEvent returns the fixture testdata/<name>.json decoded as the Lambda
// runtime decodes it, for connection connID that the $connect authorizer
// identified as serviceID in group, with body for a message.
func benchEvent(b testing.TB, name, connID, serviceID, group, body string) events.APIGatewayWebsocketProxyRequest {
	b.Helper()
	raw, err := os.ReadFile("../../testdata/apigw/" + name + ".json")
	if err != nil {
		b.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		b.Fatal(err)
	}
	rc := ev["requestContext"].(map[string]any)
	rc["connectionId"] = connID
	rc["connectedAt"] = time.Now().UnixMilli()
	rc["requestTimeEpoch"] = time.Now().UnixMilli()
	rc["authorizer"] = map[string]any{
		"principalId":            "tok-" + strings.ToLower(group),
		handler.ContextServiceID: serviceID,
		handler.ContextGroup:     group,
		handler.ContextTokenID:   "tok-" + strings.ToLower(group),
	}
	if name == "message" {
		ev["body"] = body
	}
	out, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	var got events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(out, &got); err != nil {
		b.Fatal(err)
	}
	return got
}

func TestAnEventWithoutAManagementEndpointIsRoutedThroughItsOwnDomainAndStage(t *testing.T) {
	senders := map[string]*nopSender{}
	h, err := handler.New(handler.Backend{
		Store: memstore.New(),
		NewSender: func(endpoint string) (handler.Sender, error) {
			if senders[endpoint] != nil {
				t.Errorf("a second sender for %s", endpoint)
			}
			senders[endpoint] = &nopSender{}
			return senders[endpoint], nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	at := func(domain string, ev events.APIGatewayWebsocketProxyRequest) events.APIGatewayWebsocketProxyRequest {
		ev.RequestContext.DomainName = domain
		return ev
	}
	for _, domain := range []string{"a.example", "b.example", "a.example"} {
		from, to := "From"+domain, "To"+domain
		for _, c := range []string{from, to} {
			if _, err := h.Connect(t.Context(), at(domain, benchEvent(t, "connect", c, "svc-"+c, "g", ""))); err != nil {
				t.Fatal(err)
			}
		}
		body := `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"svc-` + to + `"}}`
		if _, err := h.Message(t.Context(), at(domain, benchEvent(t, "message", from, "svc-"+from, "g", body))); err != nil {
			t.Fatal(err)
		}
		h.Disconnect(t.Context(), at(domain, benchEvent(t, "disconnect", from, "", "", "")))
		h.Disconnect(t.Context(), at(domain, benchEvent(t, "disconnect", to, "", "", "")))
	}
	for endpoint, want := range map[string]int64{"https://a.example/prod": 2, "https://b.example/prod": 1} {
		if s := senders[endpoint]; s == nil || s.posts.Load() != want {
			t.Errorf("%s: got sender %v, want one that posted %d frames", endpoint, s, want)
		}
	}
}
