package mgmtapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/mastersocket/mastersocket/internal/router"
)

const (
	testStage  = "dev"
	testConnID = "R1kmxc2VNjMCFIA="
)

// request is one call that the fake gateway received.
type request struct {
	method string
	stage  string
	id     string
	body   []byte
	at     time.Time
}

// answer is what the fake gateway replies to one attempt: a status, and for
// an error the X-Amzn-ErrorType header ("" sends none).
type answer struct {
	status  int
	errType string
}

var (
	ok200       = answer{status: http.StatusOK}
	noContent   = answer{status: http.StatusNoContent}
	gone        = answer{http.StatusGone, "GoneException"}
	throttled   = answer{http.StatusTooManyRequests, "LimitExceededException"}
	tooLarge    = answer{http.StatusRequestEntityTooLarge, "PayloadTooLargeException"}
	forbidden   = answer{http.StatusForbidden, "ForbiddenException"}
	bareGone    = answer{status: http.StatusGone}
	unavailable = answer{http.StatusServiceUnavailable, "ServiceUnavailableException"}
)

// fakeGateway speaks the @connections management API (restJson1) as API
// Gateway does. answer decides the reply to the n-th (1-based) request.
type fakeGateway struct {
	answer func(n int, r request) answer

	mu       sync.Mutex
	requests []request
	newConns atomic.Int64
}

func newFakeGateway(t *testing.T, answer func(n int, r request) answer) (*fakeGateway, *httptest.Server) {
	t.Helper()
	g := &fakeGateway{answer: answer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{stage}/@connections/{id}", g.handle)
	mux.HandleFunc("DELETE /{stage}/@connections/{id}", g.handle)
	mux.HandleFunc("GET /{stage}/@connections/{id}", g.handle)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.newConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *fakeGateway) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := request{
		method: r.Method,
		stage:  r.PathValue("stage"),
		id:     r.PathValue("id"),
		body:   body,
		at:     time.Now(),
	}
	g.mu.Lock()
	g.requests = append(g.requests, req)
	n := len(g.requests)
	g.mu.Unlock()

	a := ok200
	if r.Method == http.MethodDelete {
		a = noContent
	}
	if g.answer != nil {
		a = g.answer(n, req)
	}
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("req-%d", n))
	if a.status < 400 {
		if r.Method == http.MethodGet {
			// As documented for GetConnection (AWS CLI example).
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			io.WriteString(w, `{"connectedAt":"2020-04-30T20:10:33.236Z","identity":{"sourceIp":"192.0.2.1","userAgent":"test"},"lastActiveAt":"2020-04-30T20:10:42.997Z"}`)
			return
		}
		w.WriteHeader(a.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if a.errType != "" {
		w.Header().Set("X-Amzn-ErrorType", a.errType)
	}
	w.WriteHeader(a.status)
	fmt.Fprintf(w, `{"message":%q}`, http.StatusText(a.status))
}

func (g *fakeGateway) seen() []request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]request(nil), g.requests...)
}

func testAWSConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
}

