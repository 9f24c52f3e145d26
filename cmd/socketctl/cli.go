package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/token"
)

// usageError is a mistake in the command line: exit status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// helpShown says that the usage asked for (help, -h) was printed: exit
// status 0.
type helpShown struct{}

func (helpShown) Error() string { return "help shown" }

// command is one socketctl command.
type command struct {
	name     string // "token create"
	synopsis string // what follows the name in a usage line
	summary  string // one line for the list of commands
	details  string // the paragraphs of `socketctl help COMMAND`
	gateway  bool   // takes --management-endpoint
	run      func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error
}

// commands are every command, in the order the usage lists them (set in
// init: the commands' usage refers to the list).
var commands []*command

func init() {
	commands = []*command{
		{
			name:     "token create",
			synopsis: "--group G [--group H | --all-groups] [--name N] [--expires-in DURATION]",
			summary:  "create a token for services; it is printed once, on stdout, and never again",
			details: `Creates a token that allows the groups given (or every group) and prints it
on stdout; only its SHA-256 is stored, so this is the only time it is shown.
--expires-in takes days (30d) or a Go duration (720h, 90m); without it the
token never expires.`,
			run: (*cli).tokenCreate,
		},
		{
			name:     "token list",
			synopsis: "[--json]",
			summary:  "list the tokens by ID (the first 16 hex digits of their hash), never a token",
			run:      (*cli).tokenList,
		},
		{
			name:     "token revoke",
			synopsis: "ID|TOKEN",
			summary:  "revoke a token by its ID, or by the token itself (hashed, never echoed)",
			details: `New IDENTIFYs with a revoked token fail at once, new handshakes within the
authorizer's cache time (AuthorizerCacheSeconds, 30 s); connections already
open stay open until they close (kick them to cut them).`,
			run: (*cli).tokenRevoke,
		},
		{
			name:     "connections",
			synopsis: "[--group G] [--json]",
			summary:  "list a gateway's connections by group: service id, connection id, connected since, last active",
			details: `Lists the connections that the gateway of --management-endpoint recorded in
the table, by group (anonymous connections last), with when each connected
and when the gateway last received a frame from it (GetConnection's
lastActiveAt); a connection the gateway no longer has is shown as gone. It
changes nothing. --json prints one JSON object a line.`,
			gateway: true,
			run:     (*cli).connections,
		},
		{
			name:     "send",
			synopsis: "--event E (--global | --group G | --direct SERVICE_ID) [--data JSON] [--id ID] [--json]",
			summary:  "send an EVENT as the server to every service, a group, or one service",
			details: `Sends a protocol EVENT to the services of the target, posted to each
recipient's connection through the management API:
  {"id":ID,"op":0,"event":E,"data":DATA,"intent":{...},"source":{"id":"socketctl","group":"socketctl"}}
Its source is always {"id":"socketctl","group":"socketctl"}: no service has
that id (service ids are UUIDs), so a service tells the operator's messages
apart, and a REPLY to one gets TARGET_NOT_FOUND. --data must be valid JSON
(a string is quoted: --data '"text"'); --id defaults to a random UUID, as the
router gives an EVENT sent without one. The EVENT is checked as the router
checks a service's (event and id 1 to 128 characters, a group name, data
nesting and strings).

Prints how many recipients it was delivered to, how many were gone (the
gateway answered 410) and how many posts failed. The items of a gone
recipient are removed, as the router removes them, unless it was recorded
less than 30 s ago (it may still be in its handshake) or by another gateway
(the other gateway's connections are unknown to this one). Exits 1 when a
post failed, or when the --direct service is not connected.`,
			gateway: true,
			run:     (*cli).send,
		},
		{
			name:     "kick",
			synopsis: "SERVICE_ID [--reason TEXT]",
			summary:  "DISCONNECT a service with a reason, close its connection and remove its items",
			details: `Posts the service a DISCONNECT frame, closes its connection
(DeleteConnection), and removes its items from the table:
  {"op":2,"data":{"code":4009,"reason":"KICKED","message":"disconnected by an operator: TEXT"}}
4009 KICKED is fatal: the Go client does not reconnect on its own after it.
A kick is not a ban: a service started again comes back, with a new
service id. To keep a service out, revoke its token first
(socketctl token revoke), then kick it.`,
			gateway: true,
			run:     (*cli).kick,
		},
	}
}

