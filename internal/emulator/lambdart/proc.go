package lambdart

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

const (
	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	// aws-lambda-go sends these as HTTP trailers of POST .../response when
	// the handler's io.Reader fails part-way through the response.
	trailerErrorType = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody = "Lambda-Runtime-Function-Error-Body"

	headerExtensionName = "Lambda-Extension-Name"
	headerExtensionID   = "Lambda-Extension-Identifier"
)

// proc is one function process and its Runtime API server.
type proc struct {
	pool  *Pool
	cmd   *exec.Cmd
	pid   int
	start time.Time
	ready chan struct{} // closed once pid is set; handlers wait for it
	done  chan struct{} // closed once the process has exited and dead is set

	// Guarded by pool.mu.
	running bool          // the process has been started
	reaped  bool          // Wait has returned: signals must not be sent any more
	warm    bool          // it has asked for its first invocation
	failed  bool          // it must get no more invocations (timed out, init error)
	dead    bool          // it has exited and left the pool
	idle    bool          // it is in pool.idle
	waiters int           // GET /next requests waiting
	pending *invocation   // assigned to it, not yet handed over
	cur     *invocation   // handed over, not yet answered
	wake    chan struct{} // closed (and replaced) when waiters should look again
}

// spawnLocked adds a process to the pool with inv assigned to it, and starts
// it in the background.
func (p *Pool) spawnLocked(inv *invocation) {
	pr := &proc{
		pool:    p,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		wake:    make(chan struct{}),
		pending: inv,
	}
	inv.proc = pr
	p.procs[pr] = struct{}{}
	if n := len(p.procs); n > p.stats.PeakProcs {
		p.stats.PeakProcs = n
	}
	p.wg.Add(1)
	go p.run(pr)
}

func (pr *proc) broadcastLocked() {
	close(pr.wake)
	pr.wake = make(chan struct{})
}

// signalLocked sends sig to the process (and its process group, where there
// is one) if it is still running.
func (pr *proc) signalLocked(sig syscall.Signal) {
	if !pr.running || pr.reaped {
		return
	}
	signalProcess(pr.cmd.Process, sig)
}

// stop sends SIGTERM, then SIGKILL if the process has not exited after
// killGrace, and waits for it to exit.
func (pr *proc) stop() {
	p := pr.pool
	p.mu.Lock()
	pr.signalLocked(syscall.SIGTERM)
	p.mu.Unlock()
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-pr.done:
		return
	case <-t.C:
	}
	p.mu.Lock()
	pr.signalLocked(syscall.SIGKILL)
	p.mu.Unlock()
	<-pr.done
}

// run starts the process, waits for it to exit and cleans up.
func (p *Pool) run(pr *proc) {
	defer p.wg.Done()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.exited(pr, fmt.Errorf("lambdart: %s: runtime API listener: %w", p.fn.Name, err))
		return
	}
	srv := &http.Server{
		Handler:           pr.mux(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		_ = srv.Serve(ln)
	}()
	defer func() {
		// Handlers return once pr.done is closed; give them a moment.
		ctx, cancel := context.WithTimeout(context.Background(), killGrace)
		_ = srv.Shutdown(ctx)
		cancel()
		_ = srv.Close()
		served.Wait()
	}()

	outR, outW, err := os.Pipe()
	if err != nil {
		p.exited(pr, err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		p.exited(pr, err)
		return
	}
	cmd := exec.Command(p.fn.Path)
	cmd.Dir = filepath.Dir(p.fn.Path)
	cmd.Env = mergeEnv(
		[]string{"AWS_LAMBDA_LOG_STREAM_NAME=" + logStreamName()},
		p.baseEnv,
		[]string{"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String()},
	)
	cmd.Stdout = outW
	cmd.Stderr = errW
	setProcAttr(cmd)
	pr.cmd = cmd

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		p.exited(pr, ErrClosed)
		return
	}
	p.mu.Unlock()

	pr.start = time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		p.exited(pr, &entrypointError{err})
		return
	}
	pr.pid = cmd.Process.Pid
	close(pr.ready)

	var logs sync.WaitGroup
	for _, r := range []*os.File{outR, errR} {
		logs.Add(1)
		go func() {
			defer logs.Done()
			pr.copyLogs(r)
		}()
	}

	p.mu.Lock()
	pr.running = true
	if p.closed {
		pr.signalLocked(syscall.SIGTERM) // Close's stop may have missed it
	}
	p.mu.Unlock()
	p.log.Debug("process started", "function", p.fn.Name, "pid", pr.pid)
	initTimer := time.AfterFunc(initLimit+p.fn.Timeout, func() { p.initTimedOut(pr) })

	waitErr := cmd.Wait()
	initTimer.Stop()
	p.mu.Lock()
	pr.reaped = true
	p.mu.Unlock()

	// The pipes reach EOF when the process is gone, unless it left children
	// holding them.
	logsDone := make(chan struct{})
	go func() {
		logs.Wait()
		close(logsDone)
	}()
	select {
	case <-logsDone:
	case <-time.After(killGrace):
		outR.Close()
		errR.Close()
		<-logsDone
	}
	outR.Close()
	errR.Close()

	p.exited(pr, &exitError{waitErr})
}