func newTestSender(t *testing.T, srv *httptest.Server, cfg Config) *Sender {
	t.Helper()
	cfg.Endpoint = srv.URL + "/" + testStage
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	s, err := New(testAWSConfig(), cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	return s
}

func always(a answer) func(int, request) answer {
	return func(int, request) answer { return a }
}

func TestSendDelivers(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		frame []byte
	}{
		{"id with =", testConnID, []byte(`{"op":"MESSAGE","data":"hi"}`)},
		{"plain id", "Ab3-xyzAbCdEfG", []byte("x")},
		{"binary frame", "Zz9_0vPqRsTuVw=", []byte{0, 1, 2, 0xff, '\n'}},
		{"empty frame", testConnID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t, nil)
			s := newTestSender(t, srv, Config{})
			if err := s.Send(context.Background(), tt.id, tt.frame); err != nil {
				t.Fatalf("Send: got error %v, want nil", err)
			}
			reqs := g.seen()
			if len(reqs) != 1 {
				t.Fatalf("requests: got %d, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost {
				t.Errorf("method: got %s, want POST", r.method)
			}
			if r.stage != testStage {
				t.Errorf("stage: got %q, want %q", r.stage, testStage)
			}
			if r.id != tt.id {
				t.Errorf("connection id: got %q, want %q", r.id, tt.id)
			}
			if !bytes.Equal(r.body, tt.frame) {
				t.Errorf("body: got %q, want %q", r.body, tt.frame)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	const maxAttempts = 4
	tests := []struct {
		name         string
		answer       answer
		wantGone     bool
		wantAttempts int
		wantAs       func(error) bool
	}{
		{
			name:         "410 GoneException",
			answer:       gone,
			wantGone:     true,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *types.GoneException; return errors.As(err, &e) },
		},
		{
			name:         "410 GoneException with coral suffix",
			answer:       answer{http.StatusGone, "GoneException:http://internal.amazon.com/coral/com.amazonaws.apigateway/"},
			wantGone:     true,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *types.GoneException; return errors.As(err, &e) },
		},
		{
			name:         "410 without error type",
			answer:       bareGone,
			wantGone:     true,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *awshttp.ResponseError; return errors.As(err, &e) },
		},
		{
			name:         "429 LimitExceededException forever",
			answer:       throttled,
			wantAttempts: maxAttempts,
			wantAs: func(err error) bool {
				var e *types.LimitExceededException
				return errors.As(err, &e) && errors.Is(err, router.ErrThrottled)
			},
		},
		{
			name:         "413 PayloadTooLargeException",
			answer:       tooLarge,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *types.PayloadTooLargeException; return errors.As(err, &e) },
		},
		{
			name:         "403 ForbiddenException",
			answer:       forbidden,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *types.ForbiddenException; return errors.As(err, &e) },
		},
		{
			// Not retried: the frame may have been delivered before the
			// 503, and delivery is at most once.
			name:         "503 is not retried",
			answer:       unavailable,
			wantAttempts: 1,
			wantAs:       func(err error) bool { var e *awshttp.ResponseError; return errors.As(err, &e) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t, always(tt.answer))
			s := newTestSender(t, srv, Config{MaxAttempts: maxAttempts})
			err := s.Send(context.Background(), testConnID, []byte("frame"))
			if err == nil {
				t.Fatal("Send: got nil error, want an error")
			}
			if got := errors.Is(err, router.ErrGone); got != tt.wantGone {
				t.Errorf("errors.Is(err, router.ErrGone): got %v, want %v (err: %v)", got, tt.wantGone, err)
			}
			if !tt.wantAs(err) {
				t.Errorf("errors.As: got false, want true (err: %v)", err)
			}
			want := "post to connection " + testConnID + ": "
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error: got %q, want prefix %q", err, want)
			}
			if got := len(g.seen()); got != tt.wantAttempts {
				t.Errorf("attempts: got %d, want %d", got, tt.wantAttempts)
			}
		})
	}
}

func TestSendRetriesThrottling(t *testing.T) {
	g, srv := newFakeGateway(t, func(n int, _ request) answer {
		if n <= 2 {
			return throttled
		}
		return ok200
	})
	s := newTestSender(t, srv, Config{MaxAttempts: 5, MaxBackoff: 20 * time.Millisecond})
	frame := []byte("after two 429s")
	if err := s.Send(context.Background(), testConnID, frame); err != nil {
		t.Fatalf("Send: got error %v, want nil", err)
	}
	reqs := g.seen()
	if len(reqs) != 3 {
		t.Fatalf("attempts: got %d, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.id != testConnID || !bytes.Equal(r.body, frame) {
			t.Errorf("attempt %d: got id %q body %q, want id %q body %q", i+1, r.id, r.body, testConnID, frame)
		}
		if i > 0 {
			t.Logf("backoff before attempt %d: %v", i+1, r.at.Sub(reqs[i-1].at))
		}
	}
}

