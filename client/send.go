package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// Send sends an EVENT to the intent's targets: Global(), Group(name) or
// Direct(serviceID). data is encoded with encoding/json (a json.RawMessage
// is sent as it is; nil sends no data). A nil error means the message was
// written, not that it was delivered: delivery is at most once, and an
// error the server answers later (TARGET_NOT_FOUND for a DIRECT to a
// service that is gone) reaches Options.OnError with the message's id. Use
// SendAck to learn what became of it.
//
// A message the server would refuse (over Options.MaxMessageBytes, an
// empty event, a GROUP to a name that is not a group name) is refused with
// the same *ServerError without being sent. While the client reconnects,
// Send waits for the new connection until ctx ends.
func (c *Client) Send(ctx context.Context, event string, to Intent, data any) error {
	f, err := eventFrame("", event, to, data, false)
	if err != nil {
		return err
	}
	_, err = c.post(ctx, f, nil)
	return err
}

// SendID sends an EVENT as Send does, with the message id id instead of a
// fresh one (1 to 128 characters). It is how a service answers a request
// with an EVENT that keeps the request's id, as the INFO exchange of the
// Master Socket Server README does: the asker's Request or Ask collects
// such an EVENT, sent DIRECT to it, as an answer.
func (c *Client) SendID(ctx context.Context, id, event string, to Intent, data any) error {
	if n := utf8.RuneCountInString(id); n < 1 || n > maxIDLen {
		return localError(CodeInvalidPayload, "", "id must be 1 to %d characters, got %d", maxIDLen, n)
	}
	f, err := eventFrame(id, event, to, data, false)
	if err != nil {
		return err
	}
	_, err = c.post(ctx, f, nil)
	return err
}

// SendAck sends an EVENT as Send does, with "ack": true, and waits for its
// delivery receipt: how many recipients it was delivered to, how many were
// gone, how many failed. A DIRECT to a service that is not connected
// returns the *ServerError TARGET_NOT_FOUND. If the connection ends first,
// the error wraps ErrDisconnected: the message may or may not have been
// delivered.
func (c *Client) SendAck(ctx context.Context, event string, to Intent, data any) (Receipt, error) {
	f, err := eventFrame("", event, to, data, true)
	if err != nil {
		return Receipt{}, err
	}
	return c.ack(ctx, f)
}

// Reply answers a received message with a REPLY that keeps its id and goes
// DIRECT to its sender (m.Source.ID). As with Send, a nil error means
// written; a sender that has gone meanwhile makes the server answer
// TARGET_NOT_FOUND, which reaches Options.OnError. Use ReplyAck to wait for
// that answer instead.
func (c *Client) Reply(ctx context.Context, m *Message, data any) error {
	f, err := replyFrame(m, data, false)
	if err != nil {
		return err
	}
	_, err = c.post(ctx, f, nil)
	return err
}

// ReplyAck replies as Reply does, with "ack": true, and waits for the
// receipt: Delivered is 1, or the error is the *ServerError
// TARGET_NOT_FOUND when the asker is no longer connected.
func (c *Client) ReplyAck(ctx context.Context, m *Message, data any) (Receipt, error) {
	f, err := replyFrame(m, data, true)
	if err != nil {
		return Receipt{}, err
	}
	return c.ack(ctx, f)
}

// Answers is what Request collected.
type Answers struct {
	// ID is the id of the request, which its answers carry.
	ID string
	// Messages are the answers, in the order they arrived.
	Messages []*Message
	// Receipt is the request's delivery receipt, or nil if none came.
	Receipt *Receipt
}

// Request sends an EVENT with a fresh id and "ack": true, and collects the
// answers that carry its id: REPLYs, and EVENTs sent DIRECT to this
// service (the Master Socket Server README's INFO answers). The receipt
// says how many recipients the request reached (Expected: delivered and
// queued); Request returns once that many answers have come, with a nil
// error. If ctx ends first, it returns
// the answers so far and ctx.Err(): a recipient may not answer at all, so
// give ctx a deadline. A DIRECT to a service that is not connected returns
// the *ServerError TARGET_NOT_FOUND; a connection that ends returns an
// error wrapping ErrDisconnected (the answers would go to the old service
// id). Answers arriving after Request returned are dropped.
//
// Request may be called from a handler: answers reach it without passing
// through the handlers, though while it waits, other messages wait for
// that handler (with the default HandlerConcurrency of 1).
func (c *Client) Request(ctx context.Context, event string, to Intent, data any) (Answers, error) {
	k, err := c.Ask(ctx, event, to, data)
	if err != nil {
		return Answers{}, err
	}
	defer k.Close()
	a := Answers{ID: k.ID()}
	for k.Next() {
		a.Messages = append(a.Messages, k.Message())
	}
	if r, ok := k.Receipt(); ok {
		a.Receipt = &r
	}
	return a, k.Err()
}

