package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// socketctl runs one command line and returns its exit status and output.
func socketctl(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"TABLE_NAME": "t", "MANAGEMENT_ENDPOINT": ""}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"tokens"}, "unknown command"},
		{"no subcommand", []string{"token"}, "needs a subcommand"},
		{"unknown subcommand", []string{"token", "delete"}, "unknown token subcommand"},
		{"no group", []string{"token", "create"}, "--group G"},
		{"group and all", []string{"token", "create", "--group", "a", "--all-groups"}, "exclude each other"},
		{"bad group", []string{"token", "create", "--group", "a b"}, `group "a b"`},
		{"negative expiry", []string{"token", "create", "--all-groups", "--expires-in", "-1h"}, "positive"},
		{"unknown flag", []string{"token", "list", "--nope"}, "flag provided but not defined"},
		{"revoke without id", []string{"token", "revoke"}, "give the ID"},
		{"revoke short id", []string{"token", "revoke", "abc"}, "at least 8"},
		{"revoke something that is no id", []string{"token", "revoke", "hunter2-secret"}, "an ID is hex digits"},
		{"expiry in weeks", []string{"token", "create", "--all-groups", "--expires-in", "4w"}, "30d"},
		{"connections without a management endpoint", []string{"connections"}, "--management-endpoint (or MANAGEMENT_ENDPOINT) is required"},
		{"a management endpoint without its stage", []string{"connections", "--management-endpoint", "https://abc.execute-api.us-east-1.amazonaws.com"}, "has no stage"},
		{"a management endpoint that is no URL", []string{"kick", "svc", "--management-endpoint", "ftp://x/dev"}, "want an http(s) URL"},
		{"connections of a bad group", []string{"connections", "--group", "a b"}, "not a group name"},
		{"connections with an argument", []string{"connections", "bots"}, `unexpected argument "bots"`},
		{"send without an event", []string{"send", "--global"}, "--event NAME is required"},
		{"send without a target", []string{"send", "--event", "E"}, "give the target"},
		{"send to two targets", []string{"send", "--event", "E", "--global", "--group", "g"}, "give one target"},
		{"send data that is not JSON", []string{"send", "--event", "E", "--global", "--data", "{n:1}"}, "--data must be valid JSON"},
		{"send a bare word as data", []string{"send", "--event", "E", "--global", "--data", "hello"}, "a string is quoted"},
		{"send to a bad group", []string{"send", "--event", "E", "--group", "a b"}, "is not a group name"},
		{"send an event name too long", []string{"send", "--event", strings.Repeat("e", 129), "--global"}, "event must be 1 to 128 characters"},
		{"send an id too long", []string{"send", "--event", "E", "--global", "--id", strings.Repeat("i", 129)}, "id must be 1 to 128 characters"},
		{"send data nested too deep", []string{"send", "--event", "E", "--global", "--data", strings.Repeat("[", 64) + strings.Repeat("]", 64)}, "deeper than 64"},
		{"send data with a lone surrogate", []string{"send", "--event", "E", "--global", "--data", `"\ud800"`}, "lone UTF-16 surrogate"},
		{"kick without a service", []string{"kick"}, "give the service id of one service"},
		{"kick two services", []string{"kick", "a", "b"}, "give the service id of one service"},
		{"kick with a reason too long", []string{"kick", "a", "--reason", strings.Repeat("r", 1025)}, "at most 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := socketctl(t, env, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("got exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tt.want)
			}
			if last := tt.args[len(tt.args)-1]; strings.Contains(last, "secret") && strings.Contains(stderr, last) {
				t.Errorf("stderr %q repeats the argument %q, which may be a secret", stderr, last)
			}
		})
	}
	code, _, stderr := socketctl(t, nil, "token", "list")
	if code != 2 || !strings.Contains(stderr, "--table") {
		t.Errorf("without a table: got exit %d, %q", code, stderr)
	}
}