// TestSendIgnoresAWSConfigMaxAttempts checks that aws.Config.RetryMaxAttempts
// (AWS_MAX_ATTEMPTS) does not override Config.MaxAttempts.
func TestSendIgnoresAWSConfigMaxAttempts(t *testing.T) {
	g, srv := newFakeGateway(t, always(throttled))
	awsCfg := testAWSConfig()
	awsCfg.RetryMaxAttempts = 2
	s, err := New(awsCfg, Config{Endpoint: srv.URL + "/" + testStage, MaxAttempts: 3, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	if err := s.Send(context.Background(), testConnID, []byte("x")); err == nil {
		t.Fatal("Send: got nil error, want an error")
	}
	if got := len(g.seen()); got != 3 {
		t.Errorf("attempts: got %d, want 3", got)
	}
}

func TestSendCanceledWhileThrottled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, srv := newFakeGateway(t, func(n int, _ request) answer {
		cancel()
		return throttled
	})
	s := newTestSender(t, srv, Config{MaxAttempts: 5, MaxBackoff: time.Second})
	err := s.Send(ctx, testConnID, []byte("x"))
	if err == nil {
		t.Fatal("Send: got nil error, want an error")
	}
	if errors.Is(err, router.ErrGone) {
		t.Errorf("errors.Is(err, router.ErrGone): got true, want false (err: %v)", err)
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		wantErr bool
	}{
		{"204", noContent, false},
		{"410 GoneException", gone, false},
		{"410 without error type", bareGone, false},
		{"403 ForbiddenException", forbidden, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t, always(tt.answer))
			s := newTestSender(t, srv, Config{})
			err := s.Close(context.Background(), testConnID)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Close: got error %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				want := "delete connection " + testConnID + ": "
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("error: got %q, want prefix %q", err, want)
				}
				if errors.Is(err, router.ErrGone) {
					t.Errorf("errors.Is(err, router.ErrGone): got true, want false")
				}
			}
			reqs := g.seen()
			if len(reqs) != 1 {
				t.Fatalf("requests: got %d, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodDelete || r.stage != testStage || r.id != testConnID {
				t.Errorf("request: got %s /%s/@connections/%s, want DELETE /%s/@connections/%s",
					r.method, r.stage, r.id, testStage, testConnID)
			}
		})
	}
}

func TestNewEndpoint(t *testing.T) {
	tests := []struct {
		endpoint string
		wantErr  bool
	}{
		{"", true},
		{"/prod", true},
		{"abc.execute-api.eu-west-1.amazonaws.com/prod", true},
		{"ftp://example.com/prod", true},
		{"https:///prod", true},
		{"http://[::1/dev", true},
		{"https://abc.execute-api.eu-west-1.amazonaws.com/prod", false},
		{"http://127.0.0.1:3001/dev", false},
		{"http://127.0.0.1:3001/dev/", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			s, err := New(testAWSConfig(), Config{Endpoint: tt.endpoint})
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("New(%q): got error %v, want error: %v", tt.endpoint, err, tt.wantErr)
			}
			if err == nil && s == nil {
				t.Fatalf("New(%q): got nil Sender, want non-nil", tt.endpoint)
			}
		})
	}
}

