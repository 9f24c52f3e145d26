package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of protocol v1 on envelope fields, in Unicode characters.
const (
	MaxIDLen         = 128 // id
	MaxEventLen      = 128 // event
	MaxIdentifierLen = 128 // intent.identifier
	MaxGroupLen      = 64  // a group name
	MaxTokenLen      = 512 // IDENTIFY data.token
)

// Target is where an EVENT or REPLY goes.
type Target string

// The intent targets of protocol v1.
const (
	TargetGlobal Target = "GLOBAL" // every identified connection
	TargetGroup  Target = "GROUP"  // every identified connection of a group
	TargetDirect Target = "DIRECT" // the one connection of a service id
)

// Intent is the "intent" object of an EVENT or REPLY.
type Intent struct {
	Target Target `json:"target"`
	// Identifier is a group name for GROUP, a service id for DIRECT, and
	// empty for GLOBAL.
	Identifier string `json:"identifier,omitempty"`
}

// Source is the "source" object the server stamps on every delivered EVENT
// and REPLY: the sender's service id and group.
type Source struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Message is a parsed and validated client message.
type Message struct {
	Op Op
	// ID is the message id, or "" when the message had none.
	ID string
	// Event is the event name, or "" when absent.
	Event string
	// Data is the "data" value exactly as sent, or nil when absent.
	Data json.RawMessage
	// Intent is set for EVENT and REPLY.
	Intent Intent
	// Ack is set when an EVENT or REPLY asks for a delivery receipt
	// ("ack": true). It is not passed on to recipients.
	Ack bool

	// The raw JSON of the id and event, passed through to recipients as
	// sent. The intent is written from its validated form instead, so that
	// every recipient reads the target the server routed on.
	rawID, rawEvent json.RawMessage
}

// SetID replaces the message's id, as the server does when an EVENT has none.
func (m *Message) SetID(id string) {
	m.ID = id
	m.rawID = nil
}

// Parse decodes and validates one client message against the rules of
// PROTOCOL.md. On failure it returns an *Error with code INVALID_PAYLOAD or
// UNKNOWN_OP, whose ID is the message's id when that id was valid. The
// returned *Message is non-nil whenever the op was read, even on failure, so
// that a caller can tell a malformed IDENTIFY from other malformed messages.
// A message whose op is missing, not an integer or unknown yields no message.
// Parse does not check the size limit; callers do, before parsing. The
// message's Data refers to body's bytes: body must not change while the
// message is in use.
func Parse(body []byte) (*Message, error) {
	m := new(Message)
	read, err := ParseInto(m, body)
	if !read {
		return nil, err
	}
	return m, err
}

// ParseInto is Parse into *m, which it overwrites, so that a caller can keep
// the message on its stack. read reports whether the op was read: when it
// is false, Parse would have returned no message.
func ParseInto(m *Message, body []byte) (read bool, err error) {
	*m = Message{}
	if !utf8.Valid(body) {
		// encoding/json would let invalid bytes through, and recipients'
		// WebSocket clients must close on invalid UTF-8 in a text frame.
		return false, Errorf(CodeInvalidPayload, "message is not valid UTF-8")
	}
	if err := checkText(body); err != nil {
		return false, err
	}
	env, ok := scanEnvelope(body)
	if !ok {
		// Not a plain object (or one with escaped or repeated member
		// names): encoding/json decides what it is and says what is wrong.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			if json.Valid(body) {
				return false, Errorf(CodeInvalidPayload, "message must be a JSON object")
			}
			return false, Errorf(CodeInvalidPayload, "message is not valid JSON")
		}
		env = envelope{id: fields["id"], op: fields["op"], event: fields["event"],
			data: fields["data"], intent: fields["intent"], ack: fields["ack"]}
	}
	return m.fill(env)
}

