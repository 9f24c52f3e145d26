// Package lambdaapi emulates the Invoke API of AWS Lambda
// (POST /2015-03-31/functions/{FunctionName}/invocations), so that a
// function can invoke another one on a laptop exactly as on AWS: with the
// AWS SDK, synchronously (RequestResponse), asynchronously (Event) or as a
// dry run, within Lambda's payload limits, and for asynchronous
// invocations with Lambda's queue, its retries of failed invocations and
// its on-failure destination (see Function.Async). docs/LAMBDA.md lists the
// rules and their sources.
//
// Like the rest of the emulator, it knows nothing of mastersocket: it runs
// whatever its Invoker runs.
package lambdaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Lambda's limits and defaults.
const (
	// MaxSyncPayload and MaxAsyncPayload are the largest request payloads
	// of a synchronous (6 MB) and an asynchronous (1 MB) invocation.
	MaxSyncPayload  = 6 << 20
	MaxAsyncPayload = 1 << 20
	// DefaultMaxRetries and DefaultMaxEventAge are Lambda's defaults for
	// asynchronous invocations: two retries of a failed invocation, and
	// events kept for up to six hours.
	DefaultMaxRetries  = 2
	DefaultMaxEventAge = 6 * time.Hour
	// DefaultConcurrency is an account's default concurrency.
	DefaultConcurrency = 1000
	// PathPrefix is where the Invoke API is served.
	PathPrefix = "/2015-03-31/functions/"
)