func TestNewRejectsNegative(t *testing.T) {
	for _, cfg := range []Config{
		{MaxConns: -1},
		{MaxAttempts: -1},
		{MaxBackoff: -time.Second},
	} {
		cfg.Endpoint = "http://127.0.0.1:3001/dev"
		if _, err := New(testAWSConfig(), cfg); err == nil {
			t.Errorf("New(%+v): got nil error, want an error", cfg)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	s, err := New(testAWSConfig(), Config{Endpoint: "http://127.0.0.1:3001/dev"})
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	opts := s.client.Options()
	if got := aws.ToString(opts.BaseEndpoint); got != "http://127.0.0.1:3001/dev" {
		t.Errorf("BaseEndpoint: got %q, want %q", got, "http://127.0.0.1:3001/dev")
	}
	if got := opts.Retryer.MaxAttempts(); got != DefaultMaxAttempts {
		t.Errorf("MaxAttempts: got %d, want %d", got, DefaultMaxAttempts)
	}
	bc, ok := opts.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("HTTPClient: got %T, want *awshttp.BuildableClient", opts.HTTPClient)
	}
	tr := bc.GetTransport()
	if tr.MaxIdleConns != router.DefaultFanOut || tr.MaxIdleConnsPerHost != router.DefaultFanOut {
		t.Errorf("MaxIdleConns, MaxIdleConnsPerHost: got %d, %d, want %d, %d",
			tr.MaxIdleConns, tr.MaxIdleConnsPerHost, router.DefaultFanOut, router.DefaultFanOut)
	}
	if tr.MaxConnsPerHost != 0 {
		t.Errorf("MaxConnsPerHost: got %d, want 0 (unlimited)", tr.MaxConnsPerHost)
	}
}

func TestSendReusesConnection(t *testing.T) {
	g, srv := newFakeGateway(t, nil)
	s := newTestSender(t, srv, Config{})
	for i := range 10 {
		if err := s.Send(context.Background(), testConnID, []byte("x")); err != nil {
			t.Fatalf("Send %d: got error %v, want nil", i, err)
		}
	}
	if got := g.newConns.Load(); got != 1 {
		t.Errorf("TCP connections for 10 sequential sends: got %d, want 1", got)
	}
}

func TestSendConcurrent(t *testing.T) {
	const senders = 200
	var mu sync.Mutex
	attempts := make(map[string]int)
	g, srv := newFakeGateway(t, func(n int, r request) answer {
		mu.Lock()
		defer mu.Unlock()
		attempts[r.id]++
		if n%7 == 0 && attempts[r.id] == 1 {
			return throttled // some throttling, retried once
		}
		return ok200
	})
	s := newTestSender(t, srv, Config{MaxConns: 8, MaxAttempts: 10, MaxBackoff: 5 * time.Millisecond})

	id := func(i int) string { return fmt.Sprintf("Conn%04dAbCdEf=", i) }
	errs := make([]error, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			errs[i] = s.Send(context.Background(), id(i), []byte(id(i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Send %d: got error %v, want nil", i, err)
		}
	}

	delivered := make(map[string]string)
	for _, r := range g.seen() {
		delivered[r.id] = string(r.body)
	}
	if len(delivered) != senders {
		t.Errorf("distinct connections reached: got %d, want %d", len(delivered), senders)
	}
	for i := range senders {
		if got, want := delivered[id(i)], id(i); got != want {
			t.Errorf("body for %s: got %q, want %q", id(i), got, want)
		}
	}
	t.Logf("%d requests over %d TCP connections", len(g.seen()), g.newConns.Load())
}

func TestSendRetriesRefusedConnections(t *testing.T) {
	// A port with nothing listening: every attempt fails to connect, which
	// certainly delivered nothing, so each one is retried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")},
		Config{Endpoint: "http://" + addr + "/dev", MaxAttempts: 3, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), "R1kmxc2VNjMCFIA=", []byte("x"))
	var maxErr *retry.MaxAttemptsError
	if !errors.As(err, &maxErr) || maxErr.Attempt != 3 {
		t.Fatalf("got %v, want the 3 attempts exhausted", err)
	}
}

func TestStatus(t *testing.T) {
	g, srv := newFakeGateway(t, nil)
	s := newTestSender(t, srv, Config{})
	st, err := s.Status(context.Background(), testConnID)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	wantConnected := time.Date(2020, 4, 30, 20, 10, 33, 236e6, time.UTC)
	wantActive := time.Date(2020, 4, 30, 20, 10, 42, 997e6, time.UTC)
	if !st.ConnectedAt.Equal(wantConnected) || !st.LastActiveAt.Equal(wantActive) {
		t.Errorf("got %+v, want connected %v, last active %v", st, wantConnected, wantActive)
	}
	if r := g.seen(); len(r) != 1 || r[0].method != http.MethodGet || r[0].id != testConnID || r[0].stage != testStage {
		t.Errorf("requests: got %+v, want one GET /%s/@connections/%s", r, testStage, testConnID)
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name     string
		answer   answer
		gone     bool
		attempts int
	}{
		{"410 GoneException", gone, true, 1},
		{"410 without error type", bareGone, true, 1},
		{"403 ForbiddenException", forbidden, false, 1},
		{"503 is retried: a GET is safe to repeat", unavailable, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t, always(tt.answer))
			s := newTestSender(t, srv, Config{MaxAttempts: 3})
			_, err := s.Status(context.Background(), testConnID)
			if err == nil {
				t.Fatal("got no error")
			}
			if got := errors.Is(err, router.ErrGone); got != tt.gone {
				t.Errorf("errors.Is(%v, ErrGone): got %v, want %v", err, got, tt.gone)
			}
			if n := len(g.seen()); n != tt.attempts {
				t.Errorf("got %d attempts, want %d", n, tt.attempts)
			}
		})
	}
}
