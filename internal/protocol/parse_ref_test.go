package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// refParse is Parse as it was written before its scanner: every message
// decoded by encoding/json into maps. It is the reference the scanner must
// agree with, message for message and error for error.
func refParse(body []byte) (*Message, error) {
	if !utf8.Valid(body) {
		// encoding/json would let invalid bytes through, and recipients'
		// WebSocket clients must close on invalid UTF-8 in a text frame.
		return nil, Errorf(CodeInvalidPayload, "message is not valid UTF-8")
	}
	if err := checkText(body); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		if json.Valid(body) {
			return nil, Errorf(CodeInvalidPayload, "message must be a JSON object")
		}
		return nil, Errorf(CodeInvalidPayload, "message is not valid JSON")
	}
	m := &Message{}

	// The id first, so that every later error can name the message; a bad
	// id is reported once the op is known.
	var idErr *Error
	if raw, ok := refPresent(fields, "id"); ok {
		id, err := refStringField(raw, "id", MaxIDLen)
		if err != nil {
			idErr = err
		} else {
			m.ID, m.rawID = id, raw
		}
	}
	fail := func(code Code, format string, args ...any) (*Message, error) {
		e := Errorf(code, format, args...)
		e.ID = m.ID
		return m, e
	}

	raw, ok := refPresent(fields, "op")
	if !ok {
		return nil, &Error{Code: CodeInvalidPayload, Message: "op is required", ID: m.ID}
	}
	op, known, isInt := parseOp(raw)
	if !isInt {
		return nil, &Error{Code: CodeInvalidPayload, Message: "op must be an integer", ID: m.ID}
	}
	if !known {
		return nil, &Error{Code: CodeUnknownOp, Message: fmt.Sprintf("op %.20s is not one of 0-5", raw), ID: m.ID}
	}
	m.Op = op
	if idErr != nil {
		return m, idErr
	}

	if raw, ok := refPresent(fields, "event"); ok {
		ev, err := refStringField(raw, "event", MaxEventLen)
		if err != nil {
			return fail(CodeInvalidPayload, "%s", err.Message)
		}
		m.Event, m.rawEvent = ev, raw
	}
	if raw, ok := fields["data"]; ok {
		m.Data = raw // any JSON, null included, passed through as sent
	}

	if m.Op != OpEvent && m.Op != OpReply {
		return m, nil
	}
	if m.Op == OpEvent && m.rawEvent == nil {
		return fail(CodeInvalidPayload, "event is required for EVENT")
	}
	raw, ok = refPresent(fields, "intent")
	if !ok {
		return fail(CodeInvalidPayload, "intent is required for %s", m.Op)
	}
	intent, err := refParseIntent(raw)
	if err != nil {
		return fail(CodeInvalidPayload, "%s", err.Message)
	}
	m.Intent = intent
	if raw, ok := refPresent(fields, "ack"); ok {
		switch string(raw) {
		case "true":
			m.Ack = true
		case "false":
		default:
			return fail(CodeInvalidPayload, "ack must be a boolean")
		}
	}
	return m, nil
}

func refPresent(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := fields[name]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return nil, false
	}
	return raw, true
}

func refStringField(raw json.RawMessage, name string, max int) (string, *Error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", Errorf(CodeInvalidPayload, "%s must be a string", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", Errorf(CodeInvalidPayload, "%s must be a string", name)
	}
	if n := utf8.RuneCountInString(s); n < 1 || n > max {
		return "", Errorf(CodeInvalidPayload, "%s must be 1 to %d characters, got %d", name, max, n)
	}
	return s, nil
}

