package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/client"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

func TestDialReturnsOnceIdentified(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		connected := make(chan client.ConnectEvent, 1)
		c := dial(t, g, m, "alpha", func(o *client.Options) {
			o.OnConnect = func(_ *client.Client, e client.ConnectEvent) { connected <- e }
		})
		if _, err := uuid.Parse(c.ID()); err != nil {
			t.Errorf("ID() = %q, want a UUID: %v", c.ID(), err)
		}
		if c.Group() != "alpha" || c.State() != client.StateConnected {
			t.Errorf("got group %q state %v, want alpha connected", c.Group(), c.State())
		}
		if got := g.connection(c.ID()); got == "" {
			t.Error("the server does not know the service id")
		}
		e := <-connected
		if e.ServiceID != c.ID() || e.Group != "alpha" || e.PingInterval != 30*time.Second || e.Reconnect {
			t.Errorf("OnConnect got %+v, want the first connection of %s, ping 30s", e, c.ID())
		}
	})
}

func TestDialWithABadTokenFailsAtOnceWithATypedError(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		if err := g.Store().PutToken(t.Context(), token.Token{Hash: token.HashOf("mst_beta-only"), Groups: []string{"beta"}}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name, tok, group string
			status           int // in ConnectAuth=required
		}{
			{"an unknown token", "mst_nobody", "alpha", http.StatusUnauthorized},
			{"a group the token does not allow", "mst_beta-only", "alpha", http.StatusForbidden},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := g.Stats()
				_, err := dialErr(g.URL(), m, tt.group, func(o *client.Options) { o.Token = tt.tok })
				var he *client.HandshakeError
				switch {
				case !m.off && (!errors.As(err, &he) || he.StatusCode != tt.status || !he.Terminal()):
					t.Errorf("got %v, want a terminal *HandshakeError %d", err, tt.status)
				case m.off && client.CodeOf(err) != client.CodeIdentifyFailed:
					t.Errorf("got %v, want the *ServerError IDENTIFY_FAILED", err)
				}
				after := g.Stats()
				if n := after.Invocations["ConnectFunction"] - before.Invocations["ConnectFunction"] + after.Unauthorized401 - before.Unauthorized401 + after.Forbidden403 - before.Forbidden403; n != 1 {
					t.Errorf("%d handshakes, want 1: Dial must not retry", n)
				}
			})
		}
	})
}

func TestDialChecksItsOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*client.Options)
		want string
	}{
		{"no token", func(o *client.Options) { o.Token = "" }, "Token is required"},
		{"a group that is not a group name", func(o *client.Options) { o.Group = "a b" }, "not a group name"},
		{"a message limit over API Gateway's", func(o *client.Options) { o.MaxMessageBytes = 131073 }, "MaxMessageBytes"},
		{"a jitter over 1", func(o *client.Options) { o.Backoff.Jitter = 2 }, "Jitter"},
		{"a URL that is not a WebSocket URL", nil, "want ws://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := "ws://127.0.0.1:1/dev"
			if tt.edit == nil {
				url = "ftp://example.com"
			}
			_, err := dialErr(url, modes[0], "alpha", tt.edit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestSendReachesGlobalGroupAndDirectTargets(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		inB, inC := newInbox(), newInbox()
		a := dial(t, g, m, "alpha", nil)
		b := dial(t, g, m, "alpha", func(o *client.Options) { o.Default = inB.handler() })
		c := dial(t, g, m, "gamma", func(o *client.Options) { o.Default = inC.handler() })
		ctx := timeout(t, 10*time.Second)

		type hello struct {
			N int `json:"n"`
		}
		check := func(in inbox, to client.Intent, n int) {
			t.Helper()
			got := in.next(t)
			var h hello
			if err := got.Decode(&h); err != nil || h.N != n || got.Op != client.OpEvent || got.Event != "HELLO" ||
				got.Source != (client.Source{ID: a.ID(), Group: "alpha"}) || got.Intent != to || got.ID == "" {
				t.Errorf("got %+v (data %s), want HELLO %d to %+v from %s", got, got.Data, n, to, a.ID())
			}
		}
		if err := a.Send(ctx, "HELLO", client.Global(), hello{1}); err != nil {
			t.Fatal(err)
		}
		check(inB, client.Global(), 1)
		check(inC, client.Global(), 1)
		if err := a.Send(ctx, "HELLO", client.Group("alpha"), hello{2}); err != nil {
			t.Fatal(err)
		}
		check(inB, client.Group("alpha"), 2)
		if err := a.Send(ctx, "HELLO", client.Direct(c.ID()), hello{3}); err != nil {
			t.Fatal(err)
		}
		check(inC, client.Direct(c.ID()), 3)
		inB.none(t, 200*time.Millisecond)
		inC.none(t, 0)
		_ = b
	})
}

func TestSendAckReturnsTheDeliveryReceipt(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		a := dial(t, g, m, "alpha", nil)
		b := dial(t, g, m, "alpha", nil)
		dial(t, g, m, "alpha", nil)
		dial(t, g, m, "gamma", nil)
		ctx := timeout(t, 10*time.Second)

		for _, tt := range []struct {
			name string
			to   client.Intent
			want client.Receipt
		}{
			{"GROUP: the other two members", client.Group("alpha"), client.Receipt{Delivered: 2}},
			{"GLOBAL: everyone but the sender", client.Global(), client.Receipt{Delivered: 3}},
			{"DIRECT: the one service", client.Direct(b.ID()), client.Receipt{Delivered: 1}},
			{"GROUP with no members", client.Group("nobody"), client.Receipt{}},
		} {
			got, err := a.SendAck(ctx, "COUNT", tt.to, nil)
			if err != nil || got != tt.want {
				t.Errorf("%s: got %+v, %v, want %+v", tt.name, got, err, tt.want)
			}
		}

		_, err := a.SendAck(ctx, "COUNT", client.Direct(uuid.NewString()), nil)
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != client.CodeTargetNotFound || se.Reason != "TARGET_NOT_FOUND" || se.ID == "" {
			t.Errorf("DIRECT to nobody: got %v, want the *ServerError TARGET_NOT_FOUND with the message's id", err)
		}
	})
}

func TestAReceiptCountsAMemberWhoseConnectionVanishedAsGone(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		a := dial(t, g, m, "alpha", nil)
		dial(t, g, m, "alpha", nil)
		// A member the registry still lists, whose connection the gateway
		// no longer has (a $disconnect that never came).
		ghost := uuid.NewString()
		if err := g.Store().AddConnection(t.Context(), router.Connection{
			ID: "ghost-connection=", ConnectedAt: time.Now().Add(-time.Hour), ExpiresAt: time.Now().Add(time.Hour),
			Identity: &router.Identity{ServiceID: ghost, Group: "alpha", IdentifiedAt: time.Now().Add(-time.Hour)},
		}); err != nil {
			t.Fatal(err)
		}
		ctx := timeout(t, 10*time.Second)
		if got, err := a.SendAck(ctx, "COUNT", client.Group("alpha"), nil); err != nil || got != (client.Receipt{Delivered: 1, Gone: 1}) {
			t.Errorf("GROUP with a gone member: got %+v, %v, want 1 delivered, 1 gone", got, err)
		}
		// The server forgot it: the next receipt no longer counts it.
		if got, err := a.SendAck(ctx, "COUNT", client.Global(), nil); err != nil || got != (client.Receipt{Delivered: 1}) {
			t.Errorf("GLOBAL after the gone member was forgotten: got %+v, %v, want 1 delivered", got, err)
		}
	})
}

