// Command socketctl administers a mastersocket deployment: the tokens that
// services present, and, for operators, the connections of a gateway.
//
//	socketctl token create --group G [--group H | --all-groups] [--name N] [--expires-in 30d]
//	socketctl token list [--json]
//	socketctl token revoke ID|TOKEN
//	socketctl connections [--group G] [--json]
//	socketctl send --event E (--global | --group G | --direct SERVICE_ID) [--data JSON] [--id ID] [--json]
//	socketctl kick SERVICE_ID [--reason TEXT]
//	socketctl help [COMMAND]
//	socketctl --version
//
// Every command takes --table (default $TABLE_NAME) and --endpoint (default
// $DYNAMODB_ENDPOINT; empty means AWS's regional DynamoDB endpoint, with the
// usual AWS credentials and region). connections, send and kick also take
// --management-endpoint (default $MANAGEMENT_ENDPOINT): the stack's
// ManagementEndpoint output, or a local gateway's http://127.0.0.1:3001/dev,
// which is called unsigned.
//
// `socketctl help` and `socketctl COMMAND -h` print usage on stdout and exit
// 0; socketctl with no arguments prints the usage on stderr and exits 2, as
// every usage error does; a runtime failure exits 1.
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

// run executes one socketctl command line and returns the exit status: 0 on
// success (help included), 1 on failure, 2 on a usage error. No message it
// prints repeats an argument that looks like a token.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, open: openStore, dial: openGateway}
	err := c.run(ctx, args)
	switch err.(type) {
	case nil:
		return 0
	case helpShown:
		return 0
	case usageError:
		fmt.Fprintf(stderr, "socketctl: %s\n", scrub(err.Error(), args))
		return 2
	default:
		fmt.Fprintf(stderr, "socketctl: %s\n", scrub(c.explain(err).Error(), args))
		return 1
	}
}