func TestTokensOnDynamoDB(t *testing.T) {
	client := dynamotest.Client(t)
	table := dynamotest.NewTable(t, client)
	env := map[string]string{"DYNAMODB_ENDPOINT": dynamotest.Endpoint(t)}
	store, err := dynamostore.New(client, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}

	code, plain, stderr := socketctl(t, env, "token", "create", "--table", table, "--group", "bots", "--group", "workers", "--name", "crawler")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	plain = strings.TrimSpace(plain)
	if !strings.HasPrefix(plain, token.Prefix) || strings.Contains(plain, "\n") {
		t.Fatalf("create printed %q, want one token", plain)
	}
	stored, err := store.Token(context.Background(), token.HashOf(plain))
	if err != nil {
		t.Fatalf("the printed token is not stored: %v", err)
	}
	if !stored.Allows("bots") || !stored.Allows("workers") || stored.Allows("admins") || stored.Name != "crawler" {
		t.Errorf("stored %+v", stored)
	}
	if !strings.Contains(stderr, stored.Hash.ID()) || strings.Contains(stderr, plain) {
		t.Errorf("stderr %q should name the ID and not repeat the token", stderr)
	}

	// TABLE_NAME instead of --table, and an expiring all-groups token.
	env["TABLE_NAME"] = table
	code, admin, stderr := socketctl(t, env, "token", "create", "--all-groups", "--expires-in", "30d")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	adminHash := token.HashOf(strings.TrimSpace(admin))
	if got, err := store.Token(t.Context(), adminHash); err != nil {
		t.Fatal(err)
	} else if left := time.Until(got.ExpiresAt); left < 30*24*time.Hour-time.Minute || left > 30*24*time.Hour {
		t.Errorf("--expires-in 30d: got a token expiring in %v, want 720h", left)
	}

	code, out, stderr := socketctl(t, env, "token", "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[1], stored.Hash.ID()) || !strings.Contains(lines[1], "groups bots,workers") ||
		!strings.Contains(lines[2], adminHash.ID()) || !strings.Contains(lines[2], "all groups") {
		t.Errorf("list printed:\n%s", out)
	}
	if strings.Contains(out, plain) {
		t.Error("list shows a plaintext token")
	}

	code, out, _ = socketctl(t, env, "token", "list", "--json")
	var row struct {
		ID        string   `json:"id"`
		Groups    []string `json:"groups"`
		AllGroups bool     `json:"allGroups"`
	}
	first := strings.Split(strings.TrimSpace(out), "\n")[0]
	if code != 0 || json.Unmarshal([]byte(first), &row) != nil || row.ID != stored.Hash.ID() || len(row.Groups) != 2 {
		t.Errorf("list --json printed %q", out)
	}

	code, out, stderr = socketctl(t, env, "token", "revoke", stored.Hash.ID())
	if code != 0 || !strings.Contains(out, "revoked token "+stored.Hash.ID()) {
		t.Fatalf("revoke: exit %d, %q %q", code, out, stderr)
	}
	if _, err := store.Token(context.Background(), stored.Hash); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the revoked token is still stored: %v", err)
	}
	if _, err := store.Token(context.Background(), adminHash); err != nil {
		t.Errorf("revoke removed another token: %v", err)
	}
	code, _, stderr = socketctl(t, env, "token", "revoke", stored.Hash.ID(), "--table", table)
	if code != 1 || !strings.Contains(stderr, "no token has the ID") {
		t.Errorf("revoking twice: exit %d, %q", code, stderr)
	}

	// Revoking with the token itself works, and no output repeats it.
	code, out, stderr = socketctl(t, env, "token", "revoke", strings.TrimSpace(admin))
	if code != 0 || !strings.Contains(out, "revoked token "+adminHash.ID()) {
		t.Fatalf("revoke by the token: exit %d, %q %q", code, out, stderr)
	}
	if strings.Contains(out+stderr, strings.TrimSpace(admin)) {
		t.Errorf("revoke by the token echoed it: %q %q", out, stderr)
	}
	if _, err := store.Token(context.Background(), adminHash); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the token revoked by itself is still stored: %v", err)
	}
	code, out, stderr = socketctl(t, env, "token", "revoke", strings.TrimSpace(admin))
	if code != 1 || strings.Contains(out+stderr, strings.TrimSpace(admin)) || !strings.Contains(stderr, "no stored token matches") {
		t.Errorf("revoking a gone token by itself: exit %d, %q %q; want a failure that does not repeat it", code, out, stderr)
	}
}

func TestMissingTable(t *testing.T) {
	ep := dynamotest.Endpoint(t)
	dynamotest.Client(t)
	code, _, stderr := socketctl(t, map[string]string{"DYNAMODB_ENDPOINT": ep}, "token", "list", "--table", "no-such-table")
	if code != 1 || !strings.Contains(stderr, `table "no-such-table" does not exist at `+ep) {
		t.Errorf("got exit %d, %q", code, stderr)
	}
}
