// Package client connects a Go service to a mastersocket bus: it
// authenticates, sends EVENTs and REPLYs to GLOBAL, GROUP and DIRECT
// targets, asks a group and collects the answers, runs handlers for what
// arrives, keeps the connection alive with PING, and reconnects when it is
// lost. It speaks wire protocol v1 (docs/PROTOCOL.md) and its extensions:
// the source stamp, ERROR frames and delivery receipts.
//
// # Connecting
//
// Dial connects, authenticates and returns once the server has identified
// the connection, so that nothing the service sends can race its identity:
//
//	c, err := client.Dial(ctx, "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", client.Options{
//		Token: os.Getenv("MASTERSOCKET_TOKEN"),
//		Group: "damon",
//	})
//	if err != nil { ... }
//	defer c.Close()
//	log.Println("connected as", c.ID())
//
// A deployment authenticates in one of two modes (template.yaml's
// ConnectAuth), and the client must use the same one:
//
//   - ConnectAuth=required, the default, and the client's default: the
//     handshake carries the token (Authorization: Bearer) and the group (the
//     group query parameter). A handshake the server refuses returns a
//     *HandshakeError with the HTTP status: 401 for a missing, unknown or
//     expired token, 403 for a group the token does not allow. The client
//     then sends IDENTIFY without a token ("who am I") to learn its service
//     id and the heartbeat interval.
//   - ConnectAuth=off, for seed-style servers: set
//     Options.IdentifyAfterConnect. The handshake carries nothing, and the
//     client sends IDENTIFY with the token and the group, then waits for the
//     answer. A bad token returns the *ServerError IDENTIFY_FAILED.
//
// Dial's context bounds the first connection only, the handshake and the
// IDENTIFY answer; the client lives on until Close. Dial does not retry: it
// returns the first error (a bad URL or option, a refused handshake,
// IDENTIFY_FAILED, a network error). When a Dial in one mode meets a server
// in the other, its error says so.
//
// # Identity
//
// The server gives every connection a fresh service id: ID returns the
// current one, and it changes on every reconnect. OnConnect receives each
// new one (ConnectEvent.Reconnect tells the first connection from later
// ones). A DIRECT sent to an old id gets TARGET_NOT_FOUND, so a service that
// others reach by id should announce its new id from OnConnect. The group
// stays the same (Group).
//
// # Sending
//
// Send sends an EVENT to Global(), Group(name) or Direct(serviceID), with
// data encoded by encoding/json (a json.RawMessage is sent as it is). Its nil
// error means written, not delivered: delivery is at most once, and an
// ERROR the server answers later (TARGET_NOT_FOUND for a DIRECT to a service
// that has gone) reaches Options.OnError with the message's id. SendAck
// asks for a delivery receipt and waits for it: a Receipt counts the
// recipients the message was delivered to, those that were gone and the
// posts that failed (and, for a GROUP or GLOBAL too big for one server
// invocation, the recipients queued for others, whose outcome it does not
// report), so a sender learns how many services a GROUP message reached; a DIRECT to a service that is not connected returns the
// *ServerError TARGET_NOT_FOUND instead. Without an ack nothing changes on
// the wire.
//
// Reply answers a received message with a REPLY that keeps its id and goes
// DIRECT to its sender (Message.Source.ID), without an event name;
// ReplyAck waits for the receipt, and returns TARGET_NOT_FOUND when the
// asker has gone. SendID sends an EVENT with a given id: how a service
// answers as the INFO exchange of the Master Socket Server README does,
// with an EVENT sent DIRECT to the asker that keeps the request's id.
//
// While the client reconnects, every call waits for the new connection,
// bounded by its context. The context bounds that wait and the wait for
// answers, not a write in progress: a message abandoned halfway would break
// the connection, so writes are bounded by Options.WriteTimeout instead.
//
// # Requests and receipts
//
// Request sends an EVENT with a fresh id and "ack": true, and collects the
// answers that carry that id: REPLYs, and EVENTs sent DIRECT to this
// service. The receipt says how many recipients the request reached, so
// Request returns once that many answers have come, with a nil error; a
// GROUP with no members returns at once with none. A recipient may never
// answer, so give the context a deadline: when it ends, Request returns the
// answers so far and ctx.Err(). A DIRECT to a service that is not connected
// returns TARGET_NOT_FOUND. Ask is the streaming form: it returns a Call
// whose Next yields each answer as it arrives, and whose Receipt says how
// many to expect. Answers are buffered per call (up to Options.MaxPending);
// the first answer of each recipient counts and is kept, a second one from the
// same recipient is dropped (the receipt counts recipients, so one recipient
// answering twice cannot end the call before another has answered);
// answers that come after their call ended are dropped, not handed to the
// handlers. A call in flight when its connection ends fails at once with an
// error wrapping ErrDisconnected: its answers would go to the old service
// id. If the server fails to route a request (API Gateway answers "Internal
// server error", a *GatewayError, with no id), no receipt comes and the
// context ends the call.
//
// # Handlers and their concurrency
//
// Options.Handlers handle received EVENTs and REPLYs by event name, and
// Options.Default handles the rest (a REPLY without an event among them);
// a message neither takes is dropped. Handlers are given in Options, before
// Dial, because messages may arrive before Dial returns (a group's traffic
// can precede the IDENTIFY answer; the client holds it until the service id
// is known). Each handler gets the client, so it can reply, and a context
// that ends when the client stops.
//
// One goroutine reads the connection and never waits for a handler: it
// queues messages for HandlerConcurrency handler goroutines (default 1, so
// handlers run one at a time, in arrival order; with more, in no order). The
// server promises no order between one sender's messages anyway. A handler
// may call Send, SendAck, Reply, Request, Ask and Close; answers to a
// Request reach it without the handler queue, so a Request made from a
// handler does not deadlock, though with one handler goroutine the other
// messages wait for it. A handler must not call Wait. When handlers fall
// MaxPending (4096) messages behind, further messages are dropped and
// OnError receives ErrSlowConsumer: the reader never stops, because a
// client that leaves frames unread is dropped by the gateway and misses its
// PONGs. A handler that panics crashes the program, as a goroutine's panic
// does.
//
// # Errors
//
// Errors of the protocol are *ServerError{Code, Reason, Message, ID}: those
// the server sends, and those the client refuses a message with before
// sending it, exactly as the server would (MESSAGE_TOO_BIG,
// INVALID_PAYLOAD). CodeOf returns the code of any error that wraps one. An
// ERROR frame goes to the call that caused it, matched by the message id
// (SendAck, ReplyAck, Request, Ask, Dial's IDENTIFY); one that no call waits
// for goes to Options.OnError. A DISCONNECT (IDENTIFY_FAILED, PING_TIMEOUT,
// KICKED) ends the connection: DisconnectEvent.Err carries it. WebSocket close codes
// stay apart from protocol codes: a connection the gateway closes (1001 at
// API Gateway's 10 minute idle timeout or 2 hour lifetime, 1009 for a frame
// over 32 KB) ends with an error wrapping the transport's, which
// websocket.CloseStatus (github.com/coder/websocket) reads. ErrDisconnected
// (the connection ended; the client lives on) is kept apart from ErrClosed
// (the client stopped).
//
// # Reconnects
//
// When an identified connection ends, OnDisconnect is called and the client
// reconnects with exponential backoff and jitter (Options.Backoff: from
// 200ms, doubling, at most 20s, each delay drawn from its upper half, no
// limit on attempts; the count starts over once a connection is identified),
// asks TokenFunc for the token if set, authenticates again in its mode, and
// calls OnConnect with the new service id. Failed attempts reach OnError as
// *ReconnectError. It stops for good, and Wait returns why, on
// IDENTIFY_FAILED (from the server's DISCONNECT or a reconnect's IDENTIFY),
// on KICKED (an operator's socketctl kick: the service was asked to go),
// on a reconnect handshake refused with 401 or 403 (there is no retry loop
// against a bad token), after Backoff.MaxAttempts failed attempts in a row
// (ErrReconnectLimit), and on Close. PING_TIMEOUT, a gateway restart, a
// connection dropped by the server and 500s are retried. A message sent
// before the connection was lost is not resent: delivery is at most once.
//
// # Heartbeat
//
// The IDENTIFY answer announces the heartbeat interval (PING_INTERVAL_MS,
// 30 s by default). The client sends a PING at that interval, whatever else
// it sends, and declares the connection dead when a PING has had no PONG
// for Options.PongTimeout (10 s): the connection is closed, the
// DisconnectEvent's error wraps ErrNoPong, and the client reconnects. It
// answers the server's PINGs with a PONG of the same id. WebSocket ping
// frames never reach the server's functions, so they play no part.
//
// # Sizes
//
// A message, the whole envelope as written, over Options.MaxMessageBytes
// (the server's MaxMessageBytes: 32768 by default, at most 131072) is
// refused with MESSAGE_TOO_BIG before it is sent. API Gateway takes frames
// of at most 32 KB, so a longer message is written as frames of FrameBytes
// (32768) and a last, shorter one, followed by the empty final frame that
// ends a streamed message; the local gateway accepts this, and reassembles
// the message. The server delivers a message stamped with its source, and
// refuses (MESSAGE_TOO_BIG, with the message's id) one that no longer fits
// 128 KiB then. The client reads messages of up to 256 KiB.
//
// # Close and Wait
//
// Close closes the connection with a normal WebSocket close (the server's
// $disconnect forgets the service; no DISCONNECT frame is sent), ends calls
// in flight with ErrClosed, drops the messages waiting for a handler,
// cancels the handlers' context, and returns once the client's own
// goroutines have exited. It does not wait for handlers still running, so it
// may be called from a handler or a callback; it is idempotent. OnDisconnect
// and then OnClose are the last callbacks. Wait waits until the client has
// stopped and every goroutine it started, handlers and callbacks included,
// has returned; it returns nil after Close, or what stopped the client.
//
// The client's goroutines are: one supervisor per client (heartbeat and
// reconnects), one reader per connection, HandlerConcurrency handler
// goroutines and one callback goroutine. None is left once Close and Wait
// have returned; the package's tests check it.
//
// # State and callbacks
//
// State reports connecting (in Dial), connected, reconnecting or closed.
// OnConnect, OnDisconnect, OnError and OnClose run on one goroutine, in the
// order of the events, never while the client holds a lock. A slow callback
// delays only later callbacks; callbacks may call the client's methods
// except Wait.
//
// # Decisions
//
// The choices above, in short:
//
//   - Dial: returns once identified; ctx bounds the first connection; no
//     retry; terminal: IDENTIFY_FAILED, 401/403, a bad URL or option.
//   - Identity: a new service id per connection, through ID and OnConnect;
//     DIRECTs to an old id get TARGET_NOT_FOUND.
//   - Handlers: one bounded queue, HandlerConcurrency goroutines (1); they
//     may call Send, Request, Reply, Close; the reader never blocks: past
//     MaxPending, drop and report ErrSlowConsumer.
//   - Ordering: arrival order with one handler goroutine; no promise beyond.
//   - Registration: in Options, before Dial; no handler, dropped.
//   - Sends while reconnecting: wait for the new connection, bounded by ctx;
//     nil means written, not delivered.
//   - Request: ends at the receipt's count, at ctx's end (answers so far and
//     ctx.Err()), on an ERROR, on a lost connection (ErrDisconnected, at
//     once) or Close (ErrClosed); buffered per call; late answers dropped.
//   - Reply: DIRECT to source.id, same id; TARGET_NOT_FOUND to OnError, or
//     returned by ReplyAck.
//   - Errors: *ServerError and CodeOf; returned to the call matched by id,
//     else OnError; close codes stay in the transport error.
//   - Reconnect: backoff 200ms to 20s, factor 2, jitter 0.5, unlimited,
//     reset once identified; terminal on IDENTIFY_FAILED, KICKED, 401/403, Close,
//     MaxAttempts; TokenFunc refreshes the token before each connection.
//   - Heartbeat: PING every announced interval; dead after PongTimeout (10s)
//     without PONG; server PINGs answered.
//   - Size: MaxMessageBytes checked before sending; frames of at most 32768
//     bytes; read limit 256 KiB.
//   - Close: calls end with ErrClosed, queued messages dropped, handlers not
//     waited for (Wait does); a WebSocket close, no DISCONNECT frame;
//     idempotent, safe from handlers; OnDisconnect and OnClose come last.
//   - Goroutines: supervisor, reader, handler workers, callback runner; all
//     gone after Close and Wait (TestMain checks).
//   - State and callbacks: four states; callbacks on one goroutine, in
//     order, outside locks.
//
// The client declares its own wire types instead of importing the server's
// internal packages: it is the public face of the protocol, and its tests
// check its codes, ops and refusals against the server's.
package client
