package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"
)

// Fixed settings of the gateway under soak: short, so that the sweeper acts
// on frozen and anonymous connections during the run.
const (
	pingIntervalMs         = 2000
	identifyTimeoutSeconds = 2
)

// The modes of authentication (template.yaml's ConnectAuth).
const (
	// connectAuthRequired: the handshake carries the token and the group,
	// and a handshake without them is refused.
	connectAuthRequired = "required"
	// connectAuthOff: anyone connects, then IDENTIFYs with the token.
	connectAuthOff = "off"
)

// Config is what a soak does. The clients' process receives it as JSON.
type Config struct {
	// Duration is how long traffic flows and faults happen.
	Duration time.Duration `json:"duration"`
	// Grace follows Duration: no new message or fault, so that late
	// deliveries land. It is also the margin of the judgement: a delivery is
	// expected only when both ends stayed up for Grace after the send.
	Grace time.Duration `json:"grace"`
	// Connections held at once (each one reconnects after its faults).
	Connections int `json:"connections"`
	// Groups the connections are spread over, round robin.
	Groups int `json:"groups"`
	// Rate is messages per second, all kinds; GlobalRate of them are GLOBAL,
	// a tenth of the rest DIRECT and the others GROUP.
	Rate       float64 `json:"rate"`
	GlobalRate float64 `json:"globalRate"`
	// Churn is faults per connection per minute: clean closes, abrupt drops
	// and freezes, each followed by a reconnect.
	Churn float64 `json:"churn"`
	// DisconnectFaults is the fraction of $disconnect invocations whose
	// removal from the store fails.
	DisconnectFaults float64 `json:"disconnectFaults"`
	// SweepEvery is how often the sweeper runs during the soak.
	SweepEvery time.Duration `json:"sweepEvery"`
	// Seed seeds every random choice.
	Seed uint64 `json:"seed"`
	// ConnectAuth is the gateway's mode of authentication, the template's
	// ConnectAuth parameter: connectAuthRequired or connectAuthOff.
	ConnectAuth string `json:"connectAuth"`
	// AnonymousShare is the fraction of reconnects preceded by an anonymous
	// connection (off: held until the sweeper closes it) or handshake
	// (required: refused). Not a flag: the tests raise it.
	AnonymousShare float64 `json:"anonymousShare"`
	// Template is the SAM template to run; empty: the repository's.
	Template string `json:"-"`
}

// defaultConfig is what `make soak` runs: about three minutes in all on two
// cores.
func defaultConfig() Config {
	return Config{
		Duration:         150 * time.Second,
		Grace:            5 * time.Second,
		Connections:      1000,
		Groups:           20,
		Rate:             300,
		GlobalRate:       1,
		Churn:            1,
		DisconnectFaults: 0.05,
		SweepEvery:       2 * time.Second,
		ConnectAuth:      connectAuthRequired,
		AnonymousShare:   0.05,
	}
}

// authAtConnect reports whether connections authenticate in the handshake.
func (c Config) authAtConnect() bool { return c.ConnectAuth == connectAuthRequired }

// parseFlags reads the command line into a Config; errors name the flag.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: soak [flags]\n\n"+
			"Holds --connections WebSocket connections on the local gateway (in this process)\n"+
			"from a child process, with faults and GROUP, DIRECT and GLOBAL traffic, and\n"+
			"judges every delivery. Exit status 1 when anything was lost, duplicated,\n"+
			"misdelivered or left in the store.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long traffic flows and faults happen (the whole run takes about 25 s more)")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "quiet time after --duration for late deliveries; also the judgement's margin around faults")
	fs.IntVar(&c.Connections, "connections", c.Connections, "connections held at once")
	fs.IntVar(&c.Groups, "groups", c.Groups, "groups the connections are spread over")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "messages per second, all kinds (a tenth of the non-GLOBAL ones are DIRECT, the rest GROUP)")
	fs.Float64Var(&c.GlobalRate, "global-rate", c.GlobalRate, "GLOBAL messages per second, part of --rate (each reaches every connection)")
	fs.Float64Var(&c.Churn, "churn", c.Churn, "faults (clean close, abrupt drop, freeze) per connection per minute")
	fs.Float64Var(&c.DisconnectFaults, "disconnect-faults", c.DisconnectFaults, "fraction of $disconnect invocations whose store removal fails")
	fs.DurationVar(&c.SweepEvery, "sweep-every", c.SweepEvery, "how often the sweeper runs")
	fs.StringVar(&c.ConnectAuth, "connect-auth", c.ConnectAuth, "the gateway's ConnectAuth: required (token and group in the handshake; anonymous handshakes must get 401) or off (IDENTIFY with the token after connecting)")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the random choices; 0 picks one (printed)")
	fs.StringVar(&c.Template, "template", "", "SAM template (default: template.yaml of the module root)")
	if err := fs.Parse(args); err != nil {
		return Config{}, reportedError{err} // the flag set has printed it
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: soak takes flags only", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// reportedError is an error already shown to the user.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// validate checks every setting, naming the flag of a bad one.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if c.Duration < time.Second {
		bad("--duration %v: want at least 1s", c.Duration)
	}
	if c.Grace < time.Second {
		bad("--grace %v: want at least 1s", c.Grace)
	}
	if c.Connections < 2 || c.Connections > 10000 {
		bad("--connections %d: want 2 to 10000", c.Connections)
	}
	if c.Groups < 1 || c.Groups > 1000 {
		bad("--groups %d: want 1 to 1000", c.Groups)
	}
	if !finite(c.Rate) || c.Rate <= 0 || c.Rate > 100000 {
		bad("--rate %v: want more than 0 and at most 100000 messages per second", c.Rate)
	}
	if !finite(c.GlobalRate) || c.GlobalRate < 0 || (finite(c.Rate) && c.Rate > 0 && c.GlobalRate > c.Rate) {
		bad("--global-rate %v: want 0 to --rate (%v)", c.GlobalRate, c.Rate)
	}
	if !finite(c.Churn) || c.Churn < 0 || c.Churn > 60 {
		bad("--churn %v: want 0 to 60 faults per connection per minute", c.Churn)
	}
	if !finite(c.DisconnectFaults) || c.DisconnectFaults < 0 || c.DisconnectFaults > 1 {
		bad("--disconnect-faults %v: want a fraction from 0 to 1", c.DisconnectFaults)
	}
	if c.SweepEvery < 100*time.Millisecond || c.SweepEvery > time.Minute {
		bad("--sweep-every %v: want 100ms to 1m", c.SweepEvery)
	}
	if c.ConnectAuth != connectAuthRequired && c.ConnectAuth != connectAuthOff {
		bad("--connect-auth %s: want %s or %s", c.ConnectAuth, connectAuthRequired, connectAuthOff)
	}
	if !finite(c.AnonymousShare) || c.AnonymousShare < 0 || c.AnonymousShare > 1 {
		bad("anonymous share %v: want a fraction from 0 to 1", c.AnonymousShare)
	}
	return errors.Join(errs...)
}
