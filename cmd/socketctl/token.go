package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// tokenStore is what socketctl needs of a registry.
type tokenStore interface {
	PutToken(ctx context.Context, t token.Token) error
	Tokens(ctx context.Context) ([]token.Token, error)
	DeleteToken(ctx context.Context, h token.Hash) error
}

// openStore opens the DynamoDB registry of a table.
func openStore(ctx context.Context, table, endpoint string) (tokenStore, error) {
	client, err := dynamostore.NewClient(ctx, endpoint, dynamostore.ClientConfig{})
	if err != nil {
		return nil, err
	}
	return dynamostore.New(client, dynamostore.Config{Table: table})
}

// usageError is a mistake in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

const usage = `usage:
  socketctl token create --group G [--group H | --all-groups] [--name N] [--expires-in DURATION]
  socketctl token list [--json]
  socketctl token revoke ID|TOKEN

flags of every command:
  --table NAME       DynamoDB table (default $TABLE_NAME)
  --endpoint URL     DynamoDB endpoint, e.g. http://127.0.0.1:8000 (default $DYNAMODB_ENDPOINT)`

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	open           func(ctx context.Context, table, endpoint string) (tokenStore, error)

	table, endpoint string
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(c.stdout, usage)
		return nil
	}
	if args[0] != "token" {
		return usageError(fmt.Sprintf("unknown command %q\n%s", args[0], usage))
	}
	if len(args) < 2 {
		return usageError("token needs a subcommand: create, list or revoke\n" + usage)
	}
	switch sub, rest := args[1], args[2:]; sub {
	case "create":
		return c.create(ctx, rest)
	case "list":
		return c.list(ctx, rest)
	case "revoke":
		return c.revoke(ctx, rest)
	default:
		return usageError(fmt.Sprintf("unknown token subcommand %q\n%s", sub, usage))
	}
}

// flags returns a flag set with the flags every command takes.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("socketctl token "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.table, "table", c.getenv("TABLE_NAME"), "DynamoDB table")
	fs.StringVar(&c.endpoint, "endpoint", c.getenv("DYNAMODB_ENDPOINT"), "DynamoDB endpoint")
	return fs
}

// parse parses args for the command fs, flags and positional arguments in
// any order, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError(fmt.Sprintf("%s: %v\n%s", fs.Name(), err, usage))
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// store opens the store that --table and --endpoint name.
func (c *cli) store(ctx context.Context, fs *flag.FlagSet) (tokenStore, error) {
	if c.table == "" {
		return nil, usageError(fs.Name() + ": --table (or TABLE_NAME) is required; `sam list stack-outputs` shows TableName")
	}
	s, err := c.open(ctx, c.table, c.endpoint)
	if err != nil {
		return nil, err
	}
	return tableErrors{s, c.table, c.endpoint}, nil
}

// tableErrors says plainly when the table does not exist.
type tableErrors struct {
	tokenStore
	table, endpoint string
}

func (t tableErrors) explain(err error) error {
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		return err
	}
	where := "in this AWS account and region"
	if t.endpoint != "" {
		where = "at " + t.endpoint
	}
	return fmt.Errorf("table %q does not exist %s", t.table, where)
}

func (t tableErrors) PutToken(ctx context.Context, tok token.Token) error {
	return t.explain(t.tokenStore.PutToken(ctx, tok))
}

func (t tableErrors) Tokens(ctx context.Context) ([]token.Token, error) {
	list, err := t.tokenStore.Tokens(ctx)
	return list, t.explain(err)
}

func (t tableErrors) DeleteToken(ctx context.Context, h token.Hash) error {
	return t.explain(t.tokenStore.DeleteToken(ctx, h))
}

type groupList []string

func (g *groupList) String() string     { return strings.Join(*g, ",") }
func (g *groupList) Set(v string) error { *g = append(*g, v); return nil }