// Ask sends a request as Request does and returns at once, with a Call
// that yields the answers as they arrive:
//
//	call, err := c.Ask(ctx, "INFO", client.Group("damon"), nil)
//	if err != nil { ... }
//	defer call.Close()
//	for call.Next() {
//		fmt.Println(call.Message().Source.ID, string(call.Message().Data))
//	}
//	err = call.Err()
//
// ctx bounds the whole call, Next included. The error is a send error
// (as Send's); errors after the send come from Err.
func (c *Client) Ask(ctx context.Context, event string, to Intent, data any) (*Call, error) {
	f, err := eventFrame("", event, to, data, true)
	if err != nil {
		return nil, err
	}
	k := &Call{c: c, id: f.ID, ctx: ctx, note: make(chan struct{}, 1)}
	k.w = &waiter{kind: waitCall, call: k}
	if _, err := c.post(ctx, f, k.w); err != nil {
		return nil, err
	}
	return k, nil
}

// Call is a request in flight (see Ask). Its methods are safe for
// concurrent use, but Next and Message are meant for one reader.
type Call struct {
	c   *Client
	s   *session // set when its waiter is registered
	w   *waiter
	id  string
	ctx context.Context

	mu       sync.Mutex
	buf      []*Message      // arrived, not yet taken by Next
	answered map[string]bool // the recipients (source ids) that answered: one answer each counts
	receipt  *Receipt
	err      error
	finished bool // no more answers are collected
	cur      *Message
	note     chan struct{}
}

// ID returns the request's id.
func (k *Call) ID() string { return k.id }

// Next waits for the next answer and reports whether there is one, for
// Message. It returns false once every answer the receipt announced has
// been taken, or when the call failed or its context ended (see Err); the
// answers that came before are returned first.
func (k *Call) Next() bool {
	for {
		k.mu.Lock()
		if len(k.buf) > 0 {
			k.cur = k.buf[0]
			k.buf[0] = nil
			k.buf = k.buf[1:]
			k.mu.Unlock()
			return true
		}
		k.cur = nil
		finished := k.finished
		k.mu.Unlock()
		if finished {
			return false
		}
		select {
		case <-k.note:
		case <-k.ctx.Done():
			k.finish(k.ctx.Err())
		case <-k.s.done:
			k.finish(fmt.Errorf("%w: %w", ErrDisconnected, k.s.cause()))
		case <-k.c.closing:
			k.finish(k.c.closedErr())
		}
	}
}

// Message returns the answer Next moved to.
func (k *Call) Message() *Message {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur
}

// Receipt returns the request's delivery receipt, and whether it has come.
// Its Expected count (Delivered + Queued) is how many answers the call
// expects.
func (k *Call) Receipt() (Receipt, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.receipt == nil {
		return Receipt{}, false
	}
	return *k.receipt, true
}

// Err returns why the call ended early: nil when every expected answer
// came (or Close ended it), the context's error, a *ServerError, or an
// error wrapping ErrDisconnected or ErrClosed.
func (k *Call) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Close stops collecting answers: later ones are dropped. It is
// idempotent.
func (k *Call) Close() { k.finish(nil) }

