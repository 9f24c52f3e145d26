package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// defaultPing is the heartbeat interval when the server announces none.
const defaultPing = 30 * time.Second

// waitKind is what a waiter waits for.
type waitKind int

const (
	waitIdentify waitKind = iota // the IDENTIFY answer, or the error
	waitAck                      // a RECEIPT, or the error
	waitCall                     // a RECEIPT, answers, or the error
)

// waiter is a call waiting for frames that carry its message's id.
type waiter struct {
	kind waitKind
	res  chan *inFrame // waitIdentify, waitAck: the one frame (buffered)
	call *Call         // waitCall
}

// session is one WebSocket connection: its reader, the calls waiting on it,
// and its identity once the server has answered IDENTIFY.
type session struct {
	c    *Client
	conn *websocket.Conn
	ctx  context.Context // ends with the connection: bounds its writes
	stop context.CancelFunc
	done chan struct{} // closed when the reader has exited

	mu         sync.Mutex
	waiters    map[string][]*waiter
	identified bool
	early      []*Message // received before the IDENTIFY answer
	id, group  string
	ping       time.Duration
	reason     error        // why this client ended it, first one
	disconnect *ServerError // the server's DISCONNECT, if it sent one
	err        error        // why it ended, once done

	lastPong atomic.Int64  // the highest PING number answered
	pong     chan struct{} // a PONG came (capacity 1)
}

func newSession(c *Client, conn *websocket.Conn) *session {
	s := &session{c: c, conn: conn, done: make(chan struct{}), waiters: map[string][]*waiter{}, pong: make(chan struct{}, 1)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s
}

// read reads frames until the connection ends; it is the connection's only
// reader, and it never waits for a handler.
func (s *session) read() {
	defer s.c.loops.Done()
	var err error
	for {
		var typ websocket.MessageType
		var b []byte
		typ, b, err = s.conn.Read(context.Background())
		if err != nil {
			break
		}
		if typ == websocket.MessageText {
			s.handle(b)
		}
	}
	s.end(err)
}

// end records why the connection ended and wakes everything waiting on it.
func (s *session) end(readErr error) {
	s.conn.CloseNow()
	s.mu.Lock()
	switch {
	case s.disconnect != nil:
		s.err = s.disconnect
	case s.reason != nil:
		s.err = s.reason
	default:
		s.err = fmt.Errorf("client: connection lost: %w", readErr)
	}
	s.mu.Unlock()
	s.c.unpublish(s)
	s.stop()
	close(s.done)
}

// cause returns why the connection ended (once done is closed).
func (s *session) cause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// disconnected returns the server's DISCONNECT, or nil.
func (s *session) disconnected() *ServerError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disconnect
}

// kill ends the connection at once, for reason.
func (s *session) kill(reason error) {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = reason
	}
	s.mu.Unlock()
	s.conn.CloseNow()
}

// close ends the connection with a normal WebSocket close, as Close does.
func (s *session) close() {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = ErrClosed
	}
	s.mu.Unlock()
	if err := s.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		s.conn.CloseNow()
	}
}

// write writes one message, in frames of at most FrameBytes. A failed write
// ends the connection; the error wraps ErrDisconnected.
func (s *session) write(b []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.WriteTimeout)
	defer cancel()
	err := writeMessage(ctx, s.conn, b)
	if err == nil {
		return nil
	}
	s.kill(fmt.Errorf("client: write: %w", err))
	return fmt.Errorf("%w: %w", ErrDisconnected, err)
}

// writeMessage writes b as one text message: in one frame when it fits in
// FrameBytes, otherwise in frames of FrameBytes and a last, shorter one,
// then the empty final frame that ends a streamed message.
func writeMessage(ctx context.Context, conn *websocket.Conn, b []byte) error {
	if len(b) <= FrameBytes {
		return conn.Write(ctx, websocket.MessageText, b)
	}
	w, err := conn.Writer(ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), FrameBytes)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return w.Close()
}

