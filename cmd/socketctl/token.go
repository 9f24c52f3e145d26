package main

// The token commands: create, list and revoke the tokens that services
// present at the handshake or in IDENTIFY.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

type groupList []string

func (g *groupList) String() string     { return strings.Join(*g, ",") }
func (g *groupList) Set(v string) error { *g = append(*g, v); return nil }

func (c *cli) tokenCreate(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var groups groupList
	fs.Var(&groups, "group", "a `GROUP` the token allows (repeatable)")
	all := fs.Bool("all-groups", false, "allow every group")
	name := fs.String("name", "", "a `LABEL`, such as the service the token is for")
	var expiresIn time.Duration
	fs.Var(lifetimeFlag{&expiresIn}, "expires-in", "lifetime: days such as 30d, or a Go `DURATION` such as 720h or 90m (default: never expires)")
	if rest, err := c.parse(fs, args); err != nil {
		return err
	} else if err := noArgs(fs, rest); err != nil {
		return err
	}
	switch {
	case len(groups) == 0 && !*all:
		return usageError("token create: give --group G (repeatable) or --all-groups")
	case len(groups) > 0 && *all:
		return usageError("token create: --group and --all-groups exclude each other")
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
	if expiresIn > 0 {
		t.ExpiresAt = now.Add(expiresIn)
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

func (c *cli) tokenList(ctx context.Context, fs *flag.FlagSet, args []string) error {
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	if rest, err := c.parse(fs, args); err != nil {
		return err
	} else if err := noArgs(fs, rest); err != nil {
		return err
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

func (c *cli) tokenRevoke(ctx context.Context, fs *flag.FlagSet, args []string) error {
	ids, err := c.parse(fs, args)
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
