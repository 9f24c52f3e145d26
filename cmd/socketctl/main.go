// Command socketctl administers a mastersocket deployment: it creates, lists
// and revokes the tokens that services present in IDENTIFY.
//
//	socketctl token create --group G [--group H | --all-groups] [--name N] [--expires-in 720h]
//	socketctl token list [--json]
//	socketctl token revoke ID|TOKEN
//
// Every command takes --table (default $TABLE_NAME) and --endpoint (default
// $DYNAMODB_ENDPOINT; empty means AWS's regional DynamoDB endpoint, with the
// usual AWS credentials and region).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one socketctl command and returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, open: openStore}
	if err := c.run(ctx, args); err != nil {
		fmt.Fprintf(stderr, "socketctl: %v\n", err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}
