package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
)

// lambdaQueue is a fake Dispatcher: it encodes each batch as the message
// function would send it, and delivers it on another router (another
// invocation) in the background, as Lambda runs an asynchronous invocation.
type lambdaQueue struct {
	t       *testing.T
	deliver func() *router.Router // the fan-out function's router
	refuse  error

	mu      sync.Mutex
	batches []router.Batch
	reports []router.BatchReport
	wg      sync.WaitGroup
}

func (q *lambdaQueue) Dispatch(ctx context.Context, b router.Batch) error {
	if q.refuse != nil {
		return q.refuse
	}
	payload, err := b.Encode()
	if err != nil {
		return err
	}
	var got router.Batch
	if err := json.Unmarshal(payload, &got); err != nil {
		q.t.Errorf("batch payload %.200s does not decode: %v", payload, err)
		return err
	}
	q.mu.Lock()
	q.batches = append(q.batches, got)
	q.mu.Unlock()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		rep, err := q.deliver().DeliverBatch(context.Background(), got)
		if err != nil {
			q.t.Errorf("DeliverBatch: %v", err)
		}
		q.mu.Lock()
		q.reports = append(q.reports, rep)
		q.mu.Unlock()
	}()
	return nil
}

// fanOutEnv is a router whose big fan-outs go through a lambdaQueue to a
// second router on the same store and gateway.
func fanOutEnv(t *testing.T, cfg router.Config) (*env, *lambdaQueue) {
	t.Helper()
	q := &lambdaQueue{t: t}
	cfg.Dispatcher = q
	cfg.Gateway = "https://api.example/prod"
	e := newEnv(t, cfg)
	fn, err := router.New(e.store, e.sender, router.Config{Gateway: cfg.Gateway, Dispatcher: q, MaxBatchAttempts: cfg.MaxBatchAttempts,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	q.deliver = func() *router.Router { return fn }
	return e, q
}

func TestABigFanOutIsHandedOnInBatchesThatDeliverEveryRecipientOnce(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{InlineFanOut: 5, BatchSize: 7, PostRate: 3000})
	from := e.join("g")
	var members []*conn
	for range 25 {
		members = append(members, e.join("g"))
	}
	e.join("other")

	f := from.send(`{"op":0,"id":"m1","event":"E","ack":true,"data":"<b>&</b>  spaced","intent":{"target":"GROUP","identifier":"g"}}`)
	if got, want := receipt(t, f, "m1"), (protocol.Receipt{Delivered: 5, Queued: 20}); got != want {
		t.Errorf("receipt: got %+v, want %+v", got, want)
	}
	q.wg.Wait()

	if len(q.batches) != 3 {
		t.Fatalf("got %d batches, want 3 (20 recipients in batches of 7)", len(q.batches))
	}
	for _, b := range q.batches {
		if b.Rate != 1000 || b.Attempt != 1 || b.ID != "m1" || b.Gateway != "https://api.example/prod" {
			t.Errorf("batch: got rate %v, attempt %d, id %q, gateway %q; want 1000 (3000/3), 1, m1 and the router's gateway",
				b.Rate, b.Attempt, b.ID, b.Gateway)
		}
	}
	var want []byte
	for _, m := range members {
		got := e.sender.raw(m.id)
		if len(got) != 1 {
			t.Fatalf("member %s received %d frames, want 1", m.id, len(got))
		}
		if want == nil {
			want = got[0]
		} else if string(got[0]) != string(want) {
			t.Errorf("a batch recipient got %s, an inline one %s: want the same bytes", got[0], want)
		}
	}
	if len(e.sender.raw(from.id)) != 0 {
		t.Error("the sender received its own message")
	}
	var delivered int
	for _, r := range q.reports {
		delivered += r.Delivered
	}
	if delivered != 20 {
		t.Errorf("batches delivered %d, want 20", delivered)
	}
}

func TestASmallFanOutStaysInline(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{InlineFanOut: 10})
	from := e.join("g")
	for range 10 {
		e.join("g")
	}
	f := from.send(`{"op":0,"id":"m","event":"E","ack":true,"intent":{"target":"GLOBAL"}}`)
	if got, want := receipt(t, f, "m"), (protocol.Receipt{Delivered: 10}); got != want {
		t.Errorf("receipt: got %+v, want %+v", got, want)
	}
	if len(q.batches) != 0 {
		t.Errorf("got %d batches, want none at the threshold", len(q.batches))
	}
}

func TestBatchesRefusedByTheDispatcherAreDeliveredInline(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{InlineFanOut: 2, BatchSize: 3})
	q.refuse = errors.New("TooManyRequestsException")
	from := e.join("g")
	var members []*conn
	for range 9 {
		members = append(members, e.join("g"))
	}
	f := from.send(`{"op":0,"id":"m","event":"E","ack":true,"intent":{"target":"GROUP","identifier":"g"}}`)
	if got, want := receipt(t, f, "m"), (protocol.Receipt{Delivered: 9}); got != want {
		t.Errorf("receipt: got %+v, want %+v", got, want)
	}
	for _, m := range members {
		if n := len(e.sender.raw(m.id)); n != 1 {
			t.Errorf("member %s received %d frames, want 1", m.id, n)
		}
	}
}

