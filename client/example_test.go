package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/mastersocket/mastersocket/client"
)

// A service of group damon that answers INFO as the Master Socket Server
// README's example does: with an EVENT sent DIRECT to the requester that
// keeps the request's id. It runs until interrupted.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	info := func(ctx context.Context, c *client.Client, m *client.Message) {
		var req struct {
			Requester string `json:"requester"`
		}
		if err := m.Decode(&req); err != nil || req.Requester == "" {
			req.Requester = m.Source.ID
		}
		answer := map[string]any{"channels": 12, "shardId": 0, "users": 1234}
		if err := c.SendID(ctx, m.ID, "INFO", client.Direct(req.Requester), answer); err != nil {
			log.Printf("answer INFO: %v", err)
		}
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(dialCtx, "ws://127.0.0.1:3001/dev", client.Options{
		Token:    os.Getenv("MASTERSOCKET_TOKEN"),
		Group:    "damon",
		Handlers: map[string]client.Handler{"INFO": info},
		OnConnect: func(_ *client.Client, e client.ConnectEvent) {
			log.Printf("connected as %s (reconnect: %v)", e.ServiceID, e.Reconnect)
		},
		OnError: func(_ *client.Client, err error) { log.Print(err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	c.Close()
	if err := c.Wait(); err != nil {
		log.Fatal(err)
	}
}

// Connecting to a server deployed with ConnectAuth=required, the default:
// the handshake carries the token and the group.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", client.Options{
		Token: os.Getenv("MASTERSOCKET_TOKEN"),
		Group: "bots",
	})
	var he *client.HandshakeError
	switch {
	case errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized:
		log.Fatal("the token is unknown or expired")
	case err != nil:
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("service id:", c.ID())
}

// Connecting seed-style, to a server deployed with ConnectAuth=off: the
// client identifies with IDENTIFY after connecting.
func ExampleDial_identifyAfterConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://127.0.0.1:3001/dev", client.Options{
		Token:                os.Getenv("MASTERSOCKET_TOKEN"),
		Group:                "bots",
		IdentifyAfterConnect: true,
	})
	if client.CodeOf(err) == client.CodeIdentifyFailed {
		log.Fatal("the server refused the token or the group: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

// Asking a group and collecting every answer: Request returns once the
// receipt's count of answers has come, or at the deadline with those so
// far.
func ExampleClient_Request() {
	var c *client.Client // from Dial
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answers, err := c.Request(ctx, "INFO", client.Group("damon"), map[string]string{"requester": c.ID()})
	if errors.Is(err, context.DeadlineExceeded) && answers.Receipt != nil {
		log.Printf("%d of %d answered in time", len(answers.Messages), answers.Receipt.Delivered)
	} else if err != nil {
		log.Fatal(err)
	}
	for _, m := range answers.Messages {
		fmt.Printf("%s answered %s\n", m.Source.ID, m.Data)
	}
}

// Printing each answer as it arrives, and how many are expected.
func ExampleClient_Ask() {
	var c *client.Client // from Dial
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := c.Ask(ctx, "INFO", client.Group("damon"), map[string]string{"requester": c.ID()})
	if err != nil {
		log.Fatal(err)
	}
	defer call.Close()
	n := 0
	for call.Next() {
		n++
		m := call.Message()
		if r, ok := call.Receipt(); ok {
			fmt.Printf("answer %d of %d, from %s: %s\n", n, r.Delivered, m.Source.ID, m.Data)
		} else {
			fmt.Printf("answer %d, from %s: %s\n", n, m.Source.ID, m.Data)
		}
	}
	if err := call.Err(); err != nil {
		log.Print(err)
	}
}

// Learning how many services a GROUP message reached.
func ExampleClient_SendAck() {
	var c *client.Client // from Dial
	r, err := c.SendAck(context.Background(), "DEPLOYED", client.Group("workers"), map[string]string{"version": "1.4.2"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("delivered to %d, %d gone, %d failed\n", r.Delivered, r.Gone, r.Failed)
}

// A handler that answers requests with a REPLY.
func ExampleClient_Reply() {
	echo := func(ctx context.Context, c *client.Client, m *client.Message) {
		if err := c.Reply(ctx, m, m.Data); err != nil {
			log.Print(err)
		}
	}
	_ = client.Options{Handlers: map[string]client.Handler{"ECHO": echo}}
}

// Telling protocol errors apart.
func ExampleCodeOf() {
	var c *client.Client // from Dial
	_, err := c.SendAck(context.Background(), "HELLO", client.Direct("3cc637ab-0eaf-46ae-ad72-a817fc2c3bcc"), nil)
	switch client.CodeOf(err) {
	case 0:
	case client.CodeTargetNotFound:
		log.Print("that service has gone; it may be back under a new id")
	case client.CodeMessageTooBig:
		log.Print("too big: raise MaxMessageBytes on both sides, or send less")
	default:
		log.Print(err)
	}
}