func TestErrorsThatNoCallWaitsForReachOnError(t *testing.T) {
	g := startGateway(t, nil, "")
	var got errs
	a := dial(t, g, modes[0], "alpha", func(o *client.Options) { o.OnError = got.on })
	if err := a.Send(timeout(t, 10*time.Second), "HELLO", client.Direct("no-such-service"), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	eventually(t, "OnError gets TARGET_NOT_FOUND", func() bool { return len(got.all()) > 0 })
	var se *client.ServerError
	if err := got.all()[0]; !errors.As(err, &se) || se.Code != client.CodeTargetNotFound || se.ID == "" {
		t.Errorf("OnError got %v, want the *ServerError TARGET_NOT_FOUND with the message's id", err)
	}
}

func TestMessagesTheServerWouldRefuseAreRefusedBeforeSending(t *testing.T) {
	g := startGateway(t, nil, "")
	a := dial(t, g, modes[0], "alpha", nil)
	ctx := timeout(t, 10*time.Second)
	before := g.Stats().Invocations["MessageFunction"]
	for _, tt := range []struct {
		name  string
		event string
		to    client.Intent
		data  any
		want  client.Code
	}{
		{"over the 32 KiB limit", "BIG", client.Global(), strings.Repeat("x", 32<<10), client.CodeMessageTooBig},
		{"no event", "", client.Global(), nil, client.CodeInvalidPayload},
		{"an event of 129 characters", strings.Repeat("e", 129), client.Global(), nil, client.CodeInvalidPayload},
		{"a GROUP to a name that is not a group name", "HI", client.Group("a b"), nil, client.CodeInvalidPayload},
		{"a DIRECT to no one", "HI", client.Direct(""), nil, client.CodeInvalidPayload},
		{"an unknown target", "HI", client.Intent{Target: "EVERYONE"}, nil, client.CodeInvalidPayload},
	} {
		err := a.Send(ctx, tt.event, tt.to, tt.data)
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != tt.want || se.Reason != tt.want.String() {
			t.Errorf("%s: got %v, want the *ServerError %s", tt.name, err, tt.want)
		}
	}
	if _, err := a.SendAck(ctx, "PING", client.Global(), nil); err != nil { // a round trip, so that anything sent has been handled
		t.Fatal(err)
	}
	if n := g.Stats().Invocations["MessageFunction"] - before; n != 1 {
		t.Errorf("the message function ran %d times, want once (for the check): refused messages must not be sent", n)
	}
}

func TestAMessageOverTheFrameLimitIsSentInFramesAndDeliveredWhole(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		params := map[string]string{"MaxMessageBytes": "131072"}
		for k, v := range m.params {
			params[k] = v
		}
		g := startGateway(t, params, "")
		p := newProxy(t, g.Addr())
		in := newInbox()
		big := func(o *client.Options) { o.MaxMessageBytes = 131072 }
		a, err := dialErr(p.url(g.URL()), m, "alpha", big)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { a.Close(); a.Wait() }()
		dial(t, g, m, "alpha", func(o *client.Options) { big(o); o.Default = in.handler() })
		ctx := timeout(t, 10*time.Second)

		// What SendAck writes around its data.
		envelope := len(`{"op":0,"id":"` + uuid.NewString() + `","event":"BIG","data":"","intent":{"target":"GROUP","identifier":"alpha"},"ack":true}`)
		for _, tt := range []struct {
			name   string
			size   int   // of the message
			frames []int // the lengths of its frames
		}{
			{"a message of exactly one frame", 32 << 10, []int{32 << 10}},
			{"one byte more", 32<<10 + 1, []int{32 << 10, 1, 0}},
			{"100 KB", 100_000, []int{32 << 10, 32 << 10, 32 << 10, 100_000 - 3*32<<10, 0}},
			// Delivered without "ack":true, with "source" (60 bytes more):
			// the most the server delivers is 128 KiB.
			{"the largest message deliverable", 128<<10 - 60, []int{32 << 10, 32 << 10, 32 << 10, 32<<10 - 60, 0}},
		} {
			p.sent()
			data := strings.Repeat("y", tt.size-envelope)
			r, err := a.SendAck(ctx, "BIG", client.Group("alpha"), data)
			if err != nil || r.Delivered != 1 {
				t.Fatalf("%s: got %+v, %v, want delivered to 1", tt.name, r, err)
			}
			got := in.next(t)
			var s string
			if err := got.Decode(&s); err != nil || s != data {
				t.Fatalf("%s: got %d bytes of data (%v), want %d", tt.name, len(s), err, len(data))
			}
			var lengths []int
			for i, f := range p.sent() {
				if f.opcode > 2 {
					continue // control frames
				}
				lengths = append(lengths, f.length)
				if wantOp := byte(0); i == 0 && f.opcode != 1 || i > 0 && f.opcode != wantOp {
					t.Errorf("%s: frame %d has opcode %d", tt.name, i, f.opcode)
				}
				if f.fin != (len(lengths) == len(tt.frames)) {
					t.Errorf("%s: frame %d fin=%v", tt.name, i, f.fin)
				}
			}
			if fmt.Sprint(lengths) != fmt.Sprint(tt.frames) {
				t.Errorf("%s: sent frames of %v bytes, want %v", tt.name, lengths, tt.frames)
			}
		}
		// 128 KiB is accepted, in frames, but too big to deliver once
		// stamped with its source: the server says so, about this message.
		_, err = a.SendAck(ctx, "BIG", client.Group("alpha"), strings.Repeat("y", 128<<10-envelope))
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != client.CodeMessageTooBig || se.ID == "" || !strings.Contains(se.Message, "stamped with its source") {
			t.Errorf("a message of 128 KiB: got %v, want the server's MESSAGE_TOO_BIG about it", err)
		}
		// Over the limit the client is configured with: refused locally.
		if _, err := a.SendAck(ctx, "BIG", client.Group("alpha"), strings.Repeat("z", 128<<10)); client.CodeOf(err) != client.CodeMessageTooBig {
			t.Errorf("128 KiB of data: got %v, want MESSAGE_TOO_BIG", err)
		}
	})
}

