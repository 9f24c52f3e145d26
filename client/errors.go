package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Code is a protocol error code, as ERROR and DISCONNECT frames carry it.
type Code int

// The error codes of protocol v1 (docs/PROTOCOL.md, "Error codes").
const (
	CodeMessageTooBig     Code = 1009 // message over the size limit; dropped
	CodeUnknownError      Code = 4000 // an internal fault of the server
	CodeUnknownOp         Code = 4001 // op is not one the server knows
	CodeInvalidPayload    Code = 4002 // a malformed message
	CodeUnauthorized      Code = 4003 // EVENT or REPLY before IDENTIFY
	CodeIdentifyFailed    Code = 4004 // fatal: bad token, group not allowed
	CodeAlreadyIdentified Code = 4005 // IDENTIFY on an identified connection
	CodeTargetNotFound    Code = 4006 // DIRECT to a service that is not connected
	CodePingTimeout       Code = 4008 // fatal: the server heard nothing for too long
	CodeKicked            Code = 4009 // fatal: an operator disconnected the service
)

// String returns the code's reason, such as "TARGET_NOT_FOUND", or
// "CODE(n)" for a code this package does not know.
func (c Code) String() string {
	switch c {
	case CodeMessageTooBig:
		return "MESSAGE_TOO_BIG"
	case CodeUnknownError:
		return "UNKNOWN_ERROR"
	case CodeUnknownOp:
		return "UNKNOWN_OP"
	case CodeInvalidPayload:
		return "INVALID_PAYLOAD"
	case CodeUnauthorized:
		return "UNAUTHORIZED"
	case CodeIdentifyFailed:
		return "IDENTIFY_FAILED"
	case CodeAlreadyIdentified:
		return "ALREADY_IDENTIFIED"
	case CodeTargetNotFound:
		return "TARGET_NOT_FOUND"
	case CodePingTimeout:
		return "PING_TIMEOUT"
	case CodeKicked:
		return "KICKED"
	default:
		return "CODE(" + strconv.Itoa(int(c)) + ")"
	}
}

// ServerError is an error of the protocol: one the server sent (an ERROR
// frame, or the DISCONNECT before it closed the connection), or one this
// client refused a message with before sending it, exactly as the server
// would have (MESSAGE_TOO_BIG, INVALID_PAYLOAD).
type ServerError struct {
	Code    Code
	Reason  string // the code's name, such as "TARGET_NOT_FOUND"
	Message string // human text
	// ID is the id of the message the error is about, or "".
	ID string
}

// Error returns "REASON (code): message".
func (e *ServerError) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Reason, int(e.Code), e.Message)
}

// Fatal reports whether the server closes the connection for this error
// (IDENTIFY_FAILED, PING_TIMEOUT, KICKED).
func (e *ServerError) Fatal() bool {
	return e.Code == CodeIdentifyFailed || e.Code == CodePingTimeout || e.Code == CodeKicked
}

// CodeOf returns the protocol code of err if err is or wraps a
// *ServerError, and 0 otherwise.
func CodeOf(err error) Code {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// localError returns the *ServerError the server would send for a message
// this client refuses to send.
func localError(code Code, id, format string, args ...any) *ServerError {
	return &ServerError{Code: code, Reason: code.String(), Message: fmt.Sprintf(format, args...), ID: id}
}

// HandshakeError is a WebSocket handshake the server refused with an HTTP
// status. 401 (no, malformed or unknown token) and 403 (a group the token
// does not allow) are terminal: the client does not retry them.
type HandshakeError struct {
	StatusCode int
	// Body is the start of the response body (at most 1024 bytes).
	Body string
	Err  error
}

// Error returns the status and the server's body.
func (e *HandshakeError) Error() string {
	s := fmt.Sprintf("client: handshake refused: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap returns the transport's error.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Terminal reports whether retrying cannot help: 401 or 403.
func (e *HandshakeError) Terminal() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// GatewayError is a frame API Gateway itself sent instead of the function's
// answer, such as {"message": "Internal server error"} when the function
// failed or {"message": "Forbidden"} for a message no route takes. It names
// no message id, so it reaches Options.OnError and no call.
type GatewayError struct {
	Message string
}

// Error returns "client: gateway: " and the gateway's message.
func (e *GatewayError) Error() string { return "client: gateway: " + e.Message }

// ReconnectError is a failed reconnect attempt, as Options.OnError receives
// it; the client tries again unless Err is terminal.
type ReconnectError struct {
	Attempt int // 1 for the first attempt after a connection was lost
	Err     error
}

// Error returns the attempt and its error.
func (e *ReconnectError) Error() string {
	return fmt.Sprintf("client: reconnect attempt %d: %v", e.Attempt, e.Err)
}

// Unwrap returns the attempt's error.
func (e *ReconnectError) Unwrap() error { return e.Err }

var (
	// ErrClosed is returned by calls on a client that has stopped: after
	// Close, or after a terminal error (then it wraps that error too).
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected is returned by a call whose connection ended before
	// it completed (it wraps the cause too): a message may or may not have
	// been sent, and answers on their way went to the old service id. The
	// client is reconnecting; a later call uses the new connection.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrNoPong is why a connection was declared dead: a PING got no PONG
	// within Options.PongTimeout.
	ErrNoPong = errors.New("client: no PONG within the pong timeout")
	// ErrSlowConsumer reaches Options.OnError, wrapped, for each message
	// dropped because handlers (or a call's reader) fell MaxPending
	// messages behind.
	ErrSlowConsumer = errors.New("client: slow consumer: message dropped")
	// ErrReconnectLimit is wrapped by the error Wait returns when
	// Backoff.MaxAttempts reconnect attempts in a row failed.
	ErrReconnectLimit = errors.New("client: reconnect attempts exhausted")
)

// terminal reports whether err ends the client rather than a connection:
// IDENTIFY_FAILED, KICKED (an operator asked the service to go), or a
// handshake refused with 401 or 403.
func terminal(err error) bool {
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Terminal()
	}
	code := CodeOf(err)
	return code == CodeIdentifyFailed || code == CodeKicked
}