// DefaultRetryDelays are Lambda's waits before the first and the second
// retry of a failed asynchronous invocation: one minute, then two.
var DefaultRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// Invoker runs functions by name.
type Invoker interface {
	// Invoke runs function with payload and returns its response. An error
	// means the invocation failed: the function returned an error,
	// panicked, timed out or could not run.
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Function is a function that the API can invoke.
type Function struct {
	// Name is the function's name, which Invoker runs.
	Name string
	// Aliases are other names it answers to (its FunctionName in the
	// template, for one). ARNs and partial ARNs of any name resolve too.
	Aliases []string
	// Timeout bounds each invocation; default 3 s, Lambda's.
	Timeout time.Duration
	// Async is the function's asynchronous invocation configuration.
	Async Async
}

// Async is the asynchronous invocation configuration of a function
// (EventInvokeConfig).
type Async struct {
	// MaxRetries is how many times a failed invocation is retried, 0 to
	// 2. Nil means Lambda's default, 2.
	MaxRetries *int
	// MaxEventAge is how long an event may wait (in the queue and between
	// retries) before it is discarded; default 6 h.
	MaxEventAge time.Duration
	// OnFailure names the on-failure destination (an SQS queue's ARN, say),
	// which receives the invocation record of a discarded event; "" for
	// none (the event is then only logged).
	OnFailure string
}

// Config describes an API. Zero fields mean their documented defaults.
type Config struct {
	// Region and AccountID make the functions' ARNs; default us-east-1 and
	// 000000000000.
	Region    string
	AccountID string
	Functions []Function
	// Invoker runs the functions; required.
	Invoker Invoker
	// Concurrency bounds the asynchronous invocations running at once;
	// the rest wait in the queue. Default 1000.
	Concurrency int
	// RetryDelays are the waits before each retry of a failed asynchronous
	// invocation; default DefaultRetryDelays, Lambda's (tests shorten them).
	RetryDelays []time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Record is the invocation record that Lambda sends to a function's
// on-failure destination when it discards an asynchronous event.
type Record struct {
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	RequestContext  RecordRequest   `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext RecordResponse  `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
	// Destination is where Lambda would send the record (not part of it).
	Destination string `json:"-"`
}

// RecordRequest is the requestContext of a Record.
type RecordRequest struct {
	RequestID   string `json:"requestId"`
	FunctionARN string `json:"functionArn"`
	// Condition is RetriesExhausted or EventAgeExceeded.
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// RecordResponse is the responseContext of a Record.
type RecordResponse struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// Stats are the API's counters since New.
type Stats struct {
	// Accepted counts the asynchronous invocations queued (202).
	Accepted int64
	// Invocations counts the runs of asynchronous events, retries
	// included; Retries the retries alone.
	Invocations, Retries int64
	// Succeeded and Discarded count the events that ended: with a
	// successful run, or sent to the on-failure destination.
	Succeeded, Discarded int64
	// Pending counts the events queued, running or waiting for a retry.
	Pending int64
}

// API serves Lambda's Invoke API for a set of functions.
type API struct {
	cfg   Config
	log   *slog.Logger
	funcs map[string]*Function // by name, alias and ARN
	slots chan struct{}

	ctx    context.Context // cancelled by Close: retries waiting give up
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	accepted, invocations, retries, succeeded, discarded, pending atomic.Int64

	mu       sync.Mutex
	failures []Record
}

// New returns an API over cfg, or an error if cfg has no Invoker or two
// functions share a name.
func New(cfg Config) (*API, error) {
	if cfg.Invoker == nil {
		return nil, errors.New("lambdaapi: an Invoker is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = DefaultRetryDelays
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &API{cfg: cfg, log: cfg.Logger, funcs: map[string]*Function{}, slots: make(chan struct{}, cfg.Concurrency), ctx: ctx, cancel: cancel}
	for i := range cfg.Functions {
		f := &cfg.Functions[i]
		if f.Timeout <= 0 {
			f.Timeout = 3 * time.Second
		}
		if f.Async.MaxEventAge <= 0 {
			f.Async.MaxEventAge = DefaultMaxEventAge
		}
		if r := f.Async.MaxRetries; r != nil && (*r < 0 || *r > 2) {
			return nil, fmt.Errorf("lambdaapi: function %s: MaximumRetryAttempts %d, want 0 to 2", f.Name, *r)
		}
		for _, name := range append([]string{f.Name}, f.Aliases...) {
			if name == "" {
				continue
			}
			if g, ok := a.funcs[name]; ok && g != f {
				return nil, fmt.Errorf("lambdaapi: %q names both %s and %s", name, g.Name, f.Name)
			}
			a.funcs[name] = f
		}
	}
	return a, nil
}

// ARN returns the ARN of a function name.
func (a *API) ARN(name string) string {
	return "arn:aws:lambda:" + a.cfg.Region + ":" + a.cfg.AccountID + ":function:" + name
}

// lookup resolves a FunctionName as Lambda takes it: a name, an ARN or a
// partial ARN (ACCOUNT:function:NAME), with an optional :$LATEST.
func (a *API) lookup(name string) (*Function, bool) {
	name = strings.TrimSuffix(name, ":$LATEST")
	if f, ok := a.funcs[name]; ok {
		return f, true
	}
	if i := strings.LastIndex(name, ":function:"); i >= 0 {
		prefix, short := name[:i], name[i+len(":function:"):]
		if prefix == a.cfg.AccountID || prefix == "arn:aws:lambda:"+a.cfg.Region+":"+a.cfg.AccountID {
			f, ok := a.funcs[short]
			return f, ok
		}
	}
	return nil, false
}

// Stats returns the API's counters.
func (a *API) Stats() Stats {
	return Stats{
		Accepted: a.accepted.Load(), Invocations: a.invocations.Load(), Retries: a.retries.Load(),
		Succeeded: a.succeeded.Load(), Discarded: a.discarded.Load(), Pending: a.pending.Load(),
	}
}

// Failures returns the invocation records sent to on-failure destinations
// (or, for a function without one, discarded), oldest first.
func (a *API) Failures() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Record(nil), a.failures...)
}

// Close refuses new invocations, drops the events waiting for a retry, and
// waits for the invocations running to end. It is idempotent.
func (a *API) Close() {
	a.closed.Store(true)
	a.cancel()
	a.wg.Wait()
}

// awsError writes an error as Lambda's API does (restJson1).
func awsError(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("X-Amzn-ErrorType", errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Type    string `json:"Type"`
		Message string `json:"message"`
	}{"User", message})
}

// ServeHTTP serves Invoke: POST PathPrefix{FunctionName}/invocations.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), PathPrefix)
	rawName, tail, _ := strings.Cut(rest, "/")
	name, err := url.PathUnescape(rawName)
	if !ok || tail != "invocations" || err != nil || name == "" {
		awsError(w, http.StatusNotFound, "UnknownOperationException", "Unknown operation "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		awsError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "Unknown operation "+r.Method+" "+r.URL.Path)
		return
	}
	if a.closed.Load() {
		awsError(w, http.StatusServiceUnavailable, "ServiceException", "the local Lambda API is shutting down")
		return
	}
	f, ok := a.lookup(name)
	if !ok {
		awsError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+a.ARN(name))
		return
	}
	kind := r.Header.Get("X-Amz-Invocation-Type")
	limit := MaxSyncPayload
	switch kind {
	case "", "RequestResponse", "DryRun":
	case "Event":
		limit = MaxAsyncPayload
	default:
		awsError(w, http.StatusBadRequest, "InvalidParameterValueException",
			"1 validation error detected: Value '"+kind+"' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		awsError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return
	}
	if len(payload) > limit {
		awsError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", limit))
		return
	}
	if len(payload) > 0 && !json.Valid(payload) {
		awsError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json")
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	switch kind {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
	case "Event":
		a.enqueue(f, payload)
		w.WriteHeader(http.StatusAccepted)
	default:
		a.invokeSync(w, r.Context(), f, payload)
	}
}

// invokeSync runs a RequestResponse invocation: 200 with the function's
// response, or with X-Amz-Function-Error and the error document.
func (a *API) invokeSync(w http.ResponseWriter, ctx context.Context, f *Function, payload []byte) {
	out, err := a.run(ctx, f, payload)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		w.Write(errorDocument(err))
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// run invokes f once under its timeout.
func (a *API) run(ctx context.Context, f *Function, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	out, err := a.cfg.Invoker.Invoke(ctx, f.Name, payload)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("Task timed out after %.2f seconds", f.Timeout.Seconds())
	}
	return out, err
}

// errorDocument is the {"errorMessage","errorType"} body of a failed
// invocation.
func errorDocument(err error) []byte {
	doc := struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}{err.Error(), "Runtime.Error"}
	var fe interface {
		ErrorMessage() string
		ErrorType() string
	}
	if errors.As(err, &fe) {
		doc.Message, doc.Type = fe.ErrorMessage(), fe.ErrorType()
	}
	b, _ := json.Marshal(doc)
	return b
}

// enqueue queues an asynchronous event: it runs when a concurrency slot is
// free, and is retried and discarded as Lambda does.
func (a *API) enqueue(f *Function, payload []byte) {
	a.accepted.Add(1)
	a.pending.Add(1)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.pending.Add(-1)
		a.process(f, payload, time.Now())
	}()
}

