package lambdart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fnPath is the test function (testdata/fn) built once by TestMain.
var fnPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdart-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fnPath = filepath.Join(dir, "bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = Build(ctx, "testdata/fn", fnPath)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logRecorder is a slog.Handler keeping every record.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) find(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.records {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

func (h *logRecorder) contains(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if strings.Contains(r.msg, sub) {
			return true
		}
	}
	return false
}

// newPool returns a pool of the test function, closed at the end of the test.
func newPool(t *testing.T, fn Function) (*Pool, *logRecorder) {
	t.Helper()
	logs := &logRecorder{}
	if fn.Name == "" {
		fn.Name = "TestFunction"
	}
	fn.Path = fnPath
	fn.Logger = slog.New(logs)
	p, err := NewPool(fn)
	if err != nil {
		t.Fatalf("NewPool: got error %v, want nil", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, logs
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func invokeInfo(t *testing.T, p *Pool, env ...string) Info {
	t.Helper()
	ev, _ := json.Marshal(map[string]any{"info": true, "env": env})
	out, err := p.Invoke(testCtx(t), ev)
	if err != nil {
		t.Fatalf("Invoke info: got error %v, want nil", err)
	}
	var info Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("Invoke info: got %q, want an Info document (%v)", out, err)
	}
	return info
}

// Info mirrors testdata/fn's answer to {"info":true}.
type Info struct {
	RemainingMS int64             `json:"remaining_ms"`
	RequestID   string            `json:"request_id"`
	ARN         string            `json:"arn"`
	TraceID     string            `json:"trace_id"`
	Pid         int               `json:"pid"`
	Cwd         string            `json:"cwd"`
	Env         map[string]string `json:"env"`
}

func wantFunctionError(t *testing.T, err error, typ, msg string) *FunctionError {
	t.Helper()
	var fe *FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v (%T), want a *FunctionError %s", err, err, typ)
	}
	if fe.Type != typ {
		t.Errorf("got error type %q, want %q (error %v)", fe.Type, typ, fe)
	}
	if msg != "" && fe.Message != msg {
		t.Errorf("got error message %q, want %q", fe.Message, msg)
	}
	if _, err := uuid.Parse(fe.RequestID); err != nil {
		t.Errorf("got request id %q, want a UUID", fe.RequestID)
	}
	return fe
}

func pids(p *Pool) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for pr := range p.procs {
		if pr.running {
			out = append(out, pr.pid)
		}
	}
	return out
}

func alive(pid int) bool {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return proc.Signal(syscall.Signal(0)) == nil
}

func TestRoundTripReturnsExactBytes(t *testing.T) {
	p, logs := newPool(t, Function{})
	payload := []byte(`{"a": 1,   "b":[true, null, "é\u00e9"],"c" :{}}`)
	got, err := p.Invoke(testCtx(t), payload)
	if err != nil {
		t.Fatalf("Invoke: got error %v, want nil", err)
	}
	if string(got) != string(payload) {
		t.Errorf("got response %q, want %q", got, payload)
	}
	s := p.Stats()
	if s.Invocations != 1 || s.Errors != 0 || s.ColdStarts != 1 || s.Procs != 1 {
		t.Errorf("got stats %+v, want 1 invocation, 0 errors, 1 cold start, 1 process", s)
	}
	if s.ColdStartTotal <= 0 {
		t.Errorf("got cold start total %v, want > 0", s.ColdStartTotal)
	}
	cs := logs.find("cold start")
	if len(cs) != 1 {
		t.Fatalf("got %d cold start log lines, want 1", len(cs))
	}
	if cs[0].attrs["function"] != "TestFunction" || cs[0].attrs["pid"] == nil || cs[0].attrs["duration"] == nil {
		t.Errorf("got cold start attrs %v, want function, pid and duration", cs[0].attrs)
	}
	if logs.contains("WARNING") {
		t.Errorf("got a WARNING from the runtime client (extension registration?), want none")
	}
}