func TestHandlersAreChosenByEventName(t *testing.T) {
	g := startGateway(t, nil, "")
	named, other := newInbox(), newInbox()
	a := dial(t, g, modes[0], "alpha", nil)
	dial(t, g, modes[0], "alpha", func(o *client.Options) {
		o.Handlers = map[string]client.Handler{"NAMED": named.handler()}
		o.Default = other.handler()
	})
	ctx := timeout(t, 10*time.Second)
	for _, ev := range []string{"NAMED", "OTHER"} {
		if _, err := a.SendAck(ctx, ev, client.Group("alpha"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := named.next(t); got.Event != "NAMED" {
		t.Errorf("the NAMED handler got %q", got.Event)
	}
	if got := other.next(t); got.Event != "OTHER" {
		t.Errorf("the default handler got %q", got.Event)
	}
}

func TestHandlersRunOneAtATimeUnlessToldOtherwise(t *testing.T) {
	for _, tt := range []struct {
		concurrency, want int
	}{{0, 1}, {4, 4}} {
		t.Run(fmt.Sprintf("HandlerConcurrency %d", tt.concurrency), func(t *testing.T) {
			g := startGateway(t, nil, "")
			var running, peak, handled atomic.Int32
			a := dial(t, g, modes[0], "alpha", nil)
			dial(t, g, modes[0], "alpha", func(o *client.Options) {
				o.HandlerConcurrency = tt.concurrency
				o.Default = func(context.Context, *client.Client, *client.Message) {
					n := running.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(50 * time.Millisecond)
					running.Add(-1)
					handled.Add(1)
				}
			})
			for range 8 {
				if _, err := a.SendAck(timeout(t, 10*time.Second), "WORK", client.Group("alpha"), nil); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, "8 messages handled", func() bool { return handled.Load() == 8 })
			if got := int(peak.Load()); got != tt.want {
				t.Errorf("at most %d handlers ran at once, want %d", got, tt.want)
			}
		})
	}
}

// responders joins n services to group that answer ASK: odd ones with a
// REPLY, even ones as the Master Socket Server README's INFO does, with an
// EVENT sent DIRECT to the asker that keeps the request's id.
func responders(t *testing.T, g *gateway, m mode, group string, n int) {
	t.Helper()
	for i := range n {
		dial(t, g, m, group, func(o *client.Options) {
			o.Handlers = map[string]client.Handler{"ASK": func(ctx context.Context, c *client.Client, msg *client.Message) {
				if i%2 == 1 {
					c.Reply(ctx, msg, map[string]int{"n": i})
					return
				}
				c.SendID(ctx, msg.ID, "ASK", client.Direct(msg.Source.ID), map[string]int{"n": i})
			}}
		})
	}
}

func TestRequestCollectsEveryAnswerTheReceiptAnnounces(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		asker := dial(t, g, m, "askers", nil)
		responders(t, g, m, "damon", 3)
		start := time.Now()
		got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Group("damon"), nil)
		if err != nil {
			t.Fatalf("Request: %v", err)
		}
		if got.Receipt == nil || *got.Receipt != (client.Receipt{Delivered: 3}) || len(got.Messages) != 3 {
			t.Fatalf("got %d answers and receipt %v, want 3 and 3 delivered", len(got.Messages), got.Receipt)
		}
		ns := map[int]bool{}
		for _, a := range got.Messages {
			var d struct{ N int }
			if a.ID != got.ID || a.Decode(&d) != nil || a.Source.Group != "damon" {
				t.Errorf("answer %+v: want id %s from damon", a, got.ID)
			}
			if want := client.OpReply; d.N%2 == 0 {
				want = client.OpEvent
				if a.Op != want {
					t.Errorf("answer %d is a %s, want an EVENT", d.N, a.Op)
				}
			} else if a.Op != want {
				t.Errorf("answer %d is a %s, want a REPLY", d.N, a.Op)
			}
			ns[d.N] = true
		}
		if len(ns) != 3 {
			t.Errorf("answers from %v, want 0, 1 and 2", ns)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Request took %v: it should end once the answers are in", d)
		}
	})
}