// entrypointError is a failure to start the executable.
type entrypointError struct{ err error }

func (e *entrypointError) Error() string { return e.err.Error() }

// exitError is the process's exit; err is nil for status 0.
type exitError struct{ err error }

func (e *exitError) Error() string {
	if e.err == nil {
		return "Runtime exited without providing a reason"
	}
	return "Runtime exited with error: " + e.err.Error()
}

// exited removes pr from the pool, fails its invocation and wakes its
// handlers. why is an *exitError, an *entrypointError or another error
// (which never started the process).
func (p *Pool) exited(pr *proc, why error) {
	p.mu.Lock()
	pr.dead = true
	delete(p.procs, pr)
	p.updateIdleLocked(pr)

	fail := func(inv *invocation) {
		var err error
		var ee *exitError
		var se *entrypointError
		switch {
		case p.closed:
			err = ErrClosed
		case errors.As(why, &ee):
			err = &FunctionError{Type: "Runtime.ExitError", Message: ee.Error(), RequestID: inv.id}
		case errors.As(why, &se):
			err = &FunctionError{Type: "Runtime.InvalidEntrypoint", Message: se.Error(), RequestID: inv.id}
		default:
			err = why
		}
		p.finishLocked(inv, nil, err)
	}
	if inv := pr.cur; inv != nil {
		pr.cur = nil
		fail(inv)
	}
	if inv := pr.pending; inv != nil {
		pr.pending = nil
		if pr.warm && !p.closed {
			// It was given to a process that died before taking it: retry.
			inv.proc = nil
			p.queue = append([]*invocation{inv}, p.queue...)
		} else {
			fail(inv)
		}
	}
	close(pr.done)
	pr.broadcastLocked()
	p.dispatchLocked()
	p.mu.Unlock()

	var ee *exitError
	switch {
	case errors.As(why, &ee):
		p.log.Info("process exited", "function", p.fn.Name, "pid", pr.pid, "status", exitStatus(ee.err))
	case errors.Is(why, ErrClosed):
	default:
		p.log.Error("process failed to start", "function", p.fn.Name, "err", why.Error())
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// copyLogs logs each line the process writes to r.
func (pr *proc) copyLogs(r io.Reader) {
	p := pr.pool
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			msg := strings.TrimRight(string(line), "\r\n")
			p.log.Info(msg, "function", p.fn.Name, "pid", pr.pid)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (pr *proc) mux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /2018-06-01/runtime/invocation/next", pr.handleNext)
	m.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", pr.handleResponse)
	m.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", pr.handleError)
	m.HandleFunc("POST /2018-06-01/runtime/init/error", pr.handleInitError)
	m.HandleFunc("POST /2020-01-01/extension/register", pr.handleExtensionRegister)
	m.HandleFunc("GET /2020-01-01/extension/event/next", pr.handleExtensionNext)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A request can only come from the process once it has started, but
		// it may beat run to recording the pid.
		select {
		case <-pr.ready:
			m.ServeHTTP(w, r)
		case <-pr.done:
			writeAPIError(w, http.StatusForbidden, "InvalidStateTransition", "the runtime has exited")
		}
	})
}