// add takes an answer from the reader.
func (k *Call) add(m *Message) {
	k.mu.Lock()
	if k.finished || k.answered[m.Source.ID] {
		// Late, or a second answer of one recipient: the receipt counts
		// recipients, so only the first of each counts, and is kept.
		k.mu.Unlock()
		return
	}
	if k.answered == nil {
		k.answered = map[string]bool{}
	}
	k.answered[m.Source.ID] = true
	kept := len(k.buf) < k.c.opts.MaxPending
	if kept {
		k.buf = append(k.buf, m)
	}
	complete := k.receipt != nil && len(k.answered) >= k.receipt.Expected()
	k.mu.Unlock()
	if !kept {
		k.c.reportError(fmt.Errorf("%w: answer to %s from %s", ErrSlowConsumer, k.id, m.Source.ID))
	}
	k.notify()
	if complete {
		k.finish(nil)
	}
}

// setReceipt takes the call's receipt; ok is false if it has one already.
// complete reports whether every answer it announces has come. It is
// called with the session's lock held, and takes no other.
func (k *Call) setReceipt(r Receipt) (ok, complete bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.receipt != nil || k.finished {
		return false, false
	}
	k.receipt = &r
	k.notify()
	return true, len(k.answered) >= r.Expected()
}

// finish stops collecting, with err as the reason unless the call is
// complete; the id is remembered so that late answers are dropped.
func (k *Call) finish(err error) {
	k.mu.Lock()
	if k.finished {
		k.mu.Unlock()
		return
	}
	k.finished = true
	k.err = err
	k.mu.Unlock()
	k.s.removeWaiter(k.id, k.w)
	k.c.recent.add(k.id)
	k.notify()
}

func (k *Call) notify() {
	select {
	case k.note <- struct{}{}:
	default:
	}
}

// eventFrame builds an EVENT with id ("" for a fresh one), checked as the
// server would check it.
func eventFrame(id, event string, to Intent, data any, ack bool) (outFrame, error) {
	d, err := marshalData(data)
	if err != nil {
		return outFrame{}, err
	}
	if id == "" {
		id = newID()
	}
	f := outFrame{Op: OpEvent, ID: id, Event: event, Data: d, Intent: &to, Ack: ack}
	if se := checkMessage(f.Op, f.ID, event, to); se != nil {
		return outFrame{}, se
	}
	return f, nil
}

// replyFrame builds the REPLY to m: its id, DIRECT to its sender.
func replyFrame(m *Message, data any, ack bool) (outFrame, error) {
	if m == nil || m.Source.ID == "" {
		return outFrame{}, errors.New("client: reply to a message with no source")
	}
	d, err := marshalData(data)
	if err != nil {
		return outFrame{}, err
	}
	id := m.ID
	if id == "" && ack {
		id = newID() // a receipt needs an id to be matched by
	}
	to := Direct(m.Source.ID)
	f := outFrame{Op: OpReply, ID: id, Data: d, Intent: &to, Ack: ack}
	if se := checkMessage(f.Op, f.ID, "", to); se != nil {
		return outFrame{}, se
	}
	return f, nil
}

// post writes an EVENT or REPLY on the identified connection, waiting for
// one while the client reconnects; w, if any, is registered first. It
// returns the connection it wrote on.
func (c *Client) post(ctx context.Context, f outFrame, w *waiter) (*session, error) {
	b, err := encode(f, c.opts.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	if w != nil {
		s.addWaiter(f.ID, w)
	}
	if err := s.write(b); err != nil {
		if w != nil {
			s.removeWaiter(f.ID, w)
		}
		return nil, err
	}
	return s, nil
}

// ack writes f, which asks for a receipt, and waits for the receipt or the
// error the server answers with.
func (c *Client) ack(ctx context.Context, f outFrame) (Receipt, error) {
	w := &waiter{kind: waitAck, res: make(chan *inFrame, 1)}
	s, err := c.post(ctx, f, w)
	if err != nil {
		return Receipt{}, err
	}
	defer s.removeWaiter(f.ID, w)
	var r *inFrame
	select {
	case r = <-w.res:
	case <-s.done:
		select {
		case r = <-w.res: // it came just before the end
		default:
			return Receipt{}, fmt.Errorf("%w: %w", ErrDisconnected, s.cause())
		}
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	case <-c.closing:
		return Receipt{}, c.closedErr()
	}
	if r.op() != OpReceipt {
		return Receipt{}, r.serverError()
	}
	var rec Receipt
	if err := json.Unmarshal(r.Data, &rec); err != nil {
		return Receipt{}, fmt.Errorf("client: unreadable RECEIPT: %w", err)
	}
	return rec, nil
}
