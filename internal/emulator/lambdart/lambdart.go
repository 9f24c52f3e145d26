// Package lambdart runs Lambda function binaries (provided.al2023-style
// `bootstrap` executables) locally behind an emulation of the AWS Lambda
// Runtime API: a pool of processes per function, one invocation at a time per
// process, cold starts measured, a timeout per invocation.
//
// Each process gets its own Runtime API server on 127.0.0.1 (an ephemeral
// port, passed in AWS_LAMBDA_RUNTIME_API) serving
//
//	GET  /2018-06-01/runtime/invocation/next
//	POST /2018-06-01/runtime/invocation/{id}/response
//	POST /2018-06-01/runtime/invocation/{id}/error
//	POST /2018-06-01/runtime/init/error
//	POST /2020-01-01/extension/register     (internal extensions, e.g. lambda.WithEnableSIGTERM)
//	GET  /2020-01-01/extension/event/next   (blocks; no events are delivered)
//
// The process does not inherit the host environment: it gets Function.Env
// plus the variables Lambda sets (see NewPool). Pass what the function needs
// (AWS credentials, endpoints, HOME...) in Env.
package lambdart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

const (
	defaultTimeout  = 30 * time.Second
	defaultMaxProcs = 10
	defaultMemoryMB = 128
	defaultRegion   = "us-east-1"

	// killGrace is how long a process has to exit after SIGTERM before SIGKILL.
	killGrace = 2 * time.Second
	// maxResponseSize is Lambda's limit for a synchronous response payload.
	maxResponseSize = 6291556
	// maxErrorSize bounds the error documents read from the runtime.
	maxErrorSize = 1 << 20
)

// initLimit is Lambda's limit on the init phase. Past it Lambda retries the
// init within the invocation, under the function's timeout: a process gets
// initLimit+Timeout to ask for its first invocation. A variable for tests.
var initLimit = 10 * time.Second

// ErrClosed is returned by Invoke after Close, and by invocations that were
// waiting or running when the pool was closed.
var ErrClosed = errors.New("lambdart: pool closed")

// Function describes one function to run.
type Function struct {
	Name     string        // logical name, e.g. "MessageFunction"; used in logs and AWS_LAMBDA_FUNCTION_NAME
	Path     string        // the bootstrap executable
	Env      []string      // the function's environment, KEY=VALUE (the pool adds the runtime variables)
	Timeout  time.Duration // per invocation; default 30s
	MaxProcs int           // most processes at once, i.e. the function's concurrency; default 10
	MemoryMB int           // reported in AWS_LAMBDA_FUNCTION_MEMORY_SIZE; default 128
	Logger   *slog.Logger  // default slog.Default()
}