func TestConcurrentInvocationsUseAtMostMaxProcs(t *testing.T) {
	p, _ := newPool(t, Function{MaxProcs: 4})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprintf(`{"sleep":"100ms","i":%d}`, i)
			got, err := p.Invoke(testCtx(t), []byte(payload))
			if err != nil {
				errs <- err
				return
			}
			if string(got) != payload {
				errs <- fmt.Errorf("got response %q, want %q", got, payload)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := p.Stats()
	if s.Invocations != n {
		t.Errorf("got %d invocations, want %d", s.Invocations, n)
	}
	if s.PeakProcs > 4 || s.Procs > 4 {
		t.Errorf("got peak %d, now %d processes, want at most 4", s.PeakProcs, s.Procs)
	}
	if s.ColdStarts < 1 || s.ColdStarts > 4 {
		t.Errorf("got %d cold starts, want 1 to 4", s.ColdStarts)
	}
}

func TestSequentialInvocationsReuseAWarmProcess(t *testing.T) {
	p, _ := newPool(t, Function{})
	first := invokeInfo(t, p)
	for i := range 5 {
		if got := invokeInfo(t, p); got.Pid != first.Pid {
			t.Errorf("invocation %d: got pid %d, want %d (warm)", i+2, got.Pid, first.Pid)
		}
	}
	if s := p.Stats(); s.ColdStarts != 1 || s.Invocations != 6 || s.PeakProcs != 1 {
		t.Errorf("got stats %+v, want 1 cold start, 6 invocations, 1 process", s)
	}
}

func TestFunctionErrorIsReported(t *testing.T) {
	p, _ := newPool(t, Function{})
	_, err := p.Invoke(testCtx(t), []byte(`{"error":"user 42"}`))
	wantFunctionError(t, err, "NotFoundError", "user 42 not found")
	if got, want := err.Error(), "NotFoundError: user 42 not found"; got != want {
		t.Errorf("got Error() %q, want %q", got, want)
	}
	// The process stays warm after a handled error.
	before := pids(p)
	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); err != nil {
		t.Fatalf("Invoke after error: got error %v, want nil", err)
	}
	if after := pids(p); !slices.Equal(before, after) {
		t.Errorf("got pids %v after a handled error, want %v", after, before)
	}
	if s := p.Stats(); s.Errors != 1 || s.Invocations != 2 || s.ColdStarts != 1 {
		t.Errorf("got stats %+v, want 1 error, 2 invocations, 1 cold start", s)
	}
}

func TestPanicIsReportedAndTheNextInvocationWorks(t *testing.T) {
	p, _ := newPool(t, Function{MaxProcs: 1})
	_, err := p.Invoke(testCtx(t), []byte(`{"panic":"boom"}`))
	// aws-lambda-go names a panic's type after the panic value's Go type.
	wantFunctionError(t, err, "string", "boom")
	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); err != nil {
		t.Fatalf("Invoke after panic: got error %v, want nil", err)
	}
	if s := p.Stats(); s.ColdStarts != 2 {
		t.Errorf("got %d cold starts, want 2 (the panicking process exits)", s.ColdStarts)
	}
}

func TestStreamedResponseErrorIsReported(t *testing.T) {
	p, _ := newPool(t, Function{})
	_, err := p.Invoke(testCtx(t), []byte(`{"stream_error":"disk on fire"}`))
	wantFunctionError(t, err, "errorString", "disk on fire")
}

func TestTimeoutKillsTheProcess(t *testing.T) {
	p, _ := newPool(t, Function{Timeout: time.Second, MaxProcs: 1})
	first := invokeInfo(t, p)
	_, err := p.Invoke(testCtx(t), []byte(`{"sleep":"30s"}`))
	wantFunctionError(t, err, "Sandbox.Timedout", "Task timed out after 1.00 seconds")
	next := invokeInfo(t, p)
	if next.Pid == first.Pid {
		t.Errorf("got pid %d after the timeout, want a new process", next.Pid)
	}
	if alive(first.Pid) {
		t.Errorf("got pid %d alive after its timeout, want it killed", first.Pid)
	}
	if s := p.Stats(); s.Timeouts != 1 || s.Errors != 1 || s.ColdStarts != 2 {
		t.Errorf("got stats %+v, want 1 timeout, 1 error, 2 cold starts", s)
	}
}

func TestExitDuringInvocation(t *testing.T) {
	p, logs := newPool(t, Function{MaxProcs: 1})
	first := invokeInfo(t, p)
	_, err := p.Invoke(testCtx(t), []byte(`{"exit":3}`))
	wantFunctionError(t, err, "Runtime.ExitError", "Runtime exited with error: exit status 3")
	next := invokeInfo(t, p)
	if next.Pid == first.Pid {
		t.Errorf("got pid %d after the exit, want a new process", next.Pid)
	}
	exits := logs.find("process exited")
	if len(exits) != 1 || exits[0].attrs["status"] != "exit status 3" {
		t.Errorf("got process exited logs %v, want one with status exit status 3", exits)
	}
}