// addWaiter registers w for the frames that carry id, before the message is
// written, so that no answer can come before it.
func (s *session) addWaiter(id string, w *waiter) *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.call != nil {
		w.call.s = s
	}
	s.waiters[id] = append(s.waiters[id], w)
	return w
}

// removeWaiter forgets w; it is idempotent.
func (s *session) removeWaiter(id string, w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id, w)
}

func (s *session) removeLocked(id string, w *waiter) {
	ws := s.waiters[id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = ws
	}
}

// handle processes one frame from the server.
func (s *session) handle(b []byte) {
	var f inFrame
	if err := json.Unmarshal(b, &f); err != nil {
		s.c.reportError(fmt.Errorf("client: unreadable frame from the server: %w", err))
		return
	}
	if f.Op == nil {
		if f.Message != "" {
			s.c.reportError(&GatewayError{Message: f.Message})
		}
		return
	}
	switch *f.Op {
	case OpEvent, OpReply:
		s.onMessage(f.message())
	case OpIdentify:
		s.onIdentify(&f)
	case OpDisconnect:
		se := f.serverError()
		s.mu.Lock()
		s.disconnect = se
		s.mu.Unlock()
		s.onError(&f, se, false)
	case OpError:
		s.onError(&f, f.serverError(), true)
	case OpReceipt:
		s.onReceipt(&f)
	case OpPing:
		b, _ := encode(outFrame{Op: OpPong, ID: f.ID}, MaxMessageBytesLimit)
		s.write(b)
	case OpPong:
		if n, ok := pingSeq(f.ID); ok {
			for {
				last := s.lastPong.Load()
				if n <= last || s.lastPong.CompareAndSwap(last, n) {
					break
				}
			}
			select {
			case s.pong <- struct{}{}:
			default:
			}
		}
	default:
		// An op this client does not know: ignored, as PROTOCOL.md asks.
	}
}

// onIdentify takes the server's IDENTIFY answer: the connection's service
// id, group and heartbeat interval. From then on calls use the connection.
func (s *session) onIdentify(f *inFrame) {
	s.mu.Lock()
	var w *waiter
	for _, x := range s.waiters[f.ID] {
		if x.kind == waitIdentify {
			w = x
			break
		}
	}
	if w == nil || s.identified {
		s.mu.Unlock()
		return // an answer nobody here asked for
	}
	s.removeLocked(f.ID, w)
	var d identified
	if err := json.Unmarshal(f.Data, &d); err != nil || d.ID == "" {
		s.mu.Unlock()
		w.res <- &inFrame{Op: ptr(OpError), ID: f.ID, Data: json.RawMessage(
			fmt.Sprintf(`{"code":%d,"message":"unreadable IDENTIFY answer"}`, CodeUnknownError))}
		return
	}
	s.identified = true
	s.id, s.group = d.ID, d.Group
	s.ping = time.Duration(d.Ping) * time.Millisecond
	if s.ping <= 0 {
		s.ping = defaultPing
	}
	early := s.early
	s.early = nil
	s.mu.Unlock()
	s.c.publish(s)
	if len(early) > 0 {
		s.c.log.Debug("messages held until the IDENTIFY answer", "count", len(early))
	}
	for _, m := range early {
		s.c.dispatch(m)
	}
	w.res <- f
}

func ptr[T any](v T) *T { return &v }

