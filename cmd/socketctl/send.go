package main

// The send and kick commands: an EVENT as the server, and a DISCONNECT.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
)

// operatorSource is the source that socketctl's EVENTs carry. No service
// has this id (service ids are UUID v4s), so a recipient tells an
// operator's message apart, and a REPLY to it gets TARGET_NOT_FOUND.
var operatorSource = protocol.Source{ID: "socketctl", Group: "socketctl"}

// kickCode is the code of the DISCONNECT that kick posts: 4009 KICKED,
// fatal, which the Go client does not reconnect after; the frame's
// message gives the reason.
const kickCode = protocol.CodeKicked

// maxKickReason bounds --reason, in bytes.
const maxKickReason = 1024

// optionalString is a string flag that tells "not given" from "".
type optionalString struct {
	value string
	set   bool
}

func (o *optionalString) String() string     { return o.value }
func (o *optionalString) Set(s string) error { o.value, o.set = s, true; return nil }

// sendResult is what became of an EVENT: send prints it.
type sendResult struct {
	ID     string          `json:"id"`
	Intent protocol.Intent `json:"intent"`
	// The counts of a delivery receipt: delivered, gone, failed.
	protocol.Receipt
	// Removed counts the gone recipients whose items were removed.
	Removed int `json:"removed"`
}

func (c *cli) send(ctx context.Context, fs *flag.FlagSet, args []string) error {
	event := fs.String("event", "", "the event `NAME` (1 to 128 characters); required")
	global := fs.Bool("global", false, "send to every identified connection")
	group := fs.String("group", "", "send to every connection of `GROUP`")
	direct := fs.String("direct", "", "send to the connection of the service `SERVICE_ID`")
	var data, id optionalString
	fs.Var(&data, "data", "the EVENT's data: any `JSON` value, such as '{\"n\":1}' or '\"text\"' (default: no data)")
	fs.Var(&id, "id", "the EVENT's `ID`, 1 to 128 characters (default: a random UUID)")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	rest, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, rest); err != nil {
		return err
	}

	var intent protocol.Intent
	targets := 0
	if *global {
		intent, targets = protocol.Intent{Target: protocol.TargetGlobal}, targets+1
	}
	if *group != "" {
		intent, targets = protocol.Intent{Target: protocol.TargetGroup, Identifier: *group}, targets+1
	}
	if *direct != "" {
		intent, targets = protocol.Intent{Target: protocol.TargetDirect, Identifier: *direct}, targets+1
	}
	switch {
	case *event == "":
		return usageError("send: --event NAME is required")
	case targets == 0:
		return usageError("send: give the target: --global, --group G or --direct SERVICE_ID")
	case targets > 1:
		return usageError("send: give one target: --global, --group G or --direct SERVICE_ID")
	}
	msgID := id.value
	if !id.set {
		msgID = uuid.NewString()
	}
	var raw []byte
	if data.set {
		raw = []byte(strings.TrimSpace(data.value))
		if !json.Valid(raw) {
			return usageError(`send: --data must be valid JSON, such as '{"n":1}', 42 or '"text"' (a string is quoted)`)
		}
	}
	frame, err := eventFrame(msgID, *event, raw, intent)
	if err != nil {
		return err
	}

	store, gw, endpoint, err := c.storeAndGateway(ctx, fs)
	if err != nil {
		return err
	}
	var recipients []router.Member
	switch intent.Target {
	case protocol.TargetDirect:
		connID, err := store.ServiceConnection(ctx, intent.Identifier)
		if errors.Is(err, router.ErrNotFound) {
			return fmt.Errorf("service %s is not connected (table %s has no live connection for it)", intent.Identifier, c.table)
		}
		if err != nil {
			return fmt.Errorf("look up service %s: %w", intent.Identifier, err)
		}
		recipients = []router.Member{{ConnectionID: connID, ServiceID: intent.Identifier}}
	default:
		var mu sync.Mutex
		collect := func(page []router.Member) error {
			mu.Lock()
			recipients = append(recipients, page...)
			mu.Unlock()
			return nil
		}
		if intent.Target == protocol.TargetGroup {
			err = store.GroupMembers(ctx, intent.Identifier, collect)
		} else {
			err = store.AllMembers(ctx, collect)
		}
		if err != nil {
			return fmt.Errorf("list recipients: %w", err)
		}
	}

	res := sendResult{ID: msgID, Intent: intent}
	var (
		mu       sync.Mutex
		gone     []string
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, parallel)
	)
	for _, to := range recipients {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := gw.Send(ctx, to.ConnectionID, frame)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.Delivered++
			case errors.Is(err, router.ErrGone):
				res.Gone++
				gone = append(gone, to.ConnectionID)
			default:
				res.Failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}()
	}
	wg.Wait()
	cl, cleanErr := c.forgetGone(ctx, store, endpoint, gone)
	res.Removed = cl.removed

	if *asJSON {
		if err := json.NewEncoder(c.stdout).Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "EVENT %s to %s: %d delivered, %d gone, %d failed\n", msgID, describe(intent), res.Delivered, res.Gone, res.Failed)
	}
	cl.report(c, endpoint)
	switch {
	case res.Failed > 0:
		return fmt.Errorf("%d of %d deliveries failed: %w", res.Failed, len(recipients), firstErr)
	case cleanErr != nil:
		return cleanErr
	case intent.Target == protocol.TargetDirect && res.Delivered == 0:
		return fmt.Errorf("service %s is no longer connected: the gateway no longer has its connection", intent.Identifier)
	}
	return nil
}

