package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/router"
)

// Settling and final sweeps.
const (
	settle      = 2 * time.Second // after the clients' exit, for the last $disconnects
	finalSweeps = 2
)

// runSoak runs the gateway in this process and the clients in a child
// process, then sweeps and counts what the store still holds.
func runSoak(ctx context.Context, cfg Config, progress io.Writer) (*result, error) {
	began := time.Now()
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	tmpl, err := findTemplate(cfg.Template)
	if err != nil {
		return nil, err
	}
	disconnectFn, err := disconnectFunction(tmpl)
	if err != nil {
		return nil, err
	}
	logs := &logCounter{}
	faults := &faultInjector{function: disconnectFn, rate: cfg.DisconnectFaults, rng: rand.New(rand.NewPCG(cfg.Seed, 0xfa17))}
	s, err := localrun.Start(ctx, localrun.Options{
		Addr:     "127.0.0.1:0",
		Template: tmpl,
		Store:    localrun.StoreMemory,
		Parameters: map[string]string{
			"PingIntervalMs":         strconv.Itoa(pingIntervalMs),
			"IdentifyTimeoutSeconds": strconv.Itoa(identifyTimeoutSeconds),
			"ConnectAuth":            cfg.ConnectAuth,
		},
		SweepEvery: cfg.SweepEvery,
		// The local gateway's $connect returns in milliseconds: a second
		// of grace for handshakes under way lets the final sweeps remove
		// what the last failed $disconnects left.
		Environment: map[string]string{"SWEEP_HANDSHAKE_GRACE_MS": "1000"},
		Logger:      slog.New(logHandler{logs}),
		WrapStore:   faults.wrap,
	})
	if err != nil {
		return nil, fmt.Errorf("start the local gateway: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Run(context.Background()) }()
	defer func() {
		s.Close()
		<-served
	}()
	peaks := startSampler()
	defer peaks.stop()

	fmt.Fprintf(progress, "soak: gateway %s (%s, connect auth %s, $disconnect is %s); %d connections in %d groups, %v msg/s for %v, seed %d\n",
		s.URL(), tmpl, cfg.ConnectAuth, disconnectFn, cfg.Connections, cfg.Groups, cfg.Rate, cfg.Duration, cfg.Seed)
	clients, err := runChild(ctx, childSpec{URL: s.URL(), Token: s.Token, Config: cfg}, progress)
	if err != nil {
		return nil, err
	}

	if !sleep(ctx, settle) {
		return nil, ctx.Err()
	}
	during := logs.sweepTotals()
	for range finalSweeps {
		if err := s.RunSchedules(ctx); err != nil {
			return nil, fmt.Errorf("final sweep: %w", err)
		}
	}
	final := logs.sweepTotals().minus(during)
	conns, members, err := countItems(ctx, s.Store(), s.ManagementEndpoint())
	if err != nil {
		return nil, fmt.Errorf("count the items left: %w", err)
	}
	mem, memSource, goroutines := peaks.stop()
	st := s.Stats()
	handshakes := handshakeTotals{Allowed: st.Authorized, Refused401: st.Unauthorized401, Refused403: st.Forbidden403, Failed500: st.Failed500}
	return &result{
		Config:          cfg,
		Clients:         clients,
		ConnectionsLeft: conns,
		MembersLeft:     members,
		PeakMemory:      mem,
		PeakMemorySrc:   memSource,
		PeakGoroutines:  goroutines,
		FaultsInjected:  faults.injected.Load(),
		Handshakes:      handshakes,
		SweepsDuring:    during,
		SweepsFinal:     final,
		Problems:        logs.problemCounts(),
		DisconnectFn:    disconnectFn,
		Elapsed:         time.Since(began),
	}, nil
}

// runChild runs the clients in a process of their own, so that this
// process's memory and goroutines are the gateway's, and returns their
// report.
func runChild(ctx context.Context, spec childSpec, stderr io.Writer) (clientReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return clientReport{}, fmt.Errorf("find this program to run the clients: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, roleFlag, roleClients)
	cmd.Stderr = stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return clientReport{}, fmt.Errorf("clients' process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return clientReport{}, fmt.Errorf("start the clients' process: %w", err)
	}
	// The spec, then stdin stays open until the process exits: its end
	// tells the clients to stop.
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return clientReport{}, fmt.Errorf("send the clients their spec: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return clientReport{}, fmt.Errorf("clients' process: %w", err)
	}
	var rep clientReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return clientReport{}, fmt.Errorf("read the clients' report %q: %w", out.String(), err)
	}
	return rep, nil
}

// findTemplate returns the template to run: the given one, or the
// template.yaml beside the go.mod of this module, looked for from the
// working directory upwards, then with `go env GOMOD`.
func findTemplate(given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("--template: %w", err)
		}
		return given, nil
	}
	const module = "module github.com/mastersocket/mastersocket"
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil || !bytes.HasPrefix(bytes.TrimSpace(b), []byte(module)) {
			return false
		}
		_, err = os.Stat(filepath.Join(dir, "template.yaml"))
		return err == nil
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRoot(dir) {
				return filepath.Join(dir, "template.yaml"), nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if dir := filepath.Dir(strings.TrimSpace(string(out))); isRoot(dir) {
			return filepath.Join(dir, "template.yaml"), nil
		}
	}
	return "", errors.New("cannot find template.yaml: run soak inside the mastersocket module, or give --template")
}

