package localrun_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/mastersocket/mastersocket/internal/asyncinvoke"
	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/lambdaapi"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
)

// Figures of the management API the fan-out benchmark posts through, and
// of the functions' billing.
const (
	postLatency   = 20 * time.Millisecond // a PostToConnection from Lambda, answered
	accountRate   = 10000                 // @connections calls per second (AWS's default quota)
	accountBurst  = 5000
	functionGB    = 0.25 // template.yaml's MemorySize, 256 MB
	sequentialRun = 250  // posts measured one after another; longer runs are extrapolated
)

// recipients is an @connections API for n connections c0..c{n-1} that
// counts the posts each receives; behind a gateway.Throttle it answers in
// postLatency and throttles beyond accountRate.
type recipients struct {
	got       []atomic.Int32
	delivered atomic.Int64
	throttled atomic.Int64
	last      atomic.Int64 // UnixNano of the latest delivery
	done      chan struct{}
	want      int64
	once      sync.Once
}

func newRecipients(n int) *recipients {
	return &recipients{got: make([]atomic.Int32, n), done: make(chan struct{}), want: int64(n)}
}

func (rc *recipients) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, id, _ := strings.Cut(r.URL.Path, "/@connections/")
	i, err := strconv.Atoi(strings.TrimPrefix(id, "c"))
	if err != nil || i < 0 || i >= len(rc.got) {
		w.Header().Set("X-Amzn-ErrorType", "GoneException")
		w.WriteHeader(http.StatusGone)
		return
	}
	io.Copy(io.Discard, r.Body)
	rc.got[i].Add(1)
	rc.last.Store(time.Now().UnixNano())
	if rc.delivered.Add(1) == rc.want {
		rc.once.Do(func() { close(rc.done) })
	}
}

// countThrottled counts the 429s that h answers.
func (rc *recipients) countThrottled(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusTooManyRequests {
			rc.throttled.Add(1)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// timedInvoker runs functions in process and adds up their durations.
type timedInvoker struct {
	inv     *gateway.InProcess
	seconds atomic.Int64 // nanoseconds, summed
	count   atomic.Int64
}

func (t *timedInvoker) Invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	start := time.Now()
	out, err := t.inv.Invoke(ctx, fn, payload)
	t.seconds.Add(int64(time.Since(start)))
	t.count.Add(1)
	return out, err
}

// BenchmarkFanOutTime times one GROUP message to 1,000, 10,000 and 100,000
// recipients through a management API that answers each post in 20 ms and
// throttles (429) beyond 10,000 calls per second, AWS's default account
// quota, which makes 10 s the floor for 100,000: inline (the message
// function alone, within its 25 s delivery timeout), through the fan-out
// function (asynchronous invocations through the local Lambda Invoke API),
// and posting one after another (measured over 250 posts, extrapolated).
// The functions run in process with their real AWS SDK clients; the
// recipients are not sockets, only ids the management API knows.
func BenchmarkFanOutTime(b *testing.B) {
	for _, mode := range []string{"inline", "async", "sequential"} {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/recipients=%d", mode, n), func(b *testing.B) {
				var sum fanOutResult
				for range b.N {
					r := fanOutOnce(b, mode, n)
					sum.add(r)
				}
				sum.report(b, float64(b.N))
			})
		}
	}
}

// fanOutResult is what one message's fan-out took, scaled to all its
// recipients when extrapolated.
type fanOutResult struct {
	seconds, delivered, lost, invocations, gbSeconds, posts, throttled float64
	extrapolated                                                       bool
}

func (s *fanOutResult) add(r fanOutResult) {
	s.seconds += r.seconds
	s.delivered += r.delivered
	s.lost += r.lost
	s.invocations += r.invocations
	s.gbSeconds += r.gbSeconds
	s.posts += r.posts
	s.throttled += r.throttled
	s.extrapolated = s.extrapolated || r.extrapolated
}

// report reports the mean of runs results.
func (s fanOutResult) report(b *testing.B, runs float64) {
	if s.extrapolated {
		b.ReportMetric(1, "extrapolated")
	}
	b.ReportMetric(s.seconds/runs, "s/msg")
	b.ReportMetric(s.delivered/runs, "delivered/msg")
	b.ReportMetric(s.lost/runs, "lost/msg")
	b.ReportMetric(s.invocations/runs, "invocations/msg")
	b.ReportMetric(s.gbSeconds/runs, "GB-s/msg")
	b.ReportMetric(s.posts/runs, "posts/msg")
	b.ReportMetric(s.throttled/runs, "throttled/msg")
}