// handleNext blocks until an invocation is assigned to the process, then
// hands it over.
func (pr *proc) handleNext(w http.ResponseWriter, r *http.Request) {
	p := pr.pool
	p.mu.Lock()
	if !pr.warm {
		pr.warm = true
		d := time.Since(pr.start)
		p.stats.ColdStarts++
		p.stats.ColdStartTotal += d
		p.log.Info("cold start", "function", p.fn.Name, "pid", pr.pid, "duration", d)
	}
	pr.waiters++
	for {
		if pr.dead || pr.failed {
			pr.waiters--
			p.updateIdleLocked(pr)
			p.mu.Unlock()
			// The process is on its way out: hold the request until it is gone.
			select {
			case <-pr.done:
			case <-r.Context().Done():
			}
			return
		}
		if inv := pr.pending; inv != nil && pr.cur == nil {
			pr.pending = nil
			pr.cur = inv
			pr.waiters--
			p.updateIdleLocked(pr)
			inv.delivered = true
			inv.started = time.Now()
			deadline := inv.started.Add(p.fn.Timeout)
			inv.timer = time.AfterFunc(p.fn.Timeout, func() { p.timedOut(pr, inv) })
			p.mu.Unlock()

			h := w.Header()
			h.Set(headerRequestID, inv.id)
			h.Set(headerDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
			h.Set(headerFunctionARN, p.arn)
			h.Set(headerTraceID, traceID(inv.started))
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(inv.payload)
			return
		}
		p.updateIdleLocked(pr)
		p.dispatchLocked()
		if pr.pending != nil && pr.cur == nil {
			continue
		}
		wake := pr.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-r.Context().Done():
			p.mu.Lock()
			pr.waiters--
			p.updateIdleLocked(pr)
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
	}
}

// timedOut fails inv with Sandbox.Timedout and kills its process, if inv is
// still running on it.
func (p *Pool) timedOut(pr *proc, inv *invocation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.cur != inv {
		return
	}
	pr.cur = nil
	pr.failed = true
	p.updateIdleLocked(pr)
	p.stats.Timeouts++
	p.finishLocked(inv, nil, &FunctionError{
		Type:      "Sandbox.Timedout",
		Message:   fmt.Sprintf("Task timed out after %.2f seconds", p.fn.Timeout.Seconds()),
		RequestID: inv.id,
	})
	p.log.Warn("invocation timed out, killing the process", "function", p.fn.Name, "pid", pr.pid, "request_id", inv.id)
	pr.signalLocked(syscall.SIGKILL)
}

// initTimedOut fails the pending invocation of a process that has not asked
// for its first invocation in time, and kills the process.
func (p *Pool) initTimedOut(pr *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.warm || pr.dead || pr.failed {
		return
	}
	pr.failed = true
	p.updateIdleLocked(pr)
	limit := initLimit + p.fn.Timeout
	if inv := pr.pending; inv != nil {
		pr.pending = nil
		p.stats.Timeouts++
		p.finishLocked(inv, nil, &FunctionError{
			Type:      "Sandbox.Timedout",
			Message:   fmt.Sprintf("Task timed out after %.2f seconds", limit.Seconds()),
			RequestID: inv.id,
		})
	}
	p.log.Warn("init timed out, killing the process", "function", p.fn.Name, "pid", pr.pid, "limit", limit)
	pr.signalLocked(syscall.SIGKILL)
}

// currentLocked returns the invocation running on pr if its id is id. It writes
// Lambda's 400 InvalidRequestID answer and returns nil otherwise.
func (pr *proc) currentLocked(w http.ResponseWriter, id string) *invocation {
	if inv := pr.cur; inv != nil && inv.id == id {
		return inv
	}
	writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID: "+id)
	return nil
}

func (pr *proc) handleResponse(w http.ResponseWriter, r *http.Request) {
	p := pr.pool
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResponseSize+1))
	if err != nil {
		return // the process went away
	}
	tooLarge := len(body) > maxResponseSize

	p.mu.Lock()
	inv := pr.currentLocked(w, r.PathValue("id"))
	if inv == nil {
		p.mu.Unlock()
		return
	}
	pr.cur = nil
	switch {
	case tooLarge:
		p.finishLocked(inv, nil, &FunctionError{
			Type:      "Function.ResponseSizeTooLarge",
			Message:   fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxResponseSize),
			RequestID: inv.id,
		})
	case r.Trailer.Get(trailerErrorType) != "":
		fe := trailerError(r.Trailer)
		fe.RequestID = inv.id
		p.finishLocked(inv, nil, fe)
	default:
		p.finishLocked(inv, body, nil)
	}
	p.updateIdleLocked(pr)
	p.dispatchLocked()
	p.mu.Unlock()

	if tooLarge {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", maxResponseSize))
		return
	}
	writeAccepted(w)
}