func findCommand(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

const storeHelp = `flags of every command:
  --table NAME       DynamoDB table: the stack's TableName output (default $TABLE_NAME)
  --endpoint URL     DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local
                     (default $DYNAMODB_ENDPOINT; empty: AWS, default credentials and region)`

const gatewayHelp = `flag of connections, send and kick:
  --management-endpoint URL
                     the gateway's @connections API with its stage: the stack's
                     ManagementEndpoint output (https://ID.execute-api.REGION.amazonaws.com/STAGE,
                     signed with your AWS credentials), or a local gateway's
                     http://127.0.0.1:3001/dev (called unsigned) (default $MANAGEMENT_ENDPOINT)`

const localHelp = `With the local gateway (make run): its default store is in the memory of
its process, which socketctl cannot read. Run it on DynamoDB Local instead:
  make dynamodb-local      # in one terminal: DynamoDB Local on port 8000
  make run ARGS="--store dynamodb --dynamodb-endpoint http://127.0.0.1:8000"
  socketctl connections --endpoint http://127.0.0.1:8000 --table mastersocket \
      --management-endpoint http://127.0.0.1:3001/dev`

// usage returns the top-level usage: every command, and the common flags.
func usage() string {
	var b strings.Builder
	b.WriteString("socketctl administers a mastersocket deployment: tokens, and the connections of a gateway.\n\nusage:\n")
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  socketctl %s %s\n", cmd.name, cmd.synopsis)
	}
	b.WriteString("  socketctl help [COMMAND]      this text, or a command's usage (also: socketctl COMMAND -h)\n")
	b.WriteString("  socketctl --version\n\ncommands:\n")
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  %-14s %s\n", cmd.name, cmd.summary)
	}
	b.WriteString("\n" + storeHelp + "\n\n" + gatewayHelp + "\n\n" + localHelp + "\n\n")
	b.WriteString("Exit status: 0 on success and for help; 1 when a command fails; 2 for a usage\nerror, including socketctl with no arguments.")
	return b.String()
}

const tokenUsage = `usage:
  socketctl token create --group G [--group H | --all-groups] [--name N] [--expires-in DURATION]
  socketctl token list [--json]
  socketctl token revoke ID|TOKEN

Run socketctl token SUBCOMMAND -h for the flags of each.`

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	open           func(ctx context.Context, table, endpoint string) (registry, error)
	dial           func(ctx context.Context, managementEndpoint string) (gateway, error)

	table, endpoint, managementEndpoint string
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(c.stderr, usage())
		return usageError("no command given")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return c.help(ctx, rest)
	case "version", "-version", "--version":
		fmt.Fprintln(c.stdout, "socketctl", version(debug.ReadBuildInfo()))
		return nil
	case "token":
		if len(rest) == 0 {
			return usageError("token needs a subcommand: create, list or revoke\n" + tokenUsage)
		}
		switch rest[0] {
		case "help", "-h", "-help", "--help":
			if len(rest) > 1 {
				return c.help(ctx, append([]string{"token"}, rest[1:]...))
			}
			fmt.Fprintln(c.stdout, tokenUsage)
			return helpShown{}
		}
		name, rest = "token "+rest[0], rest[1:]
		if findCommand(name) == nil {
			return usageError(fmt.Sprintf("unknown token subcommand %s\n%s", quote(strings.TrimPrefix(name, "token ")), tokenUsage))
		}
	}
	cmd := findCommand(name)
	if cmd == nil {
		return usageError(fmt.Sprintf("unknown command %s (run socketctl help for the list)", quote(name)))
	}
	fs := c.flags(cmd)
	return cmd.run(c, ctx, fs, rest)
}