// eventFrame returns the frame that recipients of an operator's EVENT
// receive: the EVENT is checked as the router checks a service's (Parse),
// then stamped with operatorSource (Delivery), exactly as the router
// stamps a service's. A message that fails the protocol's rules is a usage
// error.
func eventFrame(id, event string, data json.RawMessage, intent protocol.Intent) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"op":0,"id":`)
	b.Write(jsonString(id))
	b.WriteString(`,"event":`)
	b.Write(jsonString(event))
	if data != nil {
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			return nil, usageError("send: --data must be valid JSON")
		}
		b.WriteString(`,"data":`)
		b.Write(compact.Bytes())
	}
	in, _ := json.Marshal(intent)
	b.WriteString(`,"intent":`)
	b.Write(in)
	b.WriteString(`}`)
	m, err := protocol.Parse(b.Bytes())
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return nil, usageError("send: not a valid EVENT: " + pe.Message)
		}
		return nil, err
	}
	frame := m.Delivery(operatorSource)
	if len(frame) > router.MaxDeliveryBytes {
		return nil, usageError(fmt.Sprintf("send: the EVENT is %d bytes, over the %d bytes the gateway delivers", len(frame), router.MaxDeliveryBytes))
	}
	return frame, nil
}

// jsonString returns s as a JSON string, with <, > and & as they are.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// describe names a target as the protocol does: GLOBAL, GROUP bots, DIRECT <id>.
func describe(in protocol.Intent) string {
	if in.Target == protocol.TargetGlobal {
		return string(in.Target)
	}
	return string(in.Target) + " " + in.Identifier
}

// kickFrame returns the DISCONNECT that kick posts (see kickCode).
func kickFrame(reason string) []byte {
	msg := "disconnected by an operator"
	if reason != "" {
		msg += ": " + reason
	}
	return protocol.ErrorFrame(&protocol.Error{Code: kickCode, Message: msg})
}

func (c *cli) kick(ctx context.Context, fs *flag.FlagSet, args []string) error {
	reason := fs.String("reason", "", "why, for the service: the DISCONNECT's message reads \"disconnected by an operator: `TEXT`\"")
	ids, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(ids) != 1:
		return usageError("kick: give the service id of one service, as socketctl connections shows it")
	case len(ids[0]) > protocol.MaxIdentifierLen:
		return usageError(fmt.Sprintf("kick: a service id has at most %d characters", protocol.MaxIdentifierLen))
	case len(*reason) > maxKickReason || !utf8.ValidString(*reason):
		return usageError(fmt.Sprintf("kick: --reason must be UTF-8 text of at most %d bytes", maxKickReason))
	}
	serviceID := ids[0]
	store, gw, endpoint, err := c.storeAndGateway(ctx, fs)
	if err != nil {
		return err
	}
	connID, err := store.ServiceConnection(ctx, serviceID)
	if errors.Is(err, router.ErrNotFound) {
		return fmt.Errorf("service %s is not connected (table %s has no live connection for it)", serviceID, c.table)
	}
	if err != nil {
		return fmt.Errorf("look up service %s: %w", serviceID, err)
	}
	group := "?"
	if conn, err := store.Connection(ctx, connID); err == nil && conn.Identity != nil {
		group = conn.Identity.Group
	}

	// As the router ends a connection for a fatal error: the DISCONNECT
	// first, so that it arrives, then the close; then the items, which
	// the gateway's $disconnect removes too (removal is idempotent).
	err = gw.Send(ctx, connID, kickFrame(*reason))
	if errors.Is(err, router.ErrGone) {
		cl, cleanErr := c.forgetGone(ctx, store, endpoint, []string{connID})
		if cleanErr != nil {
			return cleanErr
		}
		if cl.elsewhere > 0 {
			return fmt.Errorf("service %s (connection %s) is not a connection of the gateway %s: it is recorded by another gateway; nothing done", serviceID, connID, endpoint)
		}
		if cl.young > 0 {
			return fmt.Errorf("service %s (connection %s) is still in its handshake (the gateway answers 410 until its $connect returns): try again in a moment", serviceID, connID)
		}
		fmt.Fprintf(c.stdout, "service %s (connection %s, group %s) was already gone at the gateway.\n", serviceID, connID, group)
		cl.report(c, endpoint)
		return nil
	}
	if err != nil {
		return fmt.Errorf("post DISCONNECT to %s: %w", connID, err)
	}
	if err := gw.Close(ctx, connID); err != nil {
		return fmt.Errorf("close connection %s (the DISCONNECT was sent): %w", connID, err)
	}
	if err := store.RemoveConnection(ctx, connID); err != nil {
		return fmt.Errorf("remove the items of connection %s (it is closed): %w", connID, err)
	}
	fmt.Fprintf(c.stdout, "kicked service %s (connection %s, group %s): DISCONNECT %d %s sent, connection closed, items removed.\n",
		serviceID, connID, group, int(kickCode), kickCode.Reason())
	return nil
}

// cleanup counts what forgetGone did with the connections that the
// gateway reported gone.
type cleanup struct {
	removed int // items removed
	young   int // recorded less than the handshake grace ago: left
	// elsewhere are recorded by another gateway, which this one cannot
	// see: left alone.
	elsewhere int
}

// forgetGone removes the items of connections that the gateway of endpoint
// reported gone, as the router does: not those recorded less than
// router.DefaultHandshakeGrace ago (the gateway answers 410 until $connect
// has returned), and, unlike the router, not those another gateway
// recorded, since every connection of another gateway is gone to this one
// (a wrong --management-endpoint must not empty the table). It lists the
// gateway's connections once to tell.
func (c *cli) forgetGone(ctx context.Context, store registry, endpoint string, gone []string) (cleanup, error) {
	var cl cleanup
	if len(gone) == 0 {
		return cl, nil
	}
	wanted := make(map[string]bool, len(gone))
	for _, id := range gone {
		wanted[id] = true
	}
	var mu sync.Mutex
	mine := map[string]router.Connection{}
	err := store.Connections(ctx, endpoint, func(page []router.Connection) error {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range page {
			if wanted[conn.ID] {
				mine[conn.ID] = conn
			}
		}
		return nil
	})
	if err != nil {
		return cl, fmt.Errorf("list the gateway's connections to remove the gone ones: %w", err)
	}
	now := time.Now()
	for _, id := range gone {
		conn, ok := mine[id]
		if !ok {
			// Not listed: removed meanwhile, recorded a moment ago (the
			// index is eventually consistent), or another gateway's.
			cur, err := store.Connection(ctx, id)
			switch {
			case errors.Is(err, router.ErrNotFound):
				continue
			case err != nil:
				return cl, fmt.Errorf("read gone connection %s: %w", id, err)
			case now.Sub(cur.ConnectedAt) < router.DefaultHandshakeGrace:
				cl.young++
			default:
				cl.elsewhere++
			}
			continue
		}
		if now.Sub(conn.ConnectedAt) < router.DefaultHandshakeGrace {
			cl.young++
			continue
		}
		if err := store.RemoveConnection(ctx, id); err != nil {
			return cl, fmt.Errorf("remove gone connection %s: %w", id, err)
		}
		cl.removed++
	}
	return cl, nil
}

// report tells, on stderr, what became of the gone connections.
func (cl cleanup) report(c *cli, endpoint string) {
	if cl.removed > 0 {
		fmt.Fprintf(c.stderr, "removed the items of %s that the gateway no longer has.\n", plural(cl.removed, "gone connection"))
	}
	if cl.young > 0 {
		fmt.Fprintf(c.stderr, "left %s recorded less than %v ago: it may still be in its handshake (its $disconnect or the sweeper removes it).\n",
			plural(cl.young, "gone connection"), router.DefaultHandshakeGrace)
	}
	if cl.elsewhere > 0 {
		fmt.Fprintf(c.stderr, "left alone %s recorded by another gateway than %s: is --management-endpoint the gateway of table %s?\n",
			plural(cl.elsewhere, "connection"), endpoint, c.table)
	}
}