// fill validates the members of a message and sets m from them.
func (m *Message) fill(env envelope) (read bool, err error) {
	// The intent of an EVENT or REPLY, read now so that one allocation
	// holds the id, the event and the identifier, when they are strings
	// without escapes, as in almost every message.
	var target, identifier []byte
	intentRead := false
	if raw, ok := present(env.op); ok {
		if op, _, _ := parseOp(raw); op == OpEvent || op == OpReply {
			if raw, ok := present(env.intent); ok && raw[0] == '{' {
				target, identifier, intentRead = scanIntent(raw)
			}
		}
	}
	var identText []byte
	if intentRead {
		identText = plainText(identifier)
	}
	idStr, eventStr, identStr := joinTexts(plainText(env.id), plainText(env.event), identText)

	// The id first, so that every later error can name the message; a bad
	// id is reported once the op is known.
	var idErr *Error
	if raw, ok := present(env.id); ok {
		id, err := stringField(raw, "id", MaxIDLen, idStr)
		if err != nil {
			idErr = err
		} else {
			m.ID, m.rawID = id, raw
		}
	}

	raw, ok := present(env.op)
	if !ok {
		return false, &Error{Code: CodeInvalidPayload, Message: "op is required", ID: m.ID}
	}
	op, known, isInt := parseOp(raw)
	if !isInt {
		return false, &Error{Code: CodeInvalidPayload, Message: "op must be an integer", ID: m.ID}
	}
	if !known {
		return false, &Error{Code: CodeUnknownOp, Message: fmt.Sprintf("op %.20s is not one of 0-5", raw), ID: m.ID}
	}
	m.Op = op
	if idErr != nil {
		return true, idErr
	}

	if raw, ok := present(env.event); ok {
		ev, err := stringField(raw, "event", MaxEventLen, eventStr)
		if err != nil {
			return m.fail(CodeInvalidPayload, "%s", err.Message)
		}
		m.Event, m.rawEvent = ev, raw
	}
	if env.data != nil {
		m.Data = env.data // any JSON, null included, passed through as sent
	}

	if m.Op != OpEvent && m.Op != OpReply {
		return true, nil
	}
	if m.Op == OpEvent && m.rawEvent == nil {
		return m.fail(CodeInvalidPayload, "event is required for EVENT")
	}
	raw, ok = present(env.intent)
	if !ok {
		return m.fail(CodeInvalidPayload, "intent is required for %s", m.Op)
	}
	intent, perr := parseIntent(raw, target, identifier, intentRead, identStr)
	if perr != nil {
		return m.fail(CodeInvalidPayload, "%s", perr.Message)
	}
	m.Intent = intent
	if raw, ok := present(env.ack); ok {
		switch string(raw) {
		case "true":
			m.Ack = true
		case "false":
		default:
			return m.fail(CodeInvalidPayload, "ack must be a boolean")
		}
	}
	return true, nil
}

// fail returns an *Error that names the message, once its op is read.
func (m *Message) fail(code Code, format string, args ...any) (bool, error) {
	e := Errorf(code, format, args...)
	e.ID = m.ID
	return true, e
}

// present returns a raw value that is present and not null.
func present(raw json.RawMessage) (json.RawMessage, bool) {
	if raw == nil || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// plainText returns the characters of raw when it is a JSON string without
// escapes (they are then its value), or nil.
func plainText(raw []byte) []byte {
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return nil
	}
	return raw[1 : len(raw)-1]
}

// joinTexts returns a, b and c as strings that share one allocation.
func joinTexts(a, b, c []byte) (sa, sb, sc string) {
	n := len(a) + len(b) + len(c)
	if n == 0 {
		return "", "", ""
	}
	var sbld strings.Builder
	sbld.Grow(n)
	sbld.Write(a)
	sbld.Write(b)
	sbld.Write(c)
	s := sbld.String()
	return s[:len(a)], s[len(a) : len(a)+len(b)], s[len(a)+len(b):]
}

// stringField decodes raw as a JSON string of 1 to max characters. plain,
// when not "", is raw's value, already decoded.
func stringField(raw json.RawMessage, name string, max int, plain string) (string, *Error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", Errorf(CodeInvalidPayload, "%s must be a string", name)
	}
	s := plain
	if s == "" {
		var ok bool
		if s, ok = decodeString(raw); !ok {
			return "", Errorf(CodeInvalidPayload, "%s must be a string", name)
		}
	}
	if n := utf8.RuneCountInString(s); n < 1 || n > max {
		return "", Errorf(CodeInvalidPayload, "%s must be 1 to %d characters, got %d", name, max, n)
	}
	return s, nil
}

// parseOp reads an op: isInt is false unless raw is a JSON integer written
// without fraction or exponent; known is true for the ops a client may send.
func parseOp(raw json.RawMessage) (op Op, known, isInt bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	if len(raw) > 2 { // anything longer than "-9" or "99" is not an op
		return 0, false, true
	}
	n := 0
	for _, c := range digits {
		n = n*10 + int(c-'0')
	}
	if raw[0] == '-' {
		n = -n
	}
	return Op(n), clientOp(Op(n)), true
}