// help prints the usage, or a command's usage (with its flags).
func (c *cli) help(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(c.stdout, usage())
		return helpShown{}
	}
	name := strings.Join(args, " ")
	if name == "token" {
		fmt.Fprintln(c.stdout, tokenUsage)
		return helpShown{}
	}
	if findCommand(name) == nil {
		return usageError(fmt.Sprintf("help: no command %s (run socketctl help for the list)", quote(name)))
	}
	return c.run(ctx, append(args, "-h"))
}

// flags returns the flag set of cmd with the flags every command takes;
// the command adds its own.
func (c *cli) flags(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("socketctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.table, "table", c.getenv("TABLE_NAME"), "DynamoDB table `NAME`: the stack's TableName output (default $TABLE_NAME)")
	fs.StringVar(&c.endpoint, "endpoint", c.getenv("DYNAMODB_ENDPOINT"), "DynamoDB endpoint `URL` (default $DYNAMODB_ENDPOINT; empty: AWS)")
	if cmd.gateway {
		fs.StringVar(&c.managementEndpoint, "management-endpoint", c.getenv("MANAGEMENT_ENDPOINT"),
			"the gateway's @connections API `URL` with its stage: the stack's ManagementEndpoint output, or a local gateway's http://127.0.0.1:3001/dev (default $MANAGEMENT_ENDPOINT)")
	}
	return fs
}

// parse parses args for the command fs, flags and positional arguments in
// any order, and returns the positional ones. -h prints the command's usage
// on stdout and returns helpShown.
func (c *cli) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.commandUsage(fs)
			return nil, helpShown{}
		}
		if err != nil {
			return nil, usageError(fmt.Sprintf("%s: %v (run %s -h for its usage)", strings.TrimPrefix(fs.Name(), "socketctl "), err, fs.Name()))
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// commandUsage prints the usage of the command whose flags are fs.
func (c *cli) commandUsage(fs *flag.FlagSet) {
	cmd := findCommand(strings.TrimPrefix(fs.Name(), "socketctl "))
	fmt.Fprintf(c.stdout, "usage: socketctl %s %s\n\n%s.\n", cmd.name, cmd.synopsis, capitalize(cmd.summary))
	if cmd.details != "" {
		fmt.Fprintf(c.stdout, "\n%s\n", cmd.details)
	}
	fmt.Fprintln(c.stdout, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		left := "  --" + f.Name
		if name != "" {
			left += " " + name
		}
		lines := wrap(help, 78-24)
		if len(left) > 22 {
			fmt.Fprintln(c.stdout, left)
		} else {
			fmt.Fprintf(c.stdout, "%-24s%s\n", left, lines[0])
			lines = lines[1:]
		}
		for _, l := range lines {
			fmt.Fprintf(c.stdout, "%24s%s\n", "", l)
		}
	})
	if cmd.gateway {
		fmt.Fprintf(c.stdout, "\n%s\n", localHelp)
	}
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// noArgs returns a usage error unless args is empty.
func noArgs(fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %s", strings.TrimPrefix(fs.Name(), "socketctl "), quote(args[0])))
	}
	return nil
}

// quote returns s quoted for a message, unless it looks like a token: a
// secret is never repeated.
func quote(s string) string {
	if strings.Contains(s, token.Prefix) {
		return "(a token, not repeated)"
	}
	return strconv.Quote(s)
}

// scrub removes from msg every argument that looks like a token, whatever
// put it there (a flag parser's message, a wrapped error).
func scrub(msg string, args []string) string {
	for _, a := range args {
		if i := strings.Index(a, token.Prefix); i >= 0 {
			if secret := a[i:]; len(secret) > len(token.Prefix) {
				msg = strings.ReplaceAll(msg, secret, "(a token, not repeated)")
			}
		}
	}
	return msg
}

