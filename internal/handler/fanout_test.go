package handler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/router"
)

// The fan-out function takes the batch's JSON as Lambda hands it over,
// posts the frame to each recipient through its stage's @connections, and
// refuses a batch made for another gateway (Lambda then sends it to the
// on-failure destination, without a retry).
func TestTheFanOutFunctionDeliversABatchOfItsOwnGateway(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	a, b := connect(t, h), connect(t, h)
	a.identify("g")
	b.identify("g")

	batch := router.Batch{Gateway: m.URL + "/prod", ID: "m1", Frame: []byte(`{"id":"m1","op":0,"event":"E","data":"<&>"}`), To: []string{a.id, b.id}, Attempt: 1}
	payload, err := batch.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(h.FanOut).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("FanOut: %v", err)
	}
	if got := string(out); got != `{"delivered":2,"gone":0,"failed":0,"handedOn":0}` {
		t.Errorf("report: got %s", got)
	}
	m.mu.Lock()
	for _, c := range []*client{a, b} {
		if posts := m.posts[c.id]; len(posts) != 1 || string(posts[0]) != string(batch.Frame) {
			t.Errorf("%s received %q, want the frame once, as it was", c.id, posts)
		}
	}
	m.mu.Unlock()

	other := batch
	other.Gateway = "https://elsewhere.example/prod"
	payload, _ = other.Encode()
	if _, err := lambda.NewHandler(h.FanOut).Invoke(context.Background(), payload); err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("a batch for another gateway: got %v, want an error naming it", err)
	}
}

// A batch whose invocation has less time left than the margin the
// function keeps posts nothing: it has no dispatcher here, so its
// recipients count as failed rather than risk a post cut short.
func TestTheFanOutFunctionKeepsAMarginBeforeItsDeadline(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h := newHandlers(t, store, m)
	a := connect(t, h)
	a.identify("g")
	ctx, cancel := context.WithTimeout(lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{}), 3*time.Second)
	defer cancel()
	rep, err := h.FanOut(ctx, router.Batch{Gateway: m.URL + "/prod", Frame: []byte(`{}`), To: []string{a.id}, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || rep.Delivered != 0 {
		t.Errorf("got %+v, want the one recipient failed, not posted", rep)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.posts[a.id]) != 0 {
		t.Error("posted within the margin")
	}
}

// The fan-out function's policy in template.yaml grants exactly what it
// does on DynamoDB: a batch with a live recipient and one the gateway no
// longer has (410, recorded long enough ago to be forgotten).
func TestFanOutPolicyIsWhatItDoes(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	setup, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	rec := &countingAPI{API: db, calls: map[string]int{}}
	fanned, err := dynamostore.New(rec, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	putToken(t, setup)
	m := newMgmtServer(t)
	h := newHandlers(t, setup, m)
	live, gone := connect(t, h), connect(t, h)
	live.identify("g")
	gone.identify("g")
	m.mu.Lock()
	m.gone[gone.id] = true
	m.mu.Unlock()

	rep, err := newHandlers(t, fanned, m).FanOut(context.Background(),
		router.Batch{Gateway: m.URL + "/prod", Frame: []byte(`{}`), To: []string{live.id, gone.id}, Attempt: 1})
	if err != nil || rep.Delivered != 1 || rep.Gone != 1 {
		t.Fatalf("got %+v, %v; want 1 delivered and 1 gone", rep, err)
	}
	if _, err := setup.Connection(context.Background(), gone.id); !errors.Is(err, router.ErrNotFound) {
		t.Fatalf("the gone recipient is still recorded: %v", err)
	}
	checkPolicyIsWhatItDoes(t, "FanOutFunction", rec)
}