func (a *API) process(f *Function, payload []byte, queued time.Time) {
	maxRetries := DefaultMaxRetries
	if f.Async.MaxRetries != nil {
		maxRetries = *f.Async.MaxRetries
	}
	requestID := uuid.NewString()
	for attempt := 0; ; attempt++ {
		if time.Since(queued) > f.Async.MaxEventAge {
			a.discard(f, requestID, payload, attempt, "EventAgeExceeded", nil)
			return
		}
		select {
		case a.slots <- struct{}{}:
		case <-a.ctx.Done():
			a.log.Warn("an asynchronous invocation was dropped: the local Lambda API stopped", "function", f.Name)
			return
		}
		a.invocations.Add(1)
		if attempt > 0 {
			a.retries.Add(1)
		}
		_, err := a.run(a.ctx, f, payload)
		<-a.slots
		if err == nil {
			a.succeeded.Add(1)
			return
		}
		a.log.Warn("an asynchronous invocation failed", "function", f.Name, "attempt", attempt+1, "err", err)
		if attempt >= maxRetries {
			a.discard(f, requestID, payload, attempt+1, "RetriesExhausted", err)
			return
		}
		delay := a.cfg.RetryDelays[min(attempt, len(a.cfg.RetryDelays)-1)]
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
			a.log.Warn("an asynchronous invocation waiting for its retry was dropped: the local Lambda API stopped", "function", f.Name)
			return
		}
	}
}

// discard sends an event's invocation record to the function's on-failure
// destination: here, the API's Failures and the log.
func (a *API) discard(f *Function, requestID string, payload []byte, invokes int, condition string, err error) {
	a.discarded.Add(1)
	rec := Record{
		Version:   "1.0",
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: RecordRequest{
			RequestID: requestID, FunctionARN: a.ARN(f.Name) + ":$LATEST", Condition: condition, ApproximateInvokeCount: invokes,
		},
		RequestPayload:  payload,
		ResponseContext: RecordResponse{StatusCode: http.StatusOK, ExecutedVersion: "$LATEST"},
		Destination:     f.Async.OnFailure,
	}
	if err != nil {
		rec.ResponseContext.FunctionError = "Unhandled"
		rec.ResponsePayload = errorDocument(err)
	}
	a.mu.Lock()
	a.failures = append(a.failures, rec)
	a.mu.Unlock()
	dest := f.Async.OnFailure
	if dest == "" {
		dest = "(none: the event is lost)"
	}
	a.log.Error("an asynchronous event was discarded", "function", f.Name, "condition", condition,
		"invokes", invokes, "destination", dest, "payloadBytes", len(payload))
}