// explain says plainly what the usual operator mistakes mean: a table that
// does not exist, a management endpoint that refuses or does not answer, a
// DynamoDB endpoint that does not answer.
func (c *cli) explain(err error) error {
	var nf *dynamotypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		where := "in this AWS account and region"
		if c.endpoint != "" {
			where = "at " + c.endpoint
		}
		return fmt.Errorf("table %q does not exist %s", c.table, where)
	}
	var ge gatewayError
	isGateway := errors.As(err, &ge)
	var forbidden *types.ForbiddenException
	if errors.As(err, &forbidden) && isGateway {
		return fmt.Errorf("%w\nthe management API at %s refused the call: is it the stack's ManagementEndpoint output, with its stage, and may your credentials call execute-api:ManageConnections?", err, ge.endpoint)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		if isGateway {
			return fmt.Errorf("%w\nno gateway answers at %s: is it running, and is --management-endpoint its address?", err, ge.endpoint)
		}
		if c.endpoint != "" {
			return fmt.Errorf("%w\nno DynamoDB answers at %s: is it running (make dynamodb-local)?", err, c.endpoint)
		}
	}
	return err
}

// gatewayError marks an error of the management API, to name it in explain.
type gatewayError struct {
	err      error
	endpoint string
}

func (e gatewayError) Error() string { return e.err.Error() }
func (e gatewayError) Unwrap() error { return e.err }

// checkManagementEndpoint checks --management-endpoint and returns it without a
// trailing slash: the gateway's connections are recorded under the endpoint
// exactly as the gateway knows it.
func (c *cli) checkManagementEndpoint(fs *flag.FlagSet) (string, error) {
	name := strings.TrimPrefix(fs.Name(), "socketctl ")
	ep := strings.TrimRight(strings.TrimSpace(c.managementEndpoint), "/")
	if ep == "" {
		return "", usageError(name + ": --management-endpoint (or MANAGEMENT_ENDPOINT) is required: the stack's ManagementEndpoint output " +
			"(`sam list stack-outputs`), or a local gateway's http://127.0.0.1:3001/dev")
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return "", usageError(fmt.Sprintf("%s: --management-endpoint %q: want an http(s) URL such as https://abc.execute-api.us-east-1.amazonaws.com/prod", name, ep))
	}
	if strings.Trim(u.Path, "/") == "" {
		return "", usageError(fmt.Sprintf("%s: --management-endpoint %q has no stage: want, for example, %s/prod (the ManagementEndpoint output)", name, ep, ep))
	}
	return ep, nil
}

// version returns the module version socketctl was built from, from the
// build information: a release tag, a pseudo-version, or "devel" with the
// VCS revision when known.
func version(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "devel"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += ", modified"
	}
	return "devel (" + rev + ")"
}

// maxLifetimeDays bounds --expires-in in days (a hundred years).
const maxLifetimeDays = 36500

// lifetimeFormat is the accepted format of --expires-in, for error messages.
const lifetimeFormat = "want a number of days such as 30d, or a Go duration such as 720h or 90m"

// parseLifetime parses a token lifetime: whole days (30d), or a Go duration
// (720h, 90m, 1h30m). It returns an error naming the accepted format for
// anything else, and for a lifetime that is not positive.
func parseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && strings.Trim(n, "-0123456789") == "" {
		days, err := strconv.Atoi(n)
		switch {
		case err != nil || days > maxLifetimeDays:
			return 0, fmt.Errorf("%q: at most %dd", s, maxLifetimeDays)
		case days <= 0:
			return 0, fmt.Errorf("%q: the lifetime must be positive", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %s", s, lifetimeFormat)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: the lifetime must be positive", s)
	}
	return d, nil
}

// lifetimeFlag is a flag.Value for parseLifetime.
type lifetimeFlag struct{ d *time.Duration }

func (f lifetimeFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f lifetimeFlag) Set(s string) error {
	d, err := parseLifetime(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}