// A group bigger than the server's inline fan-out is partly handed to the
// fan-out function: the receipt says how many were queued, and Request
// waits for their answers too.
func TestRequestToABigGroupWaitsForTheQueuedRecipientsToo(t *testing.T) {
	params := map[string]string{"InlineFanOutMax": "2"}
	g := startGateway(t, params, "")
	m := modes[0]
	asker := dial(t, g, m, "askers", nil)
	responders(t, g, m, "crowd", 6)
	got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Group("crowd"), nil)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if got.Receipt == nil || *got.Receipt != (client.Receipt{Delivered: 2, Queued: 4}) || len(got.Messages) != 6 {
		t.Fatalf("got %d answers and receipt %v, want 6, with 2 delivered and 4 queued", len(got.Messages), got.Receipt)
	}
}

func TestRequestReturnsTheAnswersSoFarWhenItsContextEnds(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	responders(t, g, modes[0], "damon", 2)
	dial(t, g, modes[0], "damon", nil) // never answers
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, err := asker.Request(ctx, "ASK", client.Group("damon"), nil)
	if !errors.Is(err, context.DeadlineExceeded) || len(got.Messages) != 2 || got.Receipt == nil || got.Receipt.Delivered != 3 {
		t.Errorf("got %d answers, receipt %v, %v; want 2 answers of 3 and the deadline", len(got.Messages), got.Receipt, err)
	}
}

func TestRequestToAServiceThatIsNotConnectedFailsWithTargetNotFound(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Direct(uuid.NewString()), nil)
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != client.CodeTargetNotFound || se.ID != got.ID {
		t.Errorf("got %v, want TARGET_NOT_FOUND about %s", err, got.ID)
	}
}

func TestRequestToAnEmptyGroupEndsAtOnce(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Group("empty"), nil)
	if err != nil || len(got.Messages) != 0 || got.Receipt == nil || *got.Receipt != (client.Receipt{}) {
		t.Errorf("got %+v, %v; want no answers, a zero receipt and no error", got, err)
	}
}

func TestAskYieldsTheAnswersAsTheyArrive(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	responders(t, g, modes[0], "damon", 4)
	call, err := asker.Ask(timeout(t, 10*time.Second), "ASK", client.Group("damon"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	n := 0
	for call.Next() {
		if m := call.Message(); m.ID != call.ID() {
			t.Errorf("answer id %s, want %s", m.ID, call.ID())
		}
		n++
	}
	r, ok := call.Receipt()
	if call.Err() != nil || n != 4 || !ok || r.Delivered != 4 {
		t.Errorf("got %d answers, receipt %+v %v, err %v; want 4 of 4", n, r, ok, call.Err())
	}
}

func TestLateAnswersDoNotReachTheHandlers(t *testing.T) {
	g := startGateway(t, nil, "")
	in := newInbox()
	asker := dial(t, g, modes[0], "askers", func(o *client.Options) { o.Default = in.handler() })
	dial(t, g, modes[0], "damon", func(o *client.Options) {
		o.Default = func(ctx context.Context, c *client.Client, m *client.Message) {
			c.Reply(ctx, m, 1)
			c.Reply(ctx, m, 2) // one more than the receipt announces
		}
	})
	got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Group("damon"), nil)
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("got %d answers, %v; want 1", len(got.Messages), err)
	}
	in.none(t, 300*time.Millisecond)
}

