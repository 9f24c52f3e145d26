package handler_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// lines is a concurrency-safe buffer of lines, standing for a function's
// standard output or error.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// objects returns each line as a JSON object.
func (l *lines) objects(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o map[string]any
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		out = append(out, o)
	}
	return out
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// acceptAll is a Dispatcher that accepts every batch and delivers none.
type acceptAll struct {
	mu      sync.Mutex
	batches []router.Batch
}

func (d *acceptAll) Dispatch(_ context.Context, b router.Batch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.batches = append(d.batches, b)
	return nil
}

const testNamespace = "Mastersocket/test-stack"

// observedHandlers returns handlers like newHandlers', whose metrics and
// JSON logs (at debug level) are kept, that hand every recipient of a
// GROUP or GLOBAL but the first to a dispatcher, and whose posts are tried
// once.
func observedHandlers(t *testing.T, store handler.Store, m *mgmtServer) (h *handler.Handlers, metrics, logs *lines) {
	t.Helper()
	metrics, logs = &lines{}, &lines{}
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	h, err := handler.New(handler.Backend{
		Store: store,
		NewSender: func(endpoint string) (handler.Sender, error) {
			return mgmtapi.New(awsCfg, mgmtapi.Config{Endpoint: endpoint, MaxAttempts: 1})
		},
		Settings: handler.Settings{ManagementEndpoint: m.URL + "/prod", PingInterval: 15 * time.Second,
			SweepHandshakeGrace: time.Millisecond, InlineFanOut: 1},
		Dispatcher: &acceptAll{},
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    telemetry.NewEmitter(metrics, testNamespace),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, metrics, logs
}

// emitted is one metric value found in an EMF document: its name, its
// dimensions with their values, and the value.
type emitted struct {
	name  string
	dims  map[string]string
	value float64
}

// parseEMF checks each document against the embedded metric format's
// specification (as CloudWatch validates it before it extracts a metric)
// and returns the metric values they hold.
func parseEMF(t *testing.T, docs []map[string]any) []emitted {
	t.Helper()
	var out []emitted
	for _, doc := range docs {
		meta, ok := doc["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("document without an _aws object: %v", doc)
		}
		if ts, ok := meta["Timestamp"].(float64); !ok || time.Since(time.UnixMilli(int64(ts))) > time.Minute {
			t.Errorf("Timestamp %v: want milliseconds since the epoch, now", meta["Timestamp"])
		}
		directives, ok := meta["CloudWatchMetrics"].([]any)
		if !ok || len(directives) == 0 {
			t.Fatalf("CloudWatchMetrics %v: want directives", meta["CloudWatchMetrics"])
		}
		for _, d := range directives {
			dir := d.(map[string]any)
			if dir["Namespace"] != testNamespace {
				t.Errorf("Namespace %v, want %s", dir["Namespace"], testNamespace)
			}
			dimSets := dir["Dimensions"].([]any)
			if len(dimSets) != 1 {
				t.Errorf("dimension sets %v: want one per directive", dimSets)
			}
			dims := map[string]string{}
			for _, k := range dimSets[0].([]any) {
				v, ok := doc[k.(string)].(string)
				if !ok || v == "" {
					t.Errorf("dimension %v has no string value at the root: %v", k, doc[k.(string)])
				}
				dims[k.(string)] = v
			}
			for _, md := range dir["Metrics"].([]any) {
				def := md.(map[string]any)
				name := def["Name"].(string)
				v, ok := doc[name].(float64)
				if !ok {
					t.Errorf("metric %s has no number at the root: %v", name, doc[name])
				}
				out = append(out, emitted{name: name, dims: dims, value: v})
				for _, c := range telemetry.Catalogue {
					if c.Name == name && def["Unit"] != c.Unit {
						t.Errorf("%s: unit %v, want %s", name, def["Unit"], c.Unit)
					}
				}
			}
		}
	}
	return out
}

// sum adds the values of metric name whose dimensions include want.
func sum(es []emitted, name string, want map[string]string) (total float64, found bool) {
	for _, e := range es {
		if e.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if e.dims[k] != v {
				match = false
			}
		}
		if match {
			total += e.value
			found = true
		}
	}
	return total, found
}

// Each metric of the catalogue is emitted, with exactly its dimensions,
// by the function that the catalogue says, with the values a person
// reading the dashboard would expect from what happened.
func TestEachMetricIsEmittedWithItsDimensions(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h, metrics, logs := observedHandlers(t, store, m)

	// The authorizer: one handshake let in, three refused.
	a := connectAuthorized(t, h, "g")
	for _, refused := range []struct {
		headers, query map[string]string
	}{
		{map[string]string{}, map[string]string{"group": "g"}},                                       // no token
		{map[string]string{"Authorization": "Bearer " + testToken}, map[string]string{"group": "?"}}, // bad group
		{map[string]string{"Authorization": "Bearer mst_unknown"}, map[string]string{"group": "g"}},  // unknown token
	} {
		authorize(t, h, authorizerEvent(t, "Refused0000001=", refused.headers, refused.query))
	}
	// IDENTIFY, good and bad.
	b, d, c := connect(t, h), connect(t, h), connect(t, h)
	b.identify("g")
	d.identify("g")
	c.send(`{"op":1,"data":{"token":"mst_wrong","group":"g"}}`)

	// Messages of every op and target.
	a.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`) // b inline, d handed on
	a.send(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`)                 // likewise
	a.send(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + b.serviceID + `"}}`)
	a.send(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"nobody"}}`) // TARGET_NOT_FOUND
	a.send(`{"op":3}`)                                                                // PING
	a.send(`{`)                                                                       // INVALID_PAYLOAD
	m.mu.Lock()
	m.throttled[b.id] = true
	m.mu.Unlock()
	invoke(t, h.Message, a.event("message", `{"op":0,"id":"thr-1","event":"E","intent":{"target":"DIRECT","identifier":"`+b.serviceID+`"}}`))
	m.mu.Lock()
	delete(m.throttled, b.id)
	m.gone[d.id] = true
	m.mu.Unlock()
	a.send(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + d.serviceID + `"}}`) // gone

	// A batch of the fan-out function.
	batch := router.Batch{Gateway: m.URL + "/prod", ID: "batch-1", Frame: []byte(`{"op":0,"event":"E"}`), To: []string{b.id}, Attempt: 1}
	payload, _ := batch.Encode()
	if _, err := lambda.NewHandler(h.FanOut).Invoke(context.Background(), payload); err != nil {
		t.Fatal(err)
	}
	// The sweeper: b silent for long.
	m.mu.Lock()
	m.active[b.id] = time.Now().Add(-time.Hour)
	m.mu.Unlock()
	runSweep(t, h.Sweep)
	a.disconnect(m)

	es := parseEMF(t, metrics.objects(t))

	// Every metric of the catalogue, with its dimensions and no other.
	seen := map[string][][]string{}
	for _, e := range es {
		dims := slices.Sorted(maps.Keys(e.dims))
		if !slices.ContainsFunc(seen[e.name], func(d []string) bool { return slices.Equal(d, dims) }) {
			seen[e.name] = append(seen[e.name], dims)
		}
	}
	for _, def := range telemetry.Catalogue {
		want := slices.Sorted(slices.Values(def.Dimensions))
		got := seen[def.Name]
		if len(got) != 1 || !slices.Equal(got[0], want) {
			t.Errorf("%s: emitted with dimensions %v, want exactly %v", def.Name, got, want)
		}
		delete(seen, def.Name)
	}
	for name := range seen {
		t.Errorf("%s was emitted but is not in the catalogue", name)
	}

	// What happened, as the metrics count it.
	stage := map[string]string{"Stage": "prod"}
	with := func(kv ...string) map[string]string {
		out := maps.Clone(stage)
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, c := range []struct {
		name string
		dims map[string]string
		want float64
	}{
		{"ConnectionsOpened", stage, 4},
		{"ConnectionsClosed", stage, 1},
		{"Identifies", with("Outcome", "ok"), 3}, // a at the handshake, b and d by IDENTIFY
		{"Identifies", with("Outcome", "no_token"), 1},
		{"Identifies", with("Outcome", "bad_group"), 1},
		{"Identifies", with("Outcome", "invalid_token"), 2}, // an unknown token at the handshake and in IDENTIFY
		{"Messages", with("Op", "IDENTIFY", "Target", "NONE"), 3},
		{"Messages", with("Op", "EVENT", "Target", "GROUP"), 1},
		{"Messages", with("Op", "EVENT", "Target", "GLOBAL"), 1},
		{"Messages", with("Op", "EVENT", "Target", "DIRECT"), 4},
		{"Messages", with("Op", "PING", "Target", "NONE"), 1},
		{"Messages", with("Op", "INVALID", "Target", "NONE"), 1},
		// GROUP and GLOBAL: b inline, d handed on; DIRECT to b; the batch to b.
		{"Deliveries", stage, 4},
		{"DeliveriesQueued", stage, 2},
		{"DeliveriesThrottled", stage, 1},
		{"DeliveriesFailed", stage, 1},
		{"DeliveriesGone", stage, 1},
		{"FanOutRecipients", with("Target", "GROUP"), 2},
		{"FanOutRecipients", with("Target", "GLOBAL"), 2},
		{"FanOutRecipients", with("Target", "BATCH"), 1},
		{"ErrorsSent", with("Code", "IDENTIFY_FAILED"), 1},
		{"ErrorsSent", with("Code", "TARGET_NOT_FOUND"), 2}, // nobody, and d once gone
		{"ErrorsSent", with("Code", "INVALID_PAYLOAD"), 1},
		{"ErrorsSent", with("Code", "PING_TIMEOUT"), 1},
		// b silent, c gone (closed by its IDENTIFY); d was forgotten when
		// the DIRECT to it found it gone.
		{"ConnectionsSwept", stage, 2},
		{"ConnectionsLive", stage, 1}, // a
	} {
		got, found := sum(es, c.name, c.dims)
		if !found || got != c.want {
			t.Errorf("%s %v: %v (found %v), want %v", c.name, c.dims, got, found, c.want)
		}
	}
	if got, found := sum(es, "FanOutDuration", with("Target", "GROUP")); !found || got < 0 {
		t.Errorf("FanOutDuration of GROUP: %v, found %v", got, found)
	}

	// No secret in the metrics or the logs.
	for what, out := range map[string]string{"metrics": metrics.String(), "logs": logs.String()} {
		for _, secret := range []string{testToken, "mst_wrong", "mst_unknown"} {
			if strings.Contains(out, secret) {
				t.Errorf("the %s hold the token %s", what, secret)
			}
		}
	}

	// The lines of the throttled message's invocation carry its ids.
	found := false
	for _, l := range logs.objects(t) {
		if l["messageId"] != "thr-1" {
			continue
		}
		found = true
		for k, want := range map[string]any{"connectionId": a.id, "serviceId": a.serviceID, "requestId": "CdmaAEcNoAMFjyQ="} {
			if l[k] != want {
				t.Errorf("log line %q: %s = %v, want %v", l["msg"], k, l[k], want)
			}
		}
	}
	if !found {
		t.Errorf("no log line carries the throttled message's id; logs:\n%s", logs)
	}
}

// Every line an invocation logs carries the API Gateway request id and
// the connection id; once the connection is known to be a service, its
// service id.
func TestLogLinesCarryTheInvocationsIDs(t *testing.T) {
	store := memstore.New()
	putToken(t, store)
	m := newMgmtServer(t)
	h, _, logs := observedHandlers(t, store, m)
	a := connectAuthorized(t, h, "g")
	a.disconnect(m)
	n := 0
	for _, l := range logs.objects(t) {
		msg := fmt.Sprint(l["msg"])
		if !strings.HasPrefix(msg, "$") {
			continue
		}
		n++
		if l["connectionId"] != a.id || l["requestId"] == nil || l["serviceId"] != a.serviceID {
			t.Errorf("%s: connectionId %v, requestId %v, serviceId %v; want %s, the request's, %s",
				msg, l["connectionId"], l["requestId"], l["serviceId"], a.id, a.serviceID)
		}
	}
	if n < 3 { // $connect authorized, $connect, $disconnect
		t.Errorf("%d lines of the route functions, want 3:\n%s", n, logs)
	}
}