// disconnectFunction returns the logical id of the function of the
// template's $disconnect route.
func disconnectFunction(path string) (string, error) {
	tmpl, err := template.Load(path)
	if err != nil {
		return "", fmt.Errorf("load %s: %w", path, err)
	}
	routes, err := tmpl.Routes()
	if err != nil {
		return "", fmt.Errorf("routes of %s: %w", path, err)
	}
	for _, r := range routes {
		if r.Key == "$disconnect" {
			return r.Function, nil
		}
	}
	return "", fmt.Errorf("%s has no $disconnect route", path)
}

// faultInjector kills a fraction of $disconnect invocations before their
// removal from the store: the store is left as it was, and the sweeper
// must clean up. It tells the $disconnect function's calls by the Lambda
// context of the invocation (the function's ARN), so that the message
// function's removals (after a 410) and the sweeper's never fail.
type faultInjector struct {
	function string
	rate     float64
	mu       sync.Mutex
	rng      *rand.Rand
	injected atomic.Int64
}

// wrap is localrun's WrapStore.
func (f *faultInjector) wrap(s handler.Store) handler.Store { return faultyStore{s, f} }

func (f *faultInjector) fail(ctx context.Context) bool {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok || !strings.HasSuffix(lc.InvokedFunctionArn, ":function:"+f.function) {
		return false
	}
	f.mu.Lock()
	hit := f.rng.Float64() < f.rate
	f.mu.Unlock()
	if hit {
		f.injected.Add(1)
	}
	return hit
}

// faultyStore is a store whose RemoveConnection fails when its injector
// says so, without removing anything.
type faultyStore struct {
	handler.Store
	f *faultInjector
}

// errKilled is the injected failure.
var errKilled = errors.New("soak: injected fault: $disconnect killed before its removal")

func (s faultyStore) RemoveConnection(ctx context.Context, connID string) error {
	if s.f.fail(ctx) {
		return fmt.Errorf("remove connection %s: %w", connID, errKilled)
	}
	return s.Store.RemoveConnection(ctx, connID)
}

// countItems counts the connection items of the gateway and the GLOBAL
// memberships (identified connections) that st still holds.
func countItems(ctx context.Context, st localrun.Registry, gateway string) (conns, members int, err error) {
	var mu sync.Mutex
	err = st.Connections(ctx, gateway, func(p []router.Connection) error {
		mu.Lock()
		conns += len(p)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list connections: %w", err)
	}
	err = st.AllMembers(ctx, func(p []router.Member) error {
		mu.Lock()
		members += len(p)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list members: %w", err)
	}
	return conns, members, nil
}

// sweepTotals adds up the sweeper's reports.
type sweepTotals struct {
	Runs, Checked, Gone, Silent, Anonymous, Failed int64
}

func (a sweepTotals) minus(b sweepTotals) sweepTotals {
	return sweepTotals{a.Runs - b.Runs, a.Checked - b.Checked, a.Gone - b.Gone, a.Silent - b.Silent, a.Anonymous - b.Anonymous, a.Failed - b.Failed}
}

// logCounter keeps what the gateway's logs tell the soak: the sweeper's
// reports, and the problems (warnings, errors, failed invocations) by
// message. Nothing is printed as it comes.
type logCounter struct {
	mu       sync.Mutex
	sweeps   sweepTotals
	problems map[string]int64
}

func (c *logCounter) sweepTotals() sweepTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sweeps
}

func (c *logCounter) problemCounts() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.problems))
	for k, v := range c.problems {
		out[k] = v
	}
	return out
}

// logHandler is the gateway's slog handler: it feeds a logCounter.
type logHandler struct{ c *logCounter }

func (h logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h logHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h logHandler) WithGroup(string) slog.Handler                { return h }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return nil
	}
	sweep := r.Message == "sweep" && r.Level == slog.LevelInfo
	var failed bool
	var sw sweepTotals
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			failed = true
		}
		if !sweep || a.Value.Kind() != slog.KindInt64 {
			return true
		}
		switch n := a.Value.Int64(); a.Key {
		case "checked":
			sw.Checked = n
		case "gone":
			sw.Gone = n
		case "silent":
			sw.Silent = n
		case "anonymous":
			sw.Anonymous = n
		case "failed":
			sw.Failed = n
		}
		return true
	})
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if sweep {
		h.c.sweeps.Runs++
		h.c.sweeps.Checked += sw.Checked
		h.c.sweeps.Gone += sw.Gone
		h.c.sweeps.Silent += sw.Silent
		h.c.sweeps.Anonymous += sw.Anonymous
		h.c.sweeps.Failed += sw.Failed
	}
	if r.Level >= slog.LevelWarn || failed {
		if h.c.problems == nil {
			h.c.problems = map[string]int64{}
		}
		h.c.problems[r.Level.String()+" "+r.Message]++
	}
	return nil
}

// sampler follows this process's goroutines and memory.
type sampler struct {
	stopOnce   sync.Once
	quit       chan struct{}
	done       chan struct{}
	goroutines int
	sys        uint64
	mem        uint64
	memSource  string
}

// startSampler samples every 100 ms until stop.
func startSampler() *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			s.goroutines = max(s.goroutines, runtime.NumGoroutine())
			if n%10 == 0 { // ReadMemStats stops the world: once a second
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				s.sys = max(s.sys, ms.Sys)
			}
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the peak memory (VmHWM, the peak
// resident set, where /proc has it; otherwise the peak of the memory the
// Go runtime obtained), where it comes from, and the peak goroutines.
func (s *sampler) stop() (mem uint64, source string, goroutines int) {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.mem, s.memSource = s.sys, "runtime.MemStats.Sys"
		if hwm, err := vmHWM(); err == nil {
			s.mem, s.memSource = hwm, "VmHWM"
		}
	})
	return s.mem, s.memSource, s.goroutines
}

// vmHWM reads this process's peak resident set size from /proc.
func vmHWM() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
