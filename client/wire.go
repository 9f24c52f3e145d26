package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of protocol v1 on envelope fields, in characters.
const (
	maxIDLen         = 128
	maxEventLen      = 128
	maxIdentifierLen = 128
	maxGroupLen      = 64
)

// inFrame is any frame the server sends, decoded without validation.
type inFrame struct {
	Op     *Op             `json:"op"`
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Intent *Intent         `json:"intent"`
	Source *Source         `json:"source"`
	// Message is set on API Gateway's own frames, which have no op.
	Message string `json:"message"`
}

// outFrame is a frame this client sends.
type outFrame struct {
	Op     Op              `json:"op"`
	ID     string          `json:"id,omitempty"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Intent *Intent         `json:"intent,omitempty"`
	Ack    bool            `json:"ack,omitempty"`
}

// errorData is the data of ERROR and DISCONNECT.
type errorData struct {
	Code    Code   `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// identified is the data of the server's IDENTIFY answer.
type identified struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	Ping  int    `json:"ping"` // milliseconds
}

// serverError decodes the *ServerError of an ERROR or DISCONNECT frame.
func (f *inFrame) serverError() *ServerError {
	var d errorData
	if err := json.Unmarshal(f.Data, &d); err != nil || d.Code == 0 {
		d = errorData{Code: CodeUnknownError, Message: fmt.Sprintf("unreadable %s frame: %.200s", f.op(), f.Data)}
	}
	if d.Reason == "" {
		d.Reason = d.Code.String()
	}
	return &ServerError{Code: d.Code, Reason: d.Reason, Message: d.Message, ID: f.ID}
}

func (f *inFrame) op() Op {
	if f.Op == nil {
		return -1
	}
	return *f.Op
}

// message returns the received EVENT or REPLY of f.
func (f *inFrame) message() *Message {
	m := &Message{Op: *f.Op, ID: f.ID, Event: f.Event, Data: f.Data}
	if f.Intent != nil {
		m.Intent = *f.Intent
	}
	if f.Source != nil {
		m.Source = *f.Source
	}
	return m
}

// newID returns a fresh message id.
func newID() string { return uuid.NewString() }

// marshalData encodes a message's data: nil is no data; a json.RawMessage
// is sent as it is, once checked.
func marshalData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("client: data is not valid JSON")
		}
		return d, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("client: encode data: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// checkMessage returns the INVALID_PAYLOAD *ServerError the server would
// answer a message with, or nil.
func checkMessage(op Op, id, event string, to Intent) *ServerError {
	fail := func(format string, args ...any) *ServerError {
		return localError(CodeInvalidPayload, id, format, args...)
	}
	switch n := utf8.RuneCountInString(event); {
	case op == OpEvent && n == 0:
		return fail("event is required for EVENT")
	case n > maxEventLen:
		return fail("event must be 1 to %d characters, got %d", maxEventLen, n)
	}
	switch to.Target {
	case TargetGlobal:
	case TargetGroup:
		if !validGroup(to.Identifier) {
			return fail("intent.identifier %q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", to.Identifier, maxGroupLen)
		}
	case TargetDirect:
		if n := utf8.RuneCountInString(to.Identifier); n < 1 || n > maxIdentifierLen {
			return fail("intent.identifier must be 1 to %d characters, got %d", maxIdentifierLen, n)
		}
	default:
		return fail("intent.target must be GLOBAL, GROUP or DIRECT, got %q", to.Target)
	}
	return nil
}

// encode returns the frame, or the *ServerError MESSAGE_TOO_BIG the server
// would send when it is over max bytes.
func encode(f outFrame, max int) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // data goes out as marshalData made it
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("client: encode: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > max {
		return nil, localError(CodeMessageTooBig, f.ID, "message of %d bytes is over the limit of %d bytes", len(b), max)
	}
	return b, nil
}

// validGroup reports whether name is a group name: 1 to 64 characters of
// A-Z a-z 0-9 . _ : -.
func validGroup(name string) bool {
	if len(name) < 1 || len(name) > maxGroupLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// pingID and pingSeq name this client's PINGs: "ping-<n>".
func pingID(n int64) string { return "ping-" + strconv.FormatInt(n, 10) }

func pingSeq(id string) (int64, bool) {
	s, ok := strings.CutPrefix(id, "ping-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