// onMessage hands an EVENT or REPLY to the call it answers, or to the
// handlers.
func (s *session) onMessage(m *Message) {
	s.mu.Lock()
	if !s.identified {
		// The group's traffic may come before the IDENTIFY answer: the
		// handlers get it once the service id is known.
		if len(s.early) < s.c.opts.MaxPending {
			s.early = append(s.early, m)
		} else {
			s.c.reportError(fmt.Errorf("%w: %s %q id %s before the IDENTIFY answer", ErrSlowConsumer, m.Op, m.Event, m.ID))
		}
		s.mu.Unlock()
		return
	}
	answer := m.ID != "" && (m.Op == OpReply || (m.Intent.Target == TargetDirect && m.Intent.Identifier == s.id))
	var call *Call
	if answer {
		for _, w := range s.waiters[m.ID] {
			if w.kind == waitCall {
				call = w.call
				break
			}
		}
	}
	s.mu.Unlock()
	switch {
	case call != nil:
		call.add(m)
	case answer && s.c.recent.has(m.ID):
		s.c.log.Debug("late answer dropped", "id", m.ID, "from", m.Source.ID)
	default:
		s.c.dispatch(m)
	}
}

// onError hands an ERROR (or a DISCONNECT) to the call that caused it, or
// else, for an ERROR, to OnError.
func (s *session) onError(f *inFrame, se *ServerError, report bool) {
	s.mu.Lock()
	var w *waiter
	if ws := s.waiters[f.ID]; f.ID != "" && len(ws) > 0 {
		w = ws[0]
		if w.kind != waitCall {
			s.removeLocked(f.ID, w)
		}
	}
	s.mu.Unlock()
	switch {
	case w == nil:
		if report {
			s.c.reportError(se)
		}
	case w.kind == waitCall:
		w.call.finish(se)
	default:
		w.res <- f
	}
}

// onReceipt hands a RECEIPT to the first call with its id that waits for
// one.
func (s *session) onReceipt(f *inFrame) {
	var r Receipt
	if err := json.Unmarshal(f.Data, &r); err != nil {
		s.c.reportError(fmt.Errorf("client: unreadable RECEIPT %s: %w", f.ID, err))
		return
	}
	s.mu.Lock()
	var w *waiter
	complete := false
	for _, x := range s.waiters[f.ID] {
		if x.kind == waitAck {
			w = x
			s.removeLocked(f.ID, w)
			break
		}
		if x.kind == waitCall {
			if ok, done := x.call.setReceipt(r); ok {
				w, complete = x, done
				break
			}
		}
	}
	s.mu.Unlock()
	switch {
	case w == nil:
		s.c.log.Debug("receipt for no call", "id", f.ID)
	case w.kind == waitAck:
		w.res <- f
	case complete:
		w.call.finish(nil)
	}
}

// keepAlive runs the heartbeat of s until it ends or the client stops: a
// PING every interval the server announced, and the connection declared
// dead when a PING has had no PONG for PongTimeout. It returns why s ended
// (nil when the client stopped).
func (c *Client) keepAlive(s *session) error {
	interval, timeout := s.ping, c.opts.PongTimeout
	type sent struct {
		seq int64
		at  time.Time
	}
	var (
		seq         int64
		outstanding []sent
		nextPing    = time.Now().Add(interval)
		timer       = time.NewTimer(interval)
	)
	defer timer.Stop()
	for {
		select {
		case <-s.done:
			return s.cause()
		case <-c.closing:
			s.close()
			<-s.done
			return nil
		case <-s.pong:
			last := s.lastPong.Load()
			i := 0
			for i < len(outstanding) && outstanding[i].seq <= last {
				i++
			}
			outstanding = outstanding[i:]
		case now := <-timer.C:
			if len(outstanding) > 0 && now.Sub(outstanding[0].at) >= timeout {
				s.kill(fmt.Errorf("%w (%v)", ErrNoPong, timeout))
				<-s.done
				return s.cause()
			}
			if !now.Before(nextPing) {
				seq++
				outstanding = append(outstanding, sent{seq, now})
				nextPing = now.Add(interval)
				b, _ := encode(outFrame{Op: OpPing, ID: pingID(seq)}, MaxMessageBytesLimit)
				if s.write(b) != nil {
					<-s.done
					return s.cause()
				}
			}
		}
		next := nextPing
		if len(outstanding) > 0 {
			if d := outstanding[0].at.Add(timeout); d.Before(next) {
				next = d
			}
		}
		timer.Reset(time.Until(next))
	}
}
