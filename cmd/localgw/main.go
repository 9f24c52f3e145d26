// Command localgw runs mastersocket on your machine: a faithful emulation of
// API Gateway's WebSocket API and @connections management API, running the
// functions of template.yaml, on an embedded in-memory store or on DynamoDB.
//
//	go run ./cmd/localgw [flags]
//
// It prints the WebSocket URL, the management endpoint, the inspector page's
// address (unless --inspector=false) and a token that IDENTIFY accepts for
// every group, then logs one line per connection event and invocation.
// SIGINT or SIGTERM stops it, closing every connection.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "localgw:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("localgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o localrun.Options
	fs.StringVar(&o.Addr, "addr", gateway.DefaultAddr, "address to listen on")
	fs.StringVar(&o.Stage, "stage", gateway.DefaultStage, "stage name: ws://ADDR/STAGE")
	fs.StringVar(&o.Token, "token", "", "a token IDENTIFY accepts for all groups (default: generate one and print it)")
	fs.StringVar(&o.Store, "store", localrun.StoreMemory, "memory or dynamodb")
	fs.StringVar(&o.DynamoDBEndpoint, "dynamodb-endpoint", os.Getenv("DYNAMODB_ENDPOINT"), "DynamoDB endpoint for --store dynamodb, e.g. http://127.0.0.1:8000 (empty: AWS)")
	fs.StringVar(&o.Table, "table", "mastersocket", "DynamoDB table for --store dynamodb, created when missing (never on AWS)")
	fs.BoolVar(&o.AllowAWS, "allow-aws", false, "let --store dynamodb without --dynamodb-endpoint use real AWS (an existing table; your default credentials)")
	fs.StringVar(&o.Functions, "functions", localrun.FunctionsInProcess, "inprocess, or binaries: build each function and run its bootstrap behind an emulated Lambda Runtime API")
	fs.StringVar(&o.Template, "template", "template.yaml", "the SAM template whose routes and functions to run")
	fs.DurationVar(&o.Gateway.IdleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "close connections idle this long (1001)")
	fs.DurationVar(&o.Gateway.MaxLifetime, "max-lifetime", gateway.DefaultMaxLifetime, "close connections this old (1001)")
	fs.DurationVar(&o.Gateway.IntegrationTimeout, "integration-timeout", gateway.DefaultIntegrationTimeout, "limit of one invocation")
	fs.Var(sweepEvery{&o.SweepEvery}, "sweep-every", "run the scheduled functions (the sweeper) this often, e.g. 5s, instead of the template's schedule; off runs none")
	fs.Var(parameterOverrides{&o.Parameters}, "parameter-overrides", "template parameters, as sam deploy takes them: 'PingIntervalMs=5000 IdentifyTimeoutSeconds=5' (repeatable)")
	var mgmtLatency time.Duration
	var mgmtRate int
	fs.DurationVar(&mgmtLatency, "management-latency", 0, "answer every @connections call this late, as AWS does from Lambda (about 20ms)")
	fs.IntVar(&mgmtRate, "management-rate", 0, "refuse @connections calls beyond this many per second with 429, as AWS's account quota (10000) does; 0: no limit")
	fs.BoolVar(&o.Verbose, "verbose", false, "log message and response bodies, events and every @connections call (secrets redacted)")
	fs.BoolVar(&o.Inspector, "inspector", true, "serve the inspector page at http://ADDR/ (live connections, groups, messages, errors, and a form to send frames); --inspector=false turns it off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mgmtLatency < 0 || mgmtRate < 0 {
		return fmt.Errorf("--management-latency %v and --management-rate %d: want 0 or more", mgmtLatency, mgmtRate)
	}
	if mgmtLatency > 0 || mgmtRate > 0 {
		o.Gateway.ManagementThrottle = &gateway.Throttle{Rate: float64(mgmtRate), Latency: mgmtLatency}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	level := slog.LevelInfo
	if o.Verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: shortTime}))

	s, err := localrun.Start(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, s.Summary)
	err = s.Run(ctx)
	fmt.Fprintln(stderr, "localgw: stopped")
	return err
}

// shortTime logs the time of day only, and the level only when it is not
// INFO, for a person reading along.
func shortTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch {
	case a.Key == slog.TimeKey:
		return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
	case a.Key == slog.LevelKey && a.Value.Any() == slog.LevelInfo:
		return slog.Attr{}
	}
	return a
}

// sweepEvery is the --sweep-every flag: a duration, or "off".
type sweepEvery struct{ d *time.Duration }

func (f sweepEvery) String() string {
	switch {
	case f.d == nil || *f.d == 0:
		return ""
	case *f.d < 0:
		return "off"
	}
	return f.d.String()
}

func (f sweepEvery) Set(v string) error {
	if v == "off" {
		*f.d = -1
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 5s or 1m, or off")
	}
	*f.d = d
	return nil
}

// parameterOverrides is the --parameter-overrides flag: Key=Value pairs
// separated by spaces, or SAM's ParameterKey=K,ParameterValue=V form; a
// value with spaces is quoted, as with SAM: SweepSchedule="rate(5 minutes)".
type parameterOverrides struct{ m *map[string]string }

func (f parameterOverrides) String() string {
	if f.m == nil || *f.m == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*f.m)) {
		parts = append(parts, k+"="+(*f.m)[k])
	}
	return strings.Join(parts, " ")
}

func (f parameterOverrides) Set(v string) error {
	if *f.m == nil {
		*f.m = map[string]string{}
	}
	fields, err := splitQuoted(v)
	if err != nil {
		return err
	}
	for _, field := range fields {
		if k, ok := strings.CutPrefix(field, "ParameterKey="); ok {
			key, val, found := strings.Cut(k, ",ParameterValue=")
			if !found {
				return fmt.Errorf("%q: want ParameterKey=K,ParameterValue=V", field)
			}
			(*f.m)[key] = val
			continue
		}
		key, val, found := strings.Cut(field, "=")
		if !found || key == "" {
			return fmt.Errorf("%q: want Name=Value", field)
		}
		(*f.m)[key] = val
	}
	return nil
}

// splitQuoted splits s at spaces outside double or single quotes, and
// removes the quotes: `A=1 B="x y"` is [A=1 B=x y].
func splitQuoted(s string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	var quote rune
	inField := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inField = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inField {
				fields = append(fields, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: a quote is not closed", s)
	}
	if inField {
		fields = append(fields, cur.String())
	}
	return fields, nil
}