func TestInitErrorExit(t *testing.T) {
	p, logs := newPool(t, Function{Env: []string{"TEST_INIT=exit"}})
	_, err := p.Invoke(testCtx(t), []byte(`{}`))
	wantFunctionError(t, err, "Runtime.ExitError", "Runtime exited with error: exit status 1")
	if !logs.contains("init failed: TABLE_NAME is not set") {
		t.Errorf("got no log line with the function's init failure, want one")
	}
	// Each invocation retries the init.
	_, err = p.Invoke(testCtx(t), []byte(`{}`))
	wantFunctionError(t, err, "Runtime.ExitError", "")
	if s := p.Stats(); s.ColdStarts != 0 || s.Errors != 2 || s.Invocations != 2 {
		t.Errorf("got stats %+v, want no cold starts, 2 invocations, 2 errors", s)
	}
}

func TestInitErrorPosted(t *testing.T) {
	p, logs := newPool(t, Function{Env: []string{"TEST_INIT=post"}})
	_, err := p.Invoke(testCtx(t), []byte(`{}`))
	wantFunctionError(t, err, "ConfigError", "TABLE_NAME is not set")
	// The function logs the runtime API's answer, then exits.
	waitForLog(t, logs, "init error reported: 202 Accepted")
	waitFor(t, "the process to exit", func() bool { return p.Stats().Procs == 0 })
	if got := len(logs.find("process exited")); got != 1 {
		t.Errorf("got %d process exited log lines, want 1", got)
	}
}

func TestInvalidRequestIDIsRejected(t *testing.T) {
	p, _ := newPool(t, Function{})
	out, err := p.Invoke(testCtx(t), []byte(`{"bogus_post":true}`))
	if err != nil {
		t.Fatalf("Invoke: got error %v, want nil", err)
	}
	var got struct {
		Status int
		Body   struct{ ErrorType string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("got %q, want JSON: %v", out, err)
	}
	if got.Status != 400 || got.Body.ErrorType != "InvalidRequestID" {
		t.Errorf("got %d %q, want 400 InvalidRequestID", got.Status, got.Body.ErrorType)
	}
}

func TestResponseTooLarge(t *testing.T) {
	p, _ := newPool(t, Function{})
	big, _ := json.Marshal(map[string]string{"x": strings.Repeat("a", maxResponseSize)})
	_, err := p.Invoke(testCtx(t), big)
	wantFunctionError(t, err, "Function.ResponseSizeTooLarge", "")
	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); err != nil {
		t.Fatalf("Invoke after a too large response: got error %v, want nil", err)
	}
}