// parseIntent decodes and validates an intent object. When read is true,
// target and identifier are its members (nil when absent), and identText,
// when not "", is the identifier's value already decoded; otherwise
// parseIntent decodes raw itself.
func parseIntent(raw json.RawMessage, target, identifier []byte, read bool, identText string) (Intent, *Error) {
	if raw[0] != '{' {
		return Intent{}, Errorf(CodeInvalidPayload, "intent must be an object")
	}
	if !read {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return Intent{}, Errorf(CodeInvalidPayload, "intent must be an object")
		}
		target, identifier, identText = fields["target"], fields["identifier"], ""
	}
	rawTarget, ok := present(target)
	if !ok {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target is required")
	}
	name, ok := "", false
	if p := plainText(rawTarget); p != nil {
		name, ok = targetName(p), true
	} else if rawTarget[0] == '"' {
		name, ok = decodeString(rawTarget)
	}
	if !ok {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target must be a string")
	}
	in := Intent{Target: Target(name)}
	switch in.Target {
	case TargetGlobal:
		// The identifier is ignored; a string one is passed on as sent.
		if rawID, ok := present(identifier); ok && rawID[0] == '"' {
			if identText != "" {
				in.Identifier = identText
			} else {
				in.Identifier, _ = decodeString(rawID)
			}
		}
		return in, nil
	case TargetGroup, TargetDirect:
	default:
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target must be GLOBAL, GROUP or DIRECT, got %q", name)
	}
	rawID, ok := present(identifier)
	if !ok {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.identifier is required for %s", name)
	}
	id, err := stringField(rawID, "intent.identifier", MaxIdentifierLen, identText)
	if err != nil {
		return Intent{}, err
	}
	if in.Target == TargetGroup && !ValidGroup(id) {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.identifier %q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", id, MaxGroupLen)
	}
	in.Identifier = id
	return in, nil
}

// decodeString decodes raw as a JSON string. It is a function of its own
// because its result escapes to encoding/json: it allocates only when
// called.
func decodeString(raw []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// targetName returns the characters of a target as a string, without
// allocating one for the three targets.
func targetName(p []byte) string {
	switch string(p) {
	case string(TargetGlobal):
		return string(TargetGlobal)
	case string(TargetGroup):
		return string(TargetGroup)
	case string(TargetDirect):
		return string(TargetDirect)
	}
	return string(p)
}

// Identify is the data of a client IDENTIFY.
type Identify struct {
	Token string
	Group string
}

// WhoAmI reports whether IDENTIFY data asks "who am I": it carries no
// token (data absent, null, or an object without a token member). Such an
// IDENTIFY is answered with the identity of a connection that has one
// (identified at the handshake, or by an earlier IDENTIFY). group is the
// data's group when it names one as a string, "" otherwise.
func WhoAmI(data json.RawMessage) (group string, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return "", true
	}
	if data[0] != '{' {
		return "", false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return "", false
	}
	if _, has := present(fields["token"]); has {
		return "", false
	}
	if raw, has := present(fields["group"]); has {
		group, _ = stringField(raw, "group", MaxGroupLen, "")
	}
	return group, true
}

// ParseIdentify validates the data of a client IDENTIFY. Every failure is an
// *Error with code IDENTIFY_FAILED, which is fatal.
func ParseIdentify(data json.RawMessage) (Identify, error) {
	fail := func(format string, args ...any) (Identify, error) {
		return Identify{}, Errorf(CodeIdentifyFailed, format, args...)
	}
	if len(data) == 0 || data[0] != '{' {
		return fail("IDENTIFY data must be an object with token and group")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fail("IDENTIFY data must be an object with token and group")
	}
	var id Identify
	raw, ok := present(fields["token"])
	if !ok {
		return fail("token is required")
	}
	tok, err := stringField(raw, "token", MaxTokenLen, "")
	if err != nil {
		return fail("%s", err.Message)
	}
	id.Token = tok
	raw, ok = present(fields["group"])
	if !ok {
		return fail("group is required")
	}
	group, err := stringField(raw, "group", MaxGroupLen, "")
	if err != nil {
		return fail("%s", err.Message)
	}
	if !ValidGroup(group) {
		return fail("group must be 1 to %d characters of A-Z a-z 0-9 . _ : -", MaxGroupLen)
	}
	id.Group = group
	return id, nil
}

// ValidGroup reports whether name is a valid group name: 1 to 64 characters
// of A-Z a-z 0-9 . _ : -.
func ValidGroup(name string) bool {
	if len(name) < 1 || len(name) > MaxGroupLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