func (c *cli) create(ctx context.Context, args []string) error {
	fs := c.flags("create")
	var groups groupList
	fs.Var(&groups, "group", "a group the token allows (repeatable)")
	all := fs.Bool("all-groups", false, "allow every group")
	name := fs.String("name", "", "a label, such as the service the token is for")
	expiresIn := fs.Duration("expires-in", 0, "lifetime, e.g. 720h (default: never expires)")
	if rest, err := parse(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError(fmt.Sprintf("token create: unexpected argument %q", rest[0]))
	}
	switch {
	case len(groups) == 0 && !*all:
		return usageError("token create: give --group G (repeatable) or --all-groups")
	case len(groups) > 0 && *all:
		return usageError("token create: --group and --all-groups exclude each other")
	case *expiresIn < 0:
		return usageError("token create: --expires-in must be positive")
	}
	for _, g := range groups {
		if !protocol.ValidGroup(g) {
			return usageError(fmt.Sprintf("token create: group %q: want 1 to %d characters of A-Z a-z 0-9 . _ : -", g, protocol.MaxGroupLen))
		}
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)

	store, err := c.store(ctx, fs)
	if err != nil {
		return err
	}
	plain, hash, err := token.Generate()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	t := token.Token{Hash: hash, Name: *name, Groups: groups, AllGroups: *all, CreatedAt: now}
	if *expiresIn > 0 {
		t.ExpiresAt = now.Add(*expiresIn)
	}
	if err := store.PutToken(ctx, t); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	fmt.Fprintln(c.stdout, plain)
	fmt.Fprintf(c.stderr, "token %s stored in table %s, allowing %s, expiring %s.\n"+
		"This is the only time it is shown: only its SHA-256 is stored.\n",
		hash.ID(), c.table, allows(t), expiry(t))
	return nil
}

func (c *cli) list(ctx context.Context, args []string) error {
	fs := c.flags("list")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if rest, err := parse(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError(fmt.Sprintf("token list: unexpected argument %q", rest[0]))
	}
	store, err := c.store(ctx, fs)
	if err != nil {
		return err
	}
	tokens, err := store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, t := range tokens {
			row := struct {
				ID        string     `json:"id"`
				Name      string     `json:"name"`
				Groups    []string   `json:"groups"`
				AllGroups bool       `json:"allGroups"`
				CreatedAt time.Time  `json:"createdAt"`
				ExpiresAt *time.Time `json:"expiresAt,omitempty"`
			}{t.Hash.ID(), t.Name, nonNil(t.Groups), t.AllGroups, t.CreatedAt, nil}
			if !t.ExpiresAt.IsZero() {
				row.ExpiresAt = &t.ExpiresAt
			}
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tGROUPS\tCREATED\tEXPIRES")
	now := time.Now()
	for _, t := range tokens {
		exp := expiry(t)
		if t.Expired(now) {
			exp += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Hash.ID(), orDash(t.Name), allows(t), t.CreatedAt.Format(time.RFC3339), exp)
	}
	return w.Flush()
}

func (c *cli) revoke(ctx context.Context, args []string) error {
	fs := c.flags("revoke")
	ids, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usageError("token revoke: give the ID of one token, as `socketctl token list` shows it")
	}
	// The argument may be the token itself (it is hashed, and never
	// repeated in any output: error messages name IDs only).
	id, secret := strings.ToLower(ids[0]), false
	switch {
	case strings.HasPrefix(ids[0], token.Prefix):
		id, secret = token.HashOf(ids[0]).String(), true
	case !isHex(id):
		return usageError("token revoke: an ID is hex digits, as `socketctl token list` shows it (or give the token itself, starting with " + token.Prefix + ")")
	case len(id) < 8:
		return usageError("token revoke: an ID has at least 8 hex digits")
	}
	store, err := c.store(ctx, fs)
	if err != nil {
		return err
	}
	tokens, err := store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	var match []token.Token
	for _, t := range tokens {
		if strings.HasPrefix(t.Hash.String(), id) {
			match = append(match, t)
		}
	}
	switch len(match) {
	case 0:
		if secret {
			return errors.New("no stored token matches the token given (its ID would be " + id[:16] + ")")
		}
		return fmt.Errorf("no token has the ID %s", id)
	case 1:
	default:
		return fmt.Errorf("%d tokens start with %s: give more digits", len(match), id)
	}
	if err := store.DeleteToken(ctx, match[0].Hash); err != nil {
		if errors.Is(err, router.ErrNotFound) {
			return fmt.Errorf("token %s was revoked meanwhile", match[0].Hash.ID())
		}
		return fmt.Errorf("revoke token: %w", err)
	}
	fmt.Fprintf(c.stdout, "revoked token %s (%s). Connections already identified with it stay open until they close.\n",
		match[0].Hash.ID(), orDash(match[0].Name))
	return nil
}

func allows(t token.Token) string {
	if t.AllGroups {
		return "all groups"
	}
	return "groups " + strings.Join(t.Groups, ",")
}

func expiry(t token.Token) string {
	if t.ExpiresAt.IsZero() {
		return "never"
	}
	return t.ExpiresAt.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}
