package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Delivery returns the frame that recipients of m receive: id, op and event
// as the sender sent them, data byte for byte, the intent the server routed
// on, and source stamped by the server. Anything the sender put in "source"
// is dropped.
func (m *Message) Delivery(src Source) []byte {
	// One buffer that fits the frame unless its strings need escapes: 128
	// bytes hold the member names and punctuation.
	b := make([]byte, 0, 128+max(len(m.rawID), len(m.ID))+max(len(m.rawEvent), len(m.Event))+len(m.Data)+
		len(m.Intent.Identifier)+len(src.ID)+len(src.Group))
	b = append(b, '{')
	if m.ID != "" {
		b = append(b, `"id":`...)
		b = appendRawOr(b, m.rawID, m.ID)
		b = append(b, ',')
	}
	b = append(b, `"op":`...)
	b = strconv.AppendInt(b, int64(m.Op), 10)
	if m.Event != "" {
		b = append(b, `,"event":`...)
		b = appendRawOr(b, m.rawEvent, m.Event)
	}
	if m.Data != nil {
		b = append(b, `,"data":`...)
		b = append(b, m.Data...)
	}
	b = append(b, `,"intent":`...)
	b = appendIntent(b, m.Intent)
	b = append(b, `,"source":{"id":`...)
	b = AppendString(b, src.ID)
	b = append(b, `,"group":`...)
	b = AppendString(b, src.Group)
	b = append(b, "}}"...)
	return b
}

// IdentifiedFrame returns the server's answer to a successful IDENTIFY: the
// new service id, the group and the heartbeat interval in milliseconds. id is
// the IDENTIFY's own id, or "".
func IdentifiedFrame(id, serviceID, group string, pingMillis int) []byte {
	b := frameStart(OpIdentify, id)
	b = append(b, `,"data":{"id":`...)
	b = AppendString(b, serviceID)
	b = append(b, `,"group":`...)
	b = AppendString(b, group)
	b = append(b, `,"ping":`...)
	b = strconv.AppendInt(b, int64(pingMillis), 10)
	return append(b, "}}"...)
}

// Receipt is what a delivery receipt counts: recipients the message was
// posted to, recipients the gateway no longer had (410), and posts that
// failed otherwise.
type Receipt struct {
	Delivered int `json:"delivered"`
	Gone      int `json:"gone"`
	Failed    int `json:"failed"`
	// Queued counts the recipients of a big GROUP or GLOBAL handed to
	// other invocations, whose posts are still to come; omitted when 0.
	Queued int `json:"queued,omitempty"`
}

// ReceiptFrame returns the delivery receipt of the EVENT or REPLY whose id
// was id (or ""): {"op":7,"id":...,"data":{"delivered":N,"gone":N,"failed":N}},
// with "queued":N after them when some recipients were handed on.
func ReceiptFrame(id string, r Receipt) []byte {
	b := frameStart(OpReceipt, id)
	b = append(b, `,"data":{"delivered":`...)
	b = strconv.AppendInt(b, int64(r.Delivered), 10)
	b = append(b, `,"gone":`...)
	b = strconv.AppendInt(b, int64(r.Gone), 10)
	b = append(b, `,"failed":`...)
	b = strconv.AppendInt(b, int64(r.Failed), 10)
	if r.Queued > 0 {
		b = append(b, `,"queued":`...)
		b = strconv.AppendInt(b, int64(r.Queued), 10)
	}
	return append(b, "}}"...)
}

// PongFrame returns the answer to a PING whose id was id (or "").
func PongFrame(id string) []byte {
	return append(frameStart(OpPong, id), '}')
}

// PingFrame returns a server PING.
func PingFrame() []byte { return append(frameStart(OpPing, ""), '}') }

// ErrorFrame returns the frame that reports e to the client: an ERROR (op 6)
// for a non-fatal code, a DISCONNECT (op 2) for a fatal one. The frame carries
// e.ID when it is set.
func ErrorFrame(e *Error) []byte {
	op := OpError
	if e.Code.Fatal() {
		op = OpDisconnect
	}
	b := frameStart(op, e.ID)
	b = append(b, `,"data":{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"reason":`...)
	b = AppendString(b, e.Code.Reason())
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	return append(b, "}}"...)
}

// ErrorCodeOf returns the code of a frame that ErrorFrame made, and false
// for any other frame (nil included).
func ErrorCodeOf(frame []byte) (Code, bool) {
	if !bytes.HasPrefix(frame, []byte(`{"op":`)) || len(frame) < 8 {
		return 0, false
	}
	if op := frame[6]; (op != '0'+byte(OpError) && op != '0'+byte(OpDisconnect)) || (frame[7] != ',' && frame[7] != '}') {
		return 0, false
	}
	// The id, when there is one, is a JSON string: its quotes are
	// escaped, so the first `,"data":{"code":` is the data's.
	const data = `,"data":{"code":`
	i := bytes.Index(frame, []byte(data))
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(data):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	code, err := strconv.Atoi(string(rest[:n]))
	if err != nil {
		return 0, false
	}
	return Code(code), true
}

func frameStart(op Op, id string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"op":`...)
	b = strconv.AppendInt(b, int64(op), 10)
	if id != "" {
		b = append(b, `,"id":`...)
		b = AppendString(b, id)
	}
	return b
}

func appendRawOr(b []byte, raw []byte, s string) []byte {
	if raw != nil {
		return append(b, raw...)
	}
	return AppendString(b, s)
}

func appendIntent(b []byte, in Intent) []byte {
	b = append(b, `{"target":`...)
	b = AppendString(b, string(in.Target))
	if in.Identifier != "" {
		b = append(b, `,"identifier":`...)
		b = AppendString(b, in.Identifier)
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string. Unlike encoding/json it leaves
// <, > and & alone; like it, it writes invalid UTF-8 as U+FFFD and escapes
// U+2028 and U+2029.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