// FunctionError is an invocation's failure as Lambda reports it: the error the
// function returned (POST .../error), the one its runtime reported while
// initialising (POST /runtime/init/error), or one raised by the sandbox:
//
//	Runtime.ExitError              the process exited (during init or the invocation)
//	Runtime.InvalidEntrypoint      the executable could not be started
//	Sandbox.Timedout               the invocation ran past Function.Timeout, or the init past
//	                               10s+Timeout (the process is killed)
//	Function.ResponseSizeTooLarge  the response was over 6291556 bytes
//
// Lambda's Invoke API prefixes the sandbox's messages with
// "RequestId: <RequestID> Error: "; Message does not.
type FunctionError struct {
	Type      string // errorType, e.g. "Runtime.ExitError" or the function's error type ("errorString")
	Message   string // errorMessage
	RequestID string // the invocation's request id, if it had one
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// ErrorMessage returns the errorMessage alone, e.g. "Unauthorized" for a
// Lambda authorizer that refuses a caller.
func (e *FunctionError) ErrorMessage() string { return e.Message }

// ErrorType returns the errorType alone.
func (e *FunctionError) ErrorType() string { return e.Type }

// Stats are a pool's counters since NewPool.
type Stats struct {
	Invocations    int64         // invocations that have ended with a response or a *FunctionError
	Errors         int64         // of those, the ones that ended in a *FunctionError (init failures and timeouts included)
	Timeouts       int64         // of those, the ones that timed out (Sandbox.Timedout)
	ColdStarts     int64         // processes that reached their first GET /next
	ColdStartTotal time.Duration // sum of their times from process start to first GET /next
	Procs          int           // processes now (starting, idle, busy or stopping)
	PeakProcs      int           // most processes at once
}

// Pool runs the processes of one function. Its methods are safe for
// concurrent use.
type Pool struct {
	fn      Function
	log     *slog.Logger
	baseEnv []string // the runtime variables, then fn.Env
	arn     string

	wg sync.WaitGroup // process goroutines

	mu     sync.Mutex
	closed bool
	procs  map[*proc]struct{}
	idle   []*proc       // processes waiting in GET /next with nothing to do; last is most recent
	queue  []*invocation // invocations waiting for a process
	stats  Stats
}

type invocation struct {
	id      string
	payload []byte
	created time.Time
	done    chan struct{} // closed when finished

	// Guarded by Pool.mu.
	proc      *proc // assigned process, if any
	delivered bool  // handed to the process by GET /next
	started   time.Time
	timer     *time.Timer
	finished  bool
	resp      []byte
	err       error
}

// NewPool checks fn, applies the defaults and returns a pool with no process
// running yet. Each process gets, besides fn.Env:
//
//	AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT (cannot be overridden)
//	AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION=$LATEST,
//	AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/NAME,
//	AWS_LAMBDA_LOG_STREAM_NAME, AWS_LAMBDA_INITIALIZATION_TYPE=on-demand,
//	_HANDLER=bootstrap, LAMBDA_TASK_ROOT (the binary's directory, also the
//	working directory), AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023, TZ=:UTC,
//	AWS_REGION and AWS_DEFAULT_REGION (us-east-1), PATH, LANG
//
// where fn.Env's values win.
func NewPool(fn Function) (*Pool, error) {
	if fn.Name == "" {
		return nil, errors.New("lambdart: Function.Name is empty")
	}
	if fn.Path == "" {
		return nil, fmt.Errorf("lambdart: %s: Function.Path is empty", fn.Name)
	}
	if fn.Timeout < 0 || fn.MaxProcs < 0 || fn.MemoryMB < 0 {
		return nil, fmt.Errorf("lambdart: %s: negative Timeout, MaxProcs or MemoryMB", fn.Name)
	}
	path, err := filepath.Abs(fn.Path)
	if err != nil {
		return nil, fmt.Errorf("lambdart: %s: %w", fn.Name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("lambdart: %s: %w", fn.Name, err)
	}
	if !fi.Mode().IsRegular() || (runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0) {
		return nil, fmt.Errorf("lambdart: %s: %s is not an executable file", fn.Name, path)
	}
	fn.Path = path
	if fn.Timeout == 0 {
		fn.Timeout = defaultTimeout
	}
	if fn.MaxProcs == 0 {
		fn.MaxProcs = defaultMaxProcs
	}
	if fn.MemoryMB == 0 {
		fn.MemoryMB = defaultMemoryMB
	}
	if fn.Logger == nil {
		fn.Logger = slog.Default()
	}
	fn.Env = append([]string(nil), fn.Env...)

	region := lookupEnv(fn.Env, "AWS_REGION")
	if region == "" {
		region = lookupEnv(fn.Env, "AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = defaultRegion
	}
	defaults := []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT=" + filepath.Dir(path),
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"AWS_REGION=" + region,
		"AWS_DEFAULT_REGION=" + region,
		"AWS_LAMBDA_FUNCTION_NAME=" + fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(fn.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + fn.Name,
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
	}
	return &Pool{
		fn:      fn,
		log:     fn.Logger,
		baseEnv: mergeEnv(defaults, fn.Env),
		arn:     "arn:aws:lambda:" + region + ":000000000000:function:" + fn.Name,
		procs:   make(map[*proc]struct{}),
	}, nil
}

// Invoke runs one invocation with payload (the event JSON) on an idle
// process, starting one (a cold start) if none is idle and fewer than
// MaxProcs run, else waiting for one. It returns the function's response
// payload, or an error: a *FunctionError when the invocation failed as it
// would on Lambda (see FunctionError), ErrClosed if the pool is or gets
// closed, or ctx.Err() if ctx ends first. An invocation abandoned that way
// before a process took it is never run; one already running runs to its
// end (or its timeout) and its result is dropped.
func (p *Pool) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inv := &invocation{
		id:      uuid.NewString(),
		payload: bytes.Clone(payload),
		created: time.Now(),
		done:    make(chan struct{}),
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.queue = append(p.queue, inv)
	p.dispatchLocked()
	p.mu.Unlock()

	select {
	case <-inv.done:
		return inv.resp, inv.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if inv.finished {
		return inv.resp, inv.err
	}
	if !inv.delivered {
		p.removeQueuedLocked(inv)
		if pr := inv.proc; pr != nil && pr.pending == inv {
			pr.pending = nil
			p.updateIdleLocked(pr)
			p.dispatchLocked()
		}
		inv.finished = true
		close(inv.done)
	}
	return nil, ctx.Err()
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Procs = len(p.procs)
	return s
}

// Close stops every process (SIGTERM, then SIGKILL after a short grace) and
// waits for them. Invocations waiting or running fail with ErrClosed, and so
// does Invoke afterwards. Close always returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	for _, inv := range p.queue {
		p.finishLocked(inv, nil, ErrClosed)
	}
	p.queue = nil
	procs := make([]*proc, 0, len(p.procs))
	for pr := range p.procs {
		procs = append(procs, pr)
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.stop()
		}()
	}
	wg.Wait()
	p.wg.Wait()
	return nil
}

// dispatchLocked hands queued invocations to idle processes, starting
// processes while there is room.
func (p *Pool) dispatchLocked() {
	for len(p.queue) > 0 {
		inv := p.queue[0]
		if pr := p.warmLocked(); pr != nil {
			p.queue = p.queue[1:]
			pr.pending = inv
			inv.proc = pr
			p.updateIdleLocked(pr)
			pr.broadcastLocked()
			continue
		}
		if p.closed || len(p.procs) >= p.fn.MaxProcs {
			return
		}
		p.queue = p.queue[1:]
		p.spawnLocked(inv)
	}
}

// warmLocked returns a process that can take an invocation now: the most
// recent idle one (waiting in GET /next), else one that has just answered and
// has not asked for its next invocation yet (it gets it when it does, so that
// back-to-back invocations reuse a warm process as on Lambda; if it exits
// instead, the invocation is queued again).
func (p *Pool) warmLocked() *proc {
	if n := len(p.idle); n > 0 {
		return p.idle[n-1]
	}
	for pr := range p.procs {
		if pr.warm && pr.cur == nil && pr.pending == nil && !pr.failed && !pr.dead {
			return pr
		}
	}
	return nil
}

func (p *Pool) removeQueuedLocked(inv *invocation) {
	for i, q := range p.queue {
		if q == inv {
			p.queue = append(p.queue[:i:i], p.queue[i+1:]...)
			return
		}
	}
}

// updateIdleLocked puts pr in p.idle or takes it out, according to its state.
func (p *Pool) updateIdleLocked(pr *proc) {
	want := pr.waiters > 0 && pr.pending == nil && pr.cur == nil && !pr.failed && !pr.dead
	if want == pr.idle {
		return
	}
	pr.idle = want
	if want {
		p.idle = append(p.idle, pr)
		return
	}
	for i, q := range p.idle {
		if q == pr {
			p.idle = append(p.idle[:i:i], p.idle[i+1:]...)
			return
		}
	}
}

// finishLocked ends inv with resp or err, once.
func (p *Pool) finishLocked(inv *invocation, resp []byte, err error) {
	if inv.finished {
		return
	}
	inv.finished = true
	inv.resp, inv.err = resp, err
	if inv.timer != nil {
		inv.timer.Stop()
	}
	close(inv.done)
	var fe *FunctionError
	if err != nil && !errors.As(err, &fe) {
		return // ErrClosed, or a failure to start the process: not an invocation
	}
	p.stats.Invocations++
	outcome := "ok"
	if fe != nil {
		p.stats.Errors++
		outcome = fe.Type
	}
	// The duration is the function's (Lambda's "Duration"), or the time the
	// caller waited if the invocation never reached the function.
	since := inv.created
	if inv.delivered {
		since = inv.started
	}
	p.log.Debug("invocation", "function", p.fn.Name, "request_id", inv.id,
		"duration", time.Since(since), "delivered", inv.delivered, "outcome", outcome)
}

func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := cutEnv(kv); ok && k == key {
			v = val
		}
	}
	return v
}

func cutEnv(kv string) (key, value string, ok bool) {
	// A leading '=' belongs to the key (Windows' per-drive variables).
	for i := 1; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// mergeEnv concatenates layers, a later KEY=VALUE replacing an earlier one
// with the same key in place.
func mergeEnv(layers ...[]string) []string {
	var out []string
	at := make(map[string]int)
	for _, layer := range layers {
		for _, kv := range layer {
			k, _, _ := cutEnv(kv)
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}
