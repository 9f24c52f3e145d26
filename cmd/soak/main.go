// Command soak holds many WebSocket connections on the local gateway, with
// faults, while GROUP, DIRECT and GLOBAL traffic flows, and judges every
// delivery: `make soak` runs it (`go run ./cmd/soak $(ARGS)`). The defaults
// (1,000 connections in 20 groups, 300 messages a second for 2m30s) finish
// in about three minutes on two cores. It prints, one per line and in this
// order, deliveries, lost to live recipients, duplicates, items left,
// latency p50 and p99, and the gateway's peak memory and goroutines, then
// context; the exit status is 1 when anything was lost, duplicated,
// misdelivered or left in the store, or (--connect-auth required) a
// handshake was judged wrongly, 2 on bad flags.
//
// What it decides:
//
//   - The gateway runs in this process: localrun.Start on 127.0.0.1:0 with
//     the module's template.yaml (found from the working directory upwards,
//     or with `go env GOMOD`; --template overrides), the memory store, a
//     ping interval of 2 s and an IDENTIFY deadline of 2 s, the template's
//     ConnectAuth parameter from --connect-auth (required, the template's
//     default, or off), and the sweeper every --sweep-every (2 s). Its
//     logs go to a counter, not the terminal: the soak prints the
//     sweeper's totals, the warnings, errors and failed invocations by
//     message, and (required) the handshakes its authorizer judged.
//   - Faults of $disconnect: WrapStore makes RemoveConnection fail, removing
//     nothing, for a --disconnect-faults fraction of the calls made by the
//     template's $disconnect function, told apart by the Lambda context of
//     the invocation (its function ARN). The message function's removals
//     (after a 410) and the sweeper's never fail, so the sweeper must clean
//     up what the failed $disconnects left.
//   - The clients run in a child process (this program again, with the
//     hidden flag --role clients), which receives its settings, the URL and
//     the token as one JSON line on stdin (so the token is never on a
//     command line; the end of stdin aborts it) and writes its report as
//     JSON on stdout. This process's figures are then the gateway's: peak
//     goroutines sampled every 100 ms, peak memory from VmHWM in
//     /proc/self/status (the peak of runtime.MemStats.Sys where there is no
//     /proc).
//   - Connecting, --connect-auth required: each connection slot (group =
//     slot mod --groups) dials with the token and its group (?group=) in
//     the handshake: the token in an Authorization: Bearer header, or, for
//     every 4th slot, offered as a browser does, the subprotocols
//     ["mastersocket", "bearer.<token>"], of which the server must select
//     mastersocket. It is a member of its group from the handshake, and
//     learns its service id with a tokenless IDENTIFY ({"op":1,"id":"who"},
//     "who am I"; the answer must name its group); EVENTs read before
//     that answer are counted as early and judged like the others.
//     --connect-auth off: it dials anonymously, IDENTIFYs with the token
//     and its group, and is a member once it has read the answer (EVENTs
//     may come before it; counted as early).
//   - Clients: once connected, each reads everything, PINGs at the
//     announced interval, and after an exponentially distributed wait (mean
//     1/--churn minutes) meets a fault: 40% a clean close (close frame),
//     40% an abrupt drop (no close frame), 20% a freeze (no read, no
//     write, TCP open) for 2×ping + 2×sweep interval + up to 3 s, long
//     enough for the sweeper to close it with DISCONNECT 4008; after a
//     freeze the client reads on until the close. Then it reconnects after 50–500 ms with a new
//     connection and a new service id. 5% of reconnects first try an
//     anonymous connection: off, it is held until the sweeper closes it
//     with 4004; required, it is a handshake without credentials (the
//     group only), which must be refused with 401: any other outcome fails
//     the soak, as does a handshake with the token refused with 401, 403
//     or 500. Slots start over the first 2 s.
//   - Traffic: --rate messages a second in all, --global-rate (1) of them
//     GLOBAL, a tenth of the others DIRECT to a random identified client,
//     the rest GROUP to a random group, each from a random identified
//     client, with id "m<seq>" and its send time in data. Traffic and
//     faults stop after --duration; --grace (5 s) later every client
//     closes, half cleanly, half abruptly, and the child exits.
//   - Judgement, over every (message M sent at t by S, recipient R) pair: R
//     is a target (its group for GROUP, the named client for DIRECT,
//     everyone for GLOBAL), R is not S, R was a member before t (its
//     handshake had completed, required; its IDENTIFY answer had been
//     read, off) and R had not ended by t. The pair is expected when S and R
//     both stayed up (no close, drop, freeze or server close) until
//     t+grace, otherwise in doubt (counted, not judged). Lost = expected
//     pairs never received; duplicates = (connection, message) pairs
//     received more than once, over all deliveries; misdelivered =
//     deliveries to a non-target or with a wrong source. Latency
//     percentiles cover every EVENT received except those a client read
//     after a freeze, whose latency is the freeze's; their number is
//     printed.
//   - At the end, after the child has exited: 2 s for the last
//     $disconnects, two sweeps (RunSchedules), then items left = connection
//     items + memberships still in the store: with every client gone, any
//     item is a leftover.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// The hidden flag that makes this program the clients' process.
const (
	roleFlag    = "--role"
	roleClients = "clients"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the program: the soak, or the clients' process; it returns the
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if isClients(args) {
		return clientsMain(stdin, stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	var reported reportedError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &reported):
		return 2
	case err != nil:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "soak: %s\n", line)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runSoak(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	res.print(stdout)
	if res.failed() {
		return 1
	}
	return 0
}

// isClients reports whether args make this the clients' process.
func isClients(args []string) bool {
	return len(args) == 2 && args[0] == roleFlag && args[1] == roleClients
}
