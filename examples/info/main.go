// Command info is the INFO exchange of the Master Socket Server README on
// mastersocket, with the Go client: services of group "damon" answer an
// INFO request with their channels, shard id and users, by an EVENT sent
// DIRECT to the requester that keeps the request's id; an asker sends INFO
// to the group and prints every answer as it arrives, and how many it
// expected (from the request's delivery receipt).
//
//	go run ./examples/info serve --token TOKEN [--shards 3]
//	go run ./examples/info ask --token TOKEN
//
// On the wire, the request and one answer read:
//
//	{"id":"70653cb0-…","op":0,"event":"INFO","data":{"requester":"<asker's service id>"},"intent":{"target":"GROUP","identifier":"damon"},"ack":true}
//	{"id":"70653cb0-…","op":0,"event":"INFO","data":{"channels":12,"shardId":1,"users":340},"intent":{"target":"DIRECT","identifier":"<asker's service id>"}}
//
// See examples/info/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mastersocket/mastersocket/client"
)

// Group is the group whose services answer INFO.
const Group = "damon"

// InfoRequest is the data of an INFO request.
type InfoRequest struct {
	Requester string `json:"requester"`
}

// Info is the data of an answer to INFO.
type Info struct {
	Channels int `json:"channels"`
	ShardID  int `json:"shardId"`
	Users    int `json:"users"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "info:", err)
		os.Exit(1)
	}
}

// config holds the flags both commands take.
type config struct {
	url, token string
	seedStyle  bool
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:3001/dev", "the bus's WebSocket URL (make run prints it; on AWS the stack's WebSocketURL)")
	fs.StringVar(&c.token, "token", os.Getenv("MASTERSOCKET_TOKEN"), "a service token (make run prints one; default $MASTERSOCKET_TOKEN)")
	fs.BoolVar(&c.seedStyle, "identify-after-connect", false, "for a bus deployed with ConnectAuth=off: IDENTIFY after connecting")
}

func (c *config) options(group string) (client.Options, error) {
	if c.token == "" {
		return client.Options{}, errors.New("--token is required (make run prints one)")
	}
	return client.Options{Token: c.token, Group: group, IdentifyAfterConnect: c.seedStyle}, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "serve" && args[0] != "ask") {
		fmt.Fprintln(stderr, "usage: info serve [--shards N] | info ask [--timeout D]   (and --url, --token)")
		return errors.New("want serve or ask")
	}
	fs := flag.NewFlagSet("info "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	c.flags(fs)
	if args[0] == "serve" {
		shards := fs.Int("shards", 3, "services of group damon to run, one per shard")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return serve(ctx, c, *shards, stdout)
	}
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for answers")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return ask(ctx, c, *timeout, stdout)
}

// serve runs shards services of group damon until ctx ends, each answering
// INFO with its own figures.
func serve(ctx context.Context, c config, shards int, stdout io.Writer) error {
	var (
		mu      sync.Mutex
		clients []*client.Client
	)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for shard := range shards {
		opts, err := c.options(Group)
		if err != nil {
			return err
		}
		info := Info{Channels: 10 + shard, ShardID: shard, Users: 100 * (shard + 1)}
		opts.Handlers = map[string]client.Handler{
			"INFO": func(ctx context.Context, cl *client.Client, m *client.Message) {
				var req InfoRequest
				if err := m.Decode(&req); err != nil || req.Requester != m.Source.ID {
					// Not a request this service answers: the answer goes
					// to data.requester, as the README's exchange has it,
					// so only a requester asking for itself is answered
					// (no service can point every answer at another).
					return
				}
				if err := cl.SendID(ctx, m.ID, "INFO", client.Direct(req.Requester), info); err != nil {
					mu.Lock()
					fmt.Fprintf(stdout, "shard %d: answer to %s: %v\n", shard, req.Requester, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				fmt.Fprintf(stdout, "shard %d: answered INFO %s from %s\n", shard, m.ID, req.Requester)
				mu.Unlock()
			},
		}
		cl, err := client.Dial(ctx, c.url, opts)
		if err != nil {
			return fmt.Errorf("shard %d: %w", shard, err)
		}
		clients = append(clients, cl)
		mu.Lock()
		fmt.Fprintf(stdout, "shard %d: service %s in group %s, answering INFO\n", shard, cl.ID(), Group)
		mu.Unlock()
	}
	<-ctx.Done()
	return nil
}

// ask sends INFO to group damon and prints the answers as they arrive.
func ask(ctx context.Context, c config, timeout time.Duration, stdout io.Writer) error {
	opts, err := c.options("askers")
	if err != nil {
		return err
	}
	cl, err := client.Dial(ctx, c.url, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	call, err := cl.Ask(ctx, "INFO", client.Group(Group), InfoRequest{Requester: cl.ID()})
	if err != nil {
		return err
	}
	defer call.Close()
	fmt.Fprintf(stdout, "asked group %s for INFO (request %s, from %s)\n", Group, call.ID(), cl.ID())
	got := 0
	for call.Next() {
		m := call.Message()
		var info Info
		if err := m.Decode(&info); err != nil {
			fmt.Fprintf(stdout, "  from %s: %s (not INFO data: %v)\n", m.Source.ID, m.Data, err)
			continue
		}
		got++
		fmt.Fprintf(stdout, "  from %s: shard %d, %d channels, %d users\n", m.Source.ID, info.ShardID, info.Channels, info.Users)
	}
	expected := "unknown (no receipt came)"
	if r, ok := call.Receipt(); ok {
		expected = fmt.Sprint(r.Delivered)
	}
	fmt.Fprintf(stdout, "%d answers; expected %s\n", got, expected)
	if err := call.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