func refParseIntent(raw json.RawMessage) (Intent, *Error) {
	if raw[0] != '{' {
		return Intent{}, Errorf(CodeInvalidPayload, "intent must be an object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Intent{}, Errorf(CodeInvalidPayload, "intent must be an object")
	}
	rawTarget, ok := refPresent(fields, "target")
	if !ok {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target is required")
	}
	var target string
	if rawTarget[0] != '"' || json.Unmarshal(rawTarget, &target) != nil {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target must be a string")
	}
	in := Intent{Target: Target(target)}
	switch in.Target {
	case TargetGlobal:
		// The identifier is ignored; a string one is passed on as sent.
		if rawID, ok := refPresent(fields, "identifier"); ok && rawID[0] == '"' {
			json.Unmarshal(rawID, &in.Identifier)
		}
		return in, nil
	case TargetGroup, TargetDirect:
	default:
		return Intent{}, Errorf(CodeInvalidPayload, "intent.target must be GLOBAL, GROUP or DIRECT, got %q", target)
	}
	rawID, ok := refPresent(fields, "identifier")
	if !ok {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.identifier is required for %s", target)
	}
	id, err := refStringField(rawID, "intent.identifier", MaxIdentifierLen)
	if err != nil {
		return Intent{}, err
	}
	if in.Target == TargetGroup && !ValidGroup(id) {
		return Intent{}, Errorf(CodeInvalidPayload, "intent.identifier %q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", id, MaxGroupLen)
	}
	in.Identifier = id
	return in, nil
}

// parseSeeds are messages that exercise what the scanner reads or leaves
// to encoding/json: escapes, repeated members, odd numbers and spacing.
var parseSeeds = []string{
	`{"op":3}`, ` { "op" : 3 } `, "{\"op\":3}\n", `{"op":3,"id":"p1"}`, `{"op":03}`, `{"op":3,}`, `{"op":3}x`, `{"op":3}{}`,
	`{"op":0,"id":"3f0c7b8e","event":"order.created","data":{"orderId":42,"items":["a","b"],"note":"hello"},"intent":{"target":"DIRECT","identifier":"svc-target"}}`,
	`{"id":"m\u0031","op":0,"event":"INFO","data":{ "k" : [1, 2.50, "<&>"] },"intent":{ "identifier":"damon", "target":"DIRECT", "target":"GROUP", "x":1 },"source":{"id":"forged"},"extra":1}`,
	`{"op":0,"op":3}`, `{"op":3,"\u006fp":0}`, `{"\u006fp":3}`, `{"op":0,"event":"E","intent":{"t\u0061rget":"GLOBAL"}}`,
	`{"op":0,"event":"E","intent":{"target":"GLOB\u0041L"}}`, `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"a\u0062"}}`,
	`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":""}}`, `{"op":0,"event":"","intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":""}}`, `{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":"\n"}}`,
	`{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":["x"]}}`, `{"op":0,"event":"E","intent":{"identifier":"a","identifier":"b","target":"DIRECT"}}`,
	`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"x"},"intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","data":-0.5e+10,"intent":{"target":"GLOBAL"}}`, `{"op":0,"event":"E","data":1.,"intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","data":-,"intent":{"target":"GLOBAL"}}`, `{"op":0,"event":"E","data":1e,"intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","data":[1,],"intent":{"target":"GLOBAL"}}`, `{"op":0,"event":"E","data":{"a":1,},"intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","data":"\x","intent":{"target":"GLOBAL"}}`, `{"op":0,"event":"E","data":"\u12","intent":{"target":"GLOBAL"}}`,
	`{"op":0,"event":"E","data":tru,"intent":{"target":"GLOBAL"}}`, `{"op":0,"event":"E","data":nulll,"intent":{"target":"GLOBAL"}}`,
	"{\"op\":0,\"event\":\"E\",\"data\":\"a\tb\",\"intent\":{\"target\":\"GLOBAL\"}}",
	`{"op":0,"event":"\u00e9v","id":"\"q\"","intent":{"target":"GLOBAL"},"ack":true}`, `{"op":5,"ack":null,"intent":{"target":"DIRECT","identifier":"x"}}`,
	`{"op":5,"ack":true,"ack":false,"intent":{"target":"DIRECT","identifier":"x"}}`, `{"op":1,"data":{"token":"t","group":"g"}}`,
	`{"op":3,"data":null}`, `{"op":3,"id":null,"event":null}`, `{"op":null}`, `{"op":-0}`, `{"op":-1}`, `{"op":1.0}`, `{}`, `{"":1,"op":4}`,
	`{"op":0,"event":"E","intent":{}}`, `{"op":0,"event":"E","intent":{"target":null}}`, `{"op":0,"event":"E","intent":"x"}`,
	`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"bad group!"}}`, `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":5}}`,
	`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + strings.Repeat("é", 129) + `"}}`, `{"op":0,"id":"` + strings.Repeat("x", 129) + `"}`,
	`[]`, `null`, `{`, ``, `"x"`, "\ufeff{\"op\":3}", `{"op":3 "id":"x"}`, `{"op" 3}`, `{op:3}`, `{"op":3,"id":"a" , "event" : "b" }`,
}

func TestTheScannerAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range parseSeeds {
		checkAgainstReference(t, []byte(s))
	}
}

// FuzzParseAgreesWithEncodingJSON checks that Parse, its scanner and its
// fallback, decides every message as refParse does.
func FuzzParseAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkAgainstReference(t, body) })
}

func checkAgainstReference(t *testing.T, body []byte) {
	t.Helper()
	got, gotErr := Parse(body)
	want, wantErr := refParse(body)
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("Parse(%q): got error %#v, want %#v", body, gotErr, wantErr)
	}
	if (got == nil) != (want == nil) {
		t.Fatalf("Parse(%q): got message %+v, want %+v", body, got, want)
	}
	if got == nil {
		return
	}
	if got.Op != want.Op || got.ID != want.ID || got.Event != want.Event || got.Intent != want.Intent || got.Ack != want.Ack ||
		!bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) ||
		!bytes.Equal(got.rawID, want.rawID) || !bytes.Equal(got.rawEvent, want.rawEvent) || (got.rawEvent == nil) != (want.rawEvent == nil) {
		t.Fatalf("Parse(%q): got %+v, want %+v", body, got, want)
	}
	if gotErr == nil && (got.Op == OpEvent || got.Op == OpReply) {
		src := Source{ID: "s", Group: "g"}
		if d, w := got.Delivery(src), want.Delivery(src); !bytes.Equal(d, w) {
			t.Fatalf("Parse(%q): delivers %s, want %s", body, d, w)
		}
	}
}