func TestReplyKeepsTheRequestsIDAndGoesToItsSender(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	acks := make(chan error, 1)
	b := dial(t, g, modes[0], "damon", func(o *client.Options) {
		o.Default = func(ctx context.Context, c *client.Client, m *client.Message) {
			r, err := c.ReplyAck(ctx, m, "pong")
			if err == nil && r.Delivered != 1 {
				err = fmt.Errorf("receipt %+v", r)
			}
			acks <- err
		}
	})
	got, err := asker.Request(timeout(t, 10*time.Second), "ASK", client.Direct(b.ID()), nil)
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("got %+v, %v", got, err)
	}
	a := got.Messages[0]
	if a.Op != client.OpReply || a.ID != got.ID || a.Intent != client.Direct(asker.ID()) || a.Source.ID != b.ID() || string(a.Data) != `"pong"` {
		t.Errorf("got %+v, want a REPLY with id %s DIRECT to the asker", a, got.ID)
	}
	if err := <-acks; err != nil {
		t.Errorf("ReplyAck: %v", err)
	}
	if err := b.Reply(t.Context(), &client.Message{ID: "x"}, nil); err == nil {
		t.Error("Reply to a message with no source: got no error")
	}
}

func TestReplyAckToAnAskerThatLeftFailsWithTargetNotFound(t *testing.T) {
	g := startGateway(t, nil, "")
	b := dial(t, g, modes[0], "damon", nil)
	msg := &client.Message{ID: "q1", Op: client.OpEvent, Event: "ASK", Source: client.Source{ID: uuid.NewString(), Group: "askers"}}
	if _, err := b.ReplyAck(timeout(t, 10*time.Second), msg, nil); client.CodeOf(err) != client.CodeTargetNotFound {
		t.Errorf("got %v, want TARGET_NOT_FOUND", err)
	}
}

func TestRequestFromInsideAHandlerDoesNotDeadlock(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		responders(t, g, m, "damon", 2)
		// The relay asks damon from inside its handler, then answers with
		// what it collected.
		relay := dial(t, g, m, "relay", func(o *client.Options) {
			o.Default = func(ctx context.Context, c *client.Client, msg *client.Message) {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				got, err := c.Request(ctx, "ASK", client.Group("damon"), nil)
				if err != nil {
					c.Reply(ctx, msg, err.Error())
					return
				}
				c.Reply(ctx, msg, len(got.Messages))
			}
		})
		asker := dial(t, g, m, "askers", nil)
		got, err := asker.Request(timeout(t, 10*time.Second), "RELAY", client.Direct(relay.ID()), nil)
		if err != nil || len(got.Messages) != 1 || string(got.Messages[0].Data) != "2" {
			t.Fatalf("got %+v, %v; want the relay's answer 2", got.Messages, err)
		}
	})
}

func TestCloseFromInsideAHandler(t *testing.T) {
	g := startGateway(t, nil, "")
	closed := make(chan error, 1)
	a := dial(t, g, modes[0], "alpha", nil)
	b := dial(t, g, modes[0], "alpha", func(o *client.Options) {
		o.Default = func(_ context.Context, c *client.Client, _ *client.Message) { closed <- c.Close() }
	})
	if err := a.Send(timeout(t, 10*time.Second), "BYE", client.Direct(b.ID()), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a handler did not return")
	}
	if err := b.Wait(); err != nil {
		t.Errorf("Wait after Close: %v, want nil", err)
	}
	if b.State() != client.StateClosed {
		t.Errorf("state %v, want closed", b.State())
	}
	if err := b.Send(t.Context(), "HI", client.Global(), nil); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	eventually(t, "the server forgets the closed client", func() bool {
		_, err := g.Store().ServiceConnection(t.Context(), b.ID())
		return errors.Is(err, router.ErrNotFound)
	})
}

func TestCloseEndsCallsInFlight(t *testing.T) {
	g := startGateway(t, nil, "")
	asker := dial(t, g, modes[0], "askers", nil)
	dial(t, g, modes[0], "damon", nil) // never answers
	done := make(chan error, 1)
	go func() {
		_, err := asker.Request(context.Background(), "ASK", client.Group("damon"), nil)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	asker.Close()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Request still waiting after Close")
	}
}

