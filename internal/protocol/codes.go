// Package protocol implements wire protocol v1 of mastersocket (PROTOCOL.md):
// the JSON envelope, the op codes, intents, the validation rules and the
// error codes. It uses the standard library only, so that the routing core,
// the local gateway and the Go client can share it.
package protocol

import (
	"fmt"
	"strconv"
)

// Op is an op code of the envelope.
type Op int

// The op codes of protocol v1.
const (
	OpEvent      Op = 0 // route data to the intent's targets
	OpIdentify   Op = 1 // authenticate (client) / identity granted (server)
	OpDisconnect Op = 2 // close me (client) / you are being closed (server)
	OpPing       Op = 3 // the receiver answers PONG
	OpPong       Op = 4 // answer to PING
	OpReply      Op = 5 // routed like EVENT; answers an EVENT
	OpError      Op = 6 // a non-fatal error (server → client)
	OpReceipt    Op = 7 // the delivery receipt of an EVENT or REPLY sent with ack (server → client)
)

var opNames = [...]string{"EVENT", "IDENTIFY", "DISCONNECT", "PING", "PONG", "REPLY", "ERROR", "RECEIPT"}

// String returns the op's name, such as "EVENT", or "OP(9)" for an unknown op.
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "OP(" + strconv.Itoa(int(o)) + ")"
}

// clientOp reports whether a client may send o (ops 0–5).
func clientOp(o Op) bool { return o >= OpEvent && o <= OpReply }

// Code is a protocol error code, sent in ERROR and DISCONNECT frames.
type Code int

// The error codes of protocol v1.
const (
	CodeMessageTooBig     Code = 1009 // message over the size limit; dropped
	CodeUnknownError      Code = 4000 // an internal fault; no detail leaks
	CodeUnknownOp         Code = 4001 // op is not one of 0–5
	CodeInvalidPayload    Code = 4002 // not JSON, not an object, wrong type, missing field
	CodeUnauthorized      Code = 4003 // EVENT or REPLY before IDENTIFY
	CodeIdentifyFailed    Code = 4004 // fatal: bad token, group not allowed, bad group name
	CodeAlreadyIdentified Code = 4005 // second IDENTIFY
	CodeTargetNotFound    Code = 4006 // DIRECT to a service id that is not connected
	CodePingTimeout       Code = 4008 // fatal: silent for too long
	CodeKicked            Code = 4009 // fatal: an operator disconnected the service (socketctl kick)
)

// Reason returns the code's name as sent in the "reason" field, such as
// "INVALID_PAYLOAD"; an unknown code is reported as "UNKNOWN_ERROR".
func (c Code) Reason() string {
	switch c {
	case CodeMessageTooBig:
		return "MESSAGE_TOO_BIG"
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
		return "UNKNOWN_ERROR"
	}
}

// Fatal reports whether the code closes the connection: fatal errors are sent
// as a DISCONNECT frame and the connection is closed; the others are sent as
// an ERROR frame and the connection stays open.
func (c Code) Fatal() bool {
	return c == CodeIdentifyFailed || c == CodePingTimeout || c == CodeKicked
}

// Error is an error that reaches a client: a protocol code, a human message,
// and the id of the offending message when it had a valid one.
type Error struct {
	Code    Code
	Message string
	ID      string
}

// Error returns "REASON (code): message".
func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Code.Reason(), int(e.Code), e.Message)
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