func TestContextCancellation(t *testing.T) {
	p, _ := newPool(t, Function{MaxProcs: 1})
	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); err != nil {
		t.Fatalf("warm-up Invoke: got error %v, want nil", err)
	}

	// Cancelled while running: ctx.Err(), the function runs on.
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	running := make(chan error, 1)
	go func() {
		_, err := p.Invoke(ctx1, []byte(`{"sleep":"2s"}`))
		running <- err
	}()
	waitFor(t, "the invocation to run", func() bool { return p.busy() == 1 })
	cancel1()
	if err := <-running; !errors.Is(err, context.Canceled) {
		t.Fatalf("running: got error %v, want context.Canceled", err)
	}

	// Cancelled while queued behind it: never runs (it would kill the process).
	ctx2, cancel2 := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() {
		_, err := p.Invoke(ctx2, []byte(`{"exit":9}`))
		queued <- err
	}()
	waitFor(t, "the invocation to be queued", func() bool { return p.queued() == 1 })
	cancel2()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued: got error %v, want context.Canceled", err)
	}

	// Already cancelled: never runs.
	if _, err := p.Invoke(ctx2, []byte(`{"exit":9}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got error %v, want context.Canceled", err)
	}

	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); err != nil {
		t.Fatalf("Invoke after cancellations: got error %v, want nil", err)
	}
	if s := p.Stats(); s.Invocations != 3 || s.Errors != 0 || s.ColdStarts != 1 {
		t.Errorf("got stats %+v, want 3 invocations (warm-up, sleep, last), no errors, 1 cold start", s)
	}
}

func TestInitTimeout(t *testing.T) {
	defer func(l time.Duration) { initLimit = l }(initLimit)
	initLimit = 0
	p, _ := newPool(t, Function{Timeout: 500 * time.Millisecond, Env: []string{"TEST_INIT=hang"}})
	_, err := p.Invoke(testCtx(t), []byte(`{}`))
	wantFunctionError(t, err, "Sandbox.Timedout", "Task timed out after 0.50 seconds")
	waitFor(t, "the process to go", func() bool { return p.Stats().Procs == 0 })
	if s := p.Stats(); s.Timeouts != 1 || s.Errors != 1 || s.ColdStarts != 0 {
		t.Errorf("got stats %+v, want 1 timeout, 1 error, no cold start", s)
	}
}

func TestDeadlineAndEnvironment(t *testing.T) {
	const timeout = 7 * time.Second
	p, _ := newPool(t, Function{
		Name:     "MessageFunction",
		Timeout:  timeout,
		MemoryMB: 256,
		Env: []string{
			"AWS_REGION=eu-west-3",
			"TABLE_NAME=connections",
			"TZ=Europe/Paris",
			"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1",
		},
	})
	info := invokeInfo(t, p,
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
		"AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "_HANDLER", "LAMBDA_TASK_ROOT",
		"AWS_EXECUTION_ENV", "TZ", "AWS_REGION", "AWS_DEFAULT_REGION", "TABLE_NAME", "HOME")

	if info.RemainingMS <= 0 || info.RemainingMS > timeout.Milliseconds() {
		t.Errorf("got %d ms remaining, want in (0, %d]", info.RemainingMS, timeout.Milliseconds())
	}
	if _, err := uuid.Parse(info.RequestID); err != nil {
		t.Errorf("got request id %q, want a UUID", info.RequestID)
	}
	if want := "arn:aws:lambda:eu-west-3:000000000000:function:MessageFunction"; info.ARN != want {
		t.Errorf("got ARN %q, want %q", info.ARN, want)
	}
	if !strings.HasPrefix(info.TraceID, "Root=1-") || !strings.HasSuffix(info.TraceID, ";Sampled=0") {
		t.Errorf("got trace id %q, want Root=1-...;Sampled=0", info.TraceID)
	}
	dir := filepath.Dir(fnPath)
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "MessageFunction",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/MessageFunction",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                dir,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"TZ":                              "Europe/Paris",
		"AWS_REGION":                      "eu-west-3",
		"AWS_DEFAULT_REGION":              "eu-west-3",
		"TABLE_NAME":                      "connections",
	}
	for k, v := range want {
		if info.Env[k] != v {
			t.Errorf("got %s=%q, want %q", k, info.Env[k], v)
		}
	}
	if s := info.Env["AWS_LAMBDA_LOG_STREAM_NAME"]; !strings.Contains(s, "/[$LATEST]") {
		t.Errorf("got log stream name %q, want YYYY/MM/DD/[$LATEST]...", s)
	}
	if h, ok := info.Env["HOME"]; ok {
		t.Errorf("got HOME=%q, want the host environment not inherited", h)
	}
	if info.Cwd != dir {
		t.Errorf("got working directory %q, want %q", info.Cwd, dir)
	}
}

func TestDefaultEnvironment(t *testing.T) {
	p, _ := newPool(t, Function{})
	info := invokeInfo(t, p, "AWS_REGION", "AWS_DEFAULT_REGION", "TZ", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
	want := map[string]string{
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"TZ":                              ":UTC",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
	}
	for k, v := range want {
		if info.Env[k] != v {
			t.Errorf("got %s=%q, want %q", k, info.Env[k], v)
		}
	}
	if want := "arn:aws:lambda:us-east-1:000000000000:function:TestFunction"; info.ARN != want {
		t.Errorf("got ARN %q, want %q", info.ARN, want)
	}
	if info.RemainingMS <= 0 || info.RemainingMS > defaultTimeout.Milliseconds() {
		t.Errorf("got %d ms remaining, want in (0, %d]", info.RemainingMS, defaultTimeout.Milliseconds())
	}
}

func TestFunctionOutputIsLogged(t *testing.T) {
	p, logs := newPool(t, Function{})
	if _, err := p.Invoke(testCtx(t), []byte(`{"print":"hello from the function"}`)); err != nil {
		t.Fatalf("Invoke: got error %v, want nil", err)
	}
	pid := pids(p)[0]
	waitForLog(t, logs, "hello from the function")
	recs := logs.find("hello from the function")
	if len(recs) != 1 {
		t.Fatalf("got %d records of the function's output, want 1", len(recs))
	}
	if recs[0].level != slog.LevelInfo || recs[0].attrs["function"] != "TestFunction" || recs[0].attrs["pid"] != int64(pid) {
		t.Errorf("got record %+v, want info level, function TestFunction, pid %d", recs[0], pid)
	}
}

// waitFor waits for cond, polling.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("got tired of waiting for %s, want it within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForLog waits for a log record containing sub: the process's output
// may be logged just after the invocation's result is in.
func waitForLog(t *testing.T, logs *logRecorder, sub string) {
	t.Helper()
	waitFor(t, "a log record containing "+strconv.Quote(sub), func() bool { return logs.contains(sub) })
}

func TestCloseStopsProcesses(t *testing.T) {
	before := runtime.NumGoroutine()
	p, logs := newPool(t, Function{MaxProcs: 3})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Invoke(testCtx(t), []byte(`{"sleep":"300ms"}`))
		}()
	}
	wg.Wait()
	running := pids(p)
	if len(running) == 0 {
		t.Fatalf("got no processes, want some")
	}

	// One invocation in flight while closing.
	inflight := make(chan error, 1)
	go func() {
		_, err := p.Invoke(testCtx(t), []byte(`{"sleep":"30s"}`))
		inflight <- err
	}()
	waitFor(t, "the invocation to run", func() bool { return p.busy() == 1 })

	if err := p.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	for _, pid := range running {
		if alive(pid) {
			t.Errorf("got pid %d alive after Close, want it gone", pid)
		}
	}
	if err := <-inflight; !errors.Is(err, ErrClosed) {
		t.Errorf("in-flight invocation: got error %v, want ErrClosed", err)
	}
	if _, err := p.Invoke(testCtx(t), []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: got error %v, want ErrClosed", err)
	}
	if s := p.Stats(); s.Procs != 0 {
		t.Errorf("got %d processes after Close, want 0", s.Procs)
	}
	if got := len(logs.find("SIGTERM received")); got != len(running) {
		t.Errorf("got %d SIGTERM log lines, want %d (one per process)", got, len(running))
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: got error %v, want nil", err)
	}

	// No goroutine left behind (allowing the runtime a moment to settle).
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("got %d goroutines after Close, want at most %d:\n%s", n, before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnstartableExecutable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("exec format errors are a unix thing")
	}
	path := filepath.Join(t.TempDir(), "bootstrap")
	// Built for another machine, say: execve fails with ENOEXEC.
	if err := os.WriteFile(path, []byte{0x7f, 'E', 'L', 'F', 0, 0, 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(Function{Name: "F", Path: path, Logger: slog.New(&logRecorder{})})
	if err != nil {
		t.Fatalf("NewPool: got error %v, want nil", err)
	}
	defer p.Close()
	_, err = p.Invoke(testCtx(t), []byte(`{}`))
	fe := wantFunctionError(t, err, "Runtime.InvalidEntrypoint", "")
	if !strings.Contains(fe.Message, "exec format error") {
		t.Errorf("got message %q, want one with exec format error", fe.Message)
	}
	if s := p.Stats(); s.Procs != 0 || s.ColdStarts != 0 {
		t.Errorf("got stats %+v, want no process and no cold start", s)
	}
}

func TestNewPoolRejectsBadFunctions(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []Function{
		{Path: fnPath},
		{Name: "F"},
		{Name: "F", Path: filepath.Join(dir, "missing")},
		{Name: "F", Path: dir},
		{Name: "F", Path: fnPath, Timeout: -1},
	} {
		if _, err := NewPool(fn); err == nil {
			t.Errorf("NewPool(%+v): got nil error, want one", fn)
		}
	}
	if runtime.GOOS != "windows" {
		if _, err := NewPool(Function{Name: "F", Path: notExec}); err == nil {
			t.Errorf("NewPool(non-executable): got nil error, want one")
		}
	}
}

func TestBuildReportsCompilerOutput(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\nfunc main() { undefinedThing() }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Build(testCtx(t), dir, filepath.Join(dir, "bootstrap"))
	if err == nil || !strings.Contains(err.Error(), "undefinedThing") {
		t.Errorf("got error %v, want one quoting the compiler (undefinedThing)", err)
	}
}

// busy returns how many processes are running an invocation.
func (p *Pool) busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pr := range p.procs {
		if pr.cur != nil {
			n++
		}
	}
	return n
}

// queued returns how many invocations wait for a process.
func (p *Pool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}