func fanOutOnce(b *testing.B, mode string, n int) fanOutResult {
	b.StopTimer()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	store := memstore.New()
	now := time.Now()
	posted := n
	if mode == "sequential" {
		posted = min(n, sequentialRun)
	}
	for i := range posted {
		id := "c" + strconv.Itoa(i)
		c := router.Connection{ID: id, ConnectedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour),
			Identity: &router.Identity{ServiceID: "s" + strconv.Itoa(i), Group: "all", IdentifiedAt: now}}
		if err := store.AddConnection(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	sender := router.Connection{ID: "sender", ConnectedAt: now, ExpiresAt: now.Add(time.Hour),
		Identity: &router.Identity{ServiceID: "me", Group: "elsewhere", IdentifiedAt: now}}
	if err := store.AddConnection(ctx, sender); err != nil {
		b.Fatal(err)
	}

	rc := newRecipients(posted)
	api := rc.countThrottled((&gateway.Throttle{Rate: accountRate, Burst: accountBurst, Latency: postLatency}).Wrap(rc))
	const endpoint = "https://api.example/prod"
	awsCfg := aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}
	settings := handler.Settings{ManagementEndpoint: endpoint, LogLevel: slog.LevelError}
	if mode == "sequential" {
		settings.FanOut = 1
	}
	backend := func(d router.Dispatcher) handler.Backend {
		return handler.Backend{
			Store: store, Settings: settings, Logger: quiet, Dispatcher: d,
			NewSender: func(ep string) (handler.Sender, error) {
				cfg := settings.SenderConfig(ep)
				cfg.HTTPClient = &http.Client{Transport: gateway.HandlerTransport(api)}
				return mgmtapi.New(awsCfg, cfg)
			},
		}
	}

	var dispatcher router.Dispatcher
	var fanOuts *timedInvoker
	if mode == "async" {
		fanOuts = &timedInvoker{}
		lapi, err := lambdaapi.New(lambdaapi.Config{
			Functions: []lambdaapi.Function{{Name: "FanOutFunction", Timeout: 60 * time.Second}}, Invoker: fanOuts, Logger: quiet,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer lapi.Close()
		d, err := asyncinvoke.New(awsCfg, asyncinvoke.Config{Function: "FanOutFunction",
			HTTPClient: &http.Client{Transport: gateway.HandlerTransport(lapi)}, Endpoint: "http://lambda.local"})
		if err != nil {
			b.Fatal(err)
		}
		dispatcher = d
		fh, err := handler.New(backend(d))
		if err != nil {
			b.Fatal(err)
		}
		fanOuts.inv = gateway.NewInProcess(map[string]any{"FanOutFunction": fh.FanOut})
	}
	h, err := handler.New(backend(dispatcher))
	if err != nil {
		b.Fatal(err)
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Body: `{"op":0,"event":"E","data":{"n":1},"intent":{"target":"GROUP","identifier":"all"}}`,
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			ConnectionID: "sender", RouteKey: "$default", ConnectedAt: now.UnixMilli(), DomainName: "api.example", Stage: "prod",
			Authorizer: map[string]any{"serviceId": "me", "group": "elsewhere", "tokenId": "t"},
		},
	}

	b.StartTimer()
	start := time.Now()
	if _, err := h.Message(ctx, ev); err != nil {
		if mode != "inline" {
			b.Fatal(err)
		}
		// The message function alone runs out of its delivery timeout:
		// what it did not post is lost, and the sender gets an error.
		b.Logf("the message function failed: %v", err)
	}
	messageSeconds := time.Since(start).Seconds()
	if mode == "async" { // the batches post after the message's invocation
		select {
		case <-rc.done:
		case <-time.After(40 * time.Second): // lost ones never come
		}
	}
	last := time.Unix(0, rc.last.Load())
	elapsed := last.Sub(start).Seconds()
	b.StopTimer()

	var twice int
	for i := range rc.got {
		if rc.got[i].Load() > 1 {
			twice++
		}
	}
	if twice > 0 {
		b.Errorf("%d recipients received the message more than once", twice)
	}
	delivered := rc.delivered.Load()
	invocations, gbSeconds := 1.0, messageSeconds*functionGB
	if fanOuts != nil {
		invocations += float64(fanOuts.count.Load())
		gbSeconds += time.Duration(fanOuts.seconds.Load()).Seconds() * functionGB
	}
	scale := 1.0
	if posted < n { // sequential: extrapolated from the posts measured
		scale = float64(n) / float64(posted)
	}
	b.Logf("%d recipients: %d delivered in %.2fs (%d throttled answers), %v invocations, %.2f GB-s%s",
		n, delivered, elapsed, rc.throttled.Load(), invocations, gbSeconds, map[bool]string{true: " (extrapolated from " + strconv.Itoa(posted) + ")"}[scale > 1])
	return fanOutResult{
		seconds: elapsed * scale, delivered: float64(delivered) * scale, lost: float64(int64(posted)-delivered) * scale,
		invocations: invocations, gbSeconds: gbSeconds * scale, posts: float64(delivered+rc.throttled.Load()) * scale,
		throttled: float64(rc.throttled.Load()) * scale, extrapolated: scale > 1,
	}
}