func (pr *proc) handleError(w http.ResponseWriter, r *http.Request) {
	p := pr.pool
	body, err := io.ReadAll(io.LimitReader(r.Body, maxErrorSize))
	if err != nil {
		return
	}
	fe := parseErrorDoc(body, r.Header.Get(headerErrorType), "Unhandled")

	p.mu.Lock()
	inv := pr.currentLocked(w, r.PathValue("id"))
	if inv == nil {
		p.mu.Unlock()
		return
	}
	pr.cur = nil
	fe.RequestID = inv.id
	p.finishLocked(inv, nil, fe)
	p.updateIdleLocked(pr)
	p.dispatchLocked()
	p.mu.Unlock()
	writeAccepted(w)
}

func (pr *proc) handleInitError(w http.ResponseWriter, r *http.Request) {
	p := pr.pool
	body, err := io.ReadAll(io.LimitReader(r.Body, maxErrorSize))
	if err != nil {
		return
	}
	fe := parseErrorDoc(body, r.Header.Get(headerErrorType), "Runtime.InitError")

	p.mu.Lock()
	if pr.warm {
		p.mu.Unlock()
		writeAPIError(w, http.StatusForbidden, "InvalidStateTransition",
			"init error reported after the runtime asked for an invocation")
		return
	}
	pr.failed = true
	if inv := pr.pending; inv != nil {
		pr.pending = nil
		fe.RequestID = inv.id
		p.finishLocked(inv, nil, fe)
	}
	p.updateIdleLocked(pr)
	// The runtime is expected to exit now; the sandbox is reset if not.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTimer(killGrace)
		defer t.Stop()
		select {
		case <-pr.done:
		case <-t.C:
			pr.stop()
		}
	}()
	p.mu.Unlock()

	p.log.Warn("init error", "function", p.fn.Name, "pid", pr.pid, "error_type", fe.Type, "error", fe.Message)
	writeAccepted(w)
}

// handleExtensionRegister accepts internal extensions (aws-lambda-go registers
// one for lambda.WithEnableSIGTERM).
func (pr *proc) handleExtensionRegister(w http.ResponseWriter, r *http.Request) {
	p := pr.pool
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxErrorSize))
	p.log.Debug("extension registered", "function", p.fn.Name, "pid", pr.pid, "extension", r.Header.Get(headerExtensionName))
	w.Header().Set(headerExtensionID, uuid.NewString())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"functionName":    p.fn.Name,
		"functionVersion": "$LATEST",
		"handler":         "bootstrap",
	})
}

// handleExtensionNext blocks until the process is gone: no events are
// delivered to extensions.
func (pr *proc) handleExtensionNext(w http.ResponseWriter, r *http.Request) {
	select {
	case <-pr.done:
	case <-r.Context().Done():
	}
}

// parseErrorDoc reads Lambda's error document {"errorMessage","errorType",...}.
// The type comes from the document, else the error type header, else def.
func parseErrorDoc(body []byte, headerType, def string) *FunctionError {
	var doc struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	fe := &FunctionError{}
	if err := json.Unmarshal(body, &doc); err == nil {
		fe.Type, fe.Message = doc.Type, doc.Message
	} else {
		fe.Message = strings.TrimSpace(string(body))
	}
	if fe.Type == "" {
		fe.Type = headerType
	}
	if fe.Type == "" {
		fe.Type = def
	}
	return fe
}

// trailerError reads the error aws-lambda-go reports in trailers when a
// streamed response fails part-way.
func trailerError(t http.Header) *FunctionError {
	body, err := base64.StdEncoding.DecodeString(t.Get(trailerErrorBody))
	if err != nil {
		body = nil
	}
	return parseErrorDoc(body, t.Get(trailerErrorType), "Unhandled")
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`+"\n")
}

func writeAPIError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorMessage": msg, "errorType": typ})
}

// traceID returns an X-Ray trace header, not sampled.
func traceID(now time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", now.Unix(), randomHex(12), randomHex(8))
}

// logStreamName returns a name like Lambda's: 2006/01/02/[$LATEST]<32 hex>.
func logStreamName() string {
	return time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(16)
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b)
}