func TestRefusedBatchesThatRunOutOfTimeCountAsFailed(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{InlineFanOut: 1, FanOut: 1, DeliveryTimeout: 30 * time.Millisecond})
	q.refuse = errors.New("TooManyRequestsException")
	e.sender.delay = 100 * time.Millisecond // the one post in flight outlasts the delivery timeout
	from := e.join("g")
	for range 5 {
		e.join("g")
	}
	f := from.send(`{"op":0,"id":"m","event":"E","ack":true,"intent":{"target":"GROUP","identifier":"g"}}`)
	r := receipt(t, f, "m")
	if n := r.Delivered + r.Gone + r.Failed + r.Queued; n != 5 {
		t.Errorf("receipt %+v accounts for %d recipients, want all 5", r, n)
	}
}

func TestBatchesAreCutToTheirByteLimit(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{InlineFanOut: -1, BatchBytes: 1024})
	from := e.join("g")
	for range 40 {
		e.join("g")
	}
	data := `"` + strings.Repeat("a", 600) + `"` // a frame of about 700 bytes leaves room for a few ids
	from.send(`{"op":0,"event":"E","data":` + data + `,"intent":{"target":"GROUP","identifier":"g"}}`)
	q.wg.Wait()
	total := 0
	for _, b := range q.batches {
		payload, _ := b.Encode()
		if len(payload) > 1024 {
			t.Errorf("batch of %d bytes, over the limit of 1024", len(payload))
		}
		total += len(b.To)
	}
	if total != 40 || len(q.batches) < 3 {
		t.Errorf("got %d recipients in %d batches, want 40 in several", total, len(q.batches))
	}
}

func TestABatchOutOfTimeHandsOnWhatItDidNotPost(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{MaxBatchAttempts: 2})
	var ids []string
	for range 5 {
		ids = append(ids, e.join("g").id)
	}
	r, _ := router.New(e.store, e.sender, router.Config{Gateway: "https://api.example/prod", Dispatcher: q, MaxBatchAttempts: 2})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the invocation's time is up before it starts
	b := router.Batch{Gateway: "https://api.example/prod", Frame: []byte(`{"op":0}`), To: ids, Attempt: 1}
	rep, err := r.DeliverBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.HandedOn != 5 || rep.Delivered != 0 || rep.Failed != 0 {
		t.Errorf("report: got %+v, want all 5 handed on", rep)
	}
	q.wg.Wait()
	if len(q.batches) != 1 || q.batches[0].Attempt != 2 || len(q.batches[0].To) != 5 {
		t.Fatalf("got batches %+v, want one of attempt 2 with the 5 recipients", q.batches)
	}
	for _, id := range ids {
		if n := len(e.sender.raw(id)); n != 1 {
			t.Errorf("%s received %d frames, want 1 (from the second attempt)", id, n)
		}
	}

	// At the last attempt, nothing is handed on: they count as failed.
	b.Attempt = 2
	rep, err = r.DeliverBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 5 || rep.HandedOn != 0 {
		t.Errorf("last attempt: got %+v, want 5 failed", rep)
	}
}

func TestThrottledRecipientsOfABatchAreHandedOn(t *testing.T) {
	e, q := fanOutEnv(t, router.Config{})
	a, b := e.join("g"), e.join("g")
	e.sender.broken[a.id] = fmt.Errorf("post: %w", router.ErrThrottled)
	e.sender.broken[b.id] = errors.New("post: 500 internal error") // may have been delivered: never posted twice
	r, _ := router.New(e.store, e.sender, router.Config{Gateway: "https://api.example/prod", Dispatcher: q})
	q.deliver = func() *router.Router {
		delete(e.sender.broken, a.id) // the next invocation is not throttled
		return r
	}
	rep, err := r.DeliverBatch(t.Context(), router.Batch{Gateway: "https://api.example/prod", Frame: []byte(`{"op":0}`), To: []string{a.id, b.id}, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	q.wg.Wait()
	if rep.HandedOn != 1 || rep.Failed != 1 {
		t.Errorf("report: got %+v, want 1 handed on (throttled) and 1 failed", rep)
	}
	if len(q.batches) != 1 || len(q.batches[0].To) != 1 || q.batches[0].To[0] != a.id {
		t.Errorf("got batches %+v, want one with the throttled recipient only", q.batches)
	}
}

func TestABatchIsPacedToItsRate(t *testing.T) {
	e, _ := fanOutEnv(t, router.Config{})
	var ids []string
	for range 21 {
		ids = append(ids, e.join("g").id)
	}
	r, _ := router.New(e.store, e.sender, router.Config{Gateway: "g"})
	start := time.Now()
	rep, err := r.DeliverBatch(t.Context(), router.Batch{Gateway: "g", Frame: []byte(`{}`), To: ids, Rate: 100, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("21 posts at 100/s took %v, want at least 200 ms", took)
	}
	if rep.Delivered != 21 {
		t.Errorf("delivered %d, want 21", rep.Delivered)
	}
}

func TestMalformedBatchesAreRefused(t *testing.T) {
	r, err := router.New(nil, newSender(), router.Config{Gateway: "g"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    router.Batch
	}{
		{"no recipients", router.Batch{Gateway: "g", Frame: []byte(`{}`), Attempt: 1}},
		{"frame not JSON", router.Batch{Gateway: "g", Frame: []byte(`{`), To: []string{"c"}, Attempt: 1}},
		{"no attempt", router.Batch{Gateway: "g", Frame: []byte(`{}`), To: []string{"c"}}},
		{"negative rate", router.Batch{Gateway: "g", Frame: []byte(`{}`), To: []string{"c"}, Attempt: 1, Rate: -1}},
		{"another gateway", router.Batch{Gateway: "h", Frame: []byte(`{}`), To: []string{"c"}, Attempt: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.DeliverBatch(t.Context(), tc.b); err == nil {
				t.Error("got no error")
			}
		})
	}
}