func TestCloseAndWaitLeaveNoGoroutineBehind(t *testing.T) {
	g := startGateway(t, nil, "")
	running := make(chan struct{})
	a := dial(t, g, modes[0], "alpha", nil)
	b, err := dialErr(g.URL(), modes[0], "alpha", func(o *client.Options) {
		o.HandlerConcurrency = 3
		o.Default = func(ctx context.Context, _ *client.Client, _ *client.Message) {
			close(running)
			<-ctx.Done() // a handler that runs until the client stops
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(t.Context(), "HOLD", client.Direct(b.ID()), nil); err != nil {
		t.Fatal(err)
	}
	<-running
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Wait()
	if n := clientGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the client left after Close and Wait:\n%s", n, stacks())
	}
}

func TestAHundredClientsDialAndSendAtOnce(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		g := startGateway(t, m.params, "")
		var heard atomic.Int32
		dial(t, g, m, "listeners", func(o *client.Options) {
			o.Default = func(context.Context, *client.Client, *client.Message) { heard.Add(1) }
		})
		const n = 100
		var wg sync.WaitGroup
		var fails errs
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := dialErr(g.URL(), m, "senders", func(o *client.Options) { o.OnError = fails.on })
				if err != nil {
					fails.on(nil, fmt.Errorf("client %d: Dial: %w", i, err))
					return
				}
				defer func() { c.Close(); c.Wait() }()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if r, err := c.SendAck(ctx, "HI", client.Group("listeners"), i); err != nil || r.Delivered != 1 {
					fails.on(c, fmt.Errorf("client %d: SendAck: %+v, %w", i, r, err))
				}
			}()
		}
		wg.Wait()
		for _, err := range fails.all() {
			t.Error(err)
		}
		eventually(t, "the listener hears all 100", func() bool { return heard.Load() == n })
		if s := g.logs.String(); strings.Contains(s, "UNAUTHORIZED") {
			t.Error("the gateway answered UNAUTHORIZED")
		}
	})
}

func TestDialingInTheOtherModeSaysSo(t *testing.T) {
	for _, m := range modes {
		t.Run("a client of "+m.name, func(t *testing.T) {
			other := modes[0]
			if !m.off {
				other = modes[1]
			}
			g := startGateway(t, other.params, "")
			_, err := dialErr(g.URL(), m, "alpha", nil)
			if err == nil || !strings.Contains(err.Error(), "IdentifyAfterConnect") {
				t.Errorf("got %v, want a hint at Options.IdentifyAfterConnect", err)
			}
			var he *client.HandshakeError
			if !errors.As(err, &he) && client.CodeOf(err) != client.CodeIdentifyFailed {
				t.Errorf("got %v, want the typed error still", err)
			}
		})
	}
}

// slowIdentify records an IDENTIFY, says so, and only then lets the
// server answer it, a while later.
type slowIdentify struct {
	handler.Store
	recorded chan struct{}
}

func (s slowIdentify) Identify(ctx context.Context, c router.Connection) error {
	err := s.Store.Identify(ctx, c)
	s.recorded <- struct{}{}
	time.Sleep(300 * time.Millisecond)
	return err
}

func TestMessagesThatComeBeforeTheIdentifyAnswerWaitForIt(t *testing.T) {
	recorded := make(chan struct{}, 10)
	g := startGatewayWith(t, modes[1].params, "", func(o *localrun.Options) {
		o.WrapStore = func(s handler.Store) handler.Store { return slowIdentify{s, recorded} }
	})
	sender := dial(t, g, modes[1], "senders", nil)
	<-recorded
	in := make(chan string, 10)
	dialed := make(chan *client.Client, 1)
	go func() {
		c, err := dialErr(g.URL(), modes[1], "early", func(o *client.Options) {
			o.Default = func(_ context.Context, c *client.Client, m *client.Message) { in <- c.ID() }
		})
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	<-recorded // a member of its group now; the IDENTIFY answer comes in 300 ms
	if r, err := sender.SendAck(timeout(t, 10*time.Second), "EARLY", client.Group("early"), nil); err != nil || r.Delivered != 1 {
		t.Fatalf("got %+v, %v, want delivered to the member still waiting for its IDENTIFY answer", r, err)
	}
	c := <-dialed
	if c == nil {
		return
	}
	defer func() { c.Close(); c.Wait() }()
	select {
	case id := <-in:
		if id == "" || id != c.ID() {
			t.Errorf("the handler saw the service id %q, want %q", id, c.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message that came before the IDENTIFY answer was never handled")
	}
}
