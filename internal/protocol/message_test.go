package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		op     Op
		id     string
		event  string
		data   string // raw; "" when absent
		intent Intent
	}{
		{"event group", `{"id":"m1","op":0,"event":"INFO","data":{"a":1},"intent":{"target":"GROUP","identifier":"damon"}}`,
			OpEvent, "m1", "INFO", `{"a":1}`, Intent{TargetGroup, "damon"}},
		{"event global without identifier", `{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", "", Intent{Target: TargetGlobal}},
		{"global identifier null", `{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":null}}`,
			OpEvent, "", "E", "", Intent{Target: TargetGlobal}},
		{"global identifier of any type is ignored", `{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":5}}`,
			OpEvent, "", "E", "", Intent{Target: TargetGlobal}},
		{"global string identifier is kept", `{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":"all"}}`,
			OpEvent, "", "E", "", Intent{TargetGlobal, "all"}},
		{"direct", `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"6f1c"}}`,
			OpEvent, "", "E", "", Intent{TargetDirect, "6f1c"}},
		{"reply without event", `{"op":5,"id":"q","data":[1,2],"intent":{"target":"DIRECT","identifier":"x"}}`,
			OpReply, "q", "", `[1,2]`, Intent{TargetDirect, "x"}},
		{"data null kept", `{"op":0,"event":"E","data":null,"intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", `null`, Intent{Target: TargetGlobal}},
		{"data keeps whitespace and escapes", `{"op":0,"event":"E","data":{ "x" : "<\u00e9>" , "y":1.50 },"intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", `{ "x" : "<\u00e9>" , "y":1.50 }`, Intent{Target: TargetGlobal}},
		{"ping", `{"op":3}`, OpPing, "", "", "", Intent{}},
		{"ping with id", `{"op":3,"id":"p1"}`, OpPing, "p1", "", "", Intent{}},
		{"pong", `{"op":4}`, OpPong, "", "", "", Intent{}},
		{"disconnect", `{"op":2}`, OpDisconnect, "", "", "", Intent{}},
		{"identify", `{"op":1,"data":{"token":"t","group":"g"}}`, OpIdentify, "", "", `{"token":"t","group":"g"}`, Intent{}},
		{"id null is absent", `{"op":3,"id":null}`, OpPing, "", "", "", Intent{}},
		{"unknown fields ignored", `{"op":3,"extra":{"deep":[1]},"source":"anything"}`, OpPing, "", "", "", Intent{}},
		{"id of 128 characters", `{"op":3,"id":"` + strings.Repeat("é", 128) + `"}`, OpPing, strings.Repeat("é", 128), "", "", Intent{}},
		{"negative zero is op 0", `{"op":-0,"event":"E","intent":{"target":"GLOBAL"}}`, OpEvent, "", "E", "", Intent{Target: TargetGlobal}},
		{"intent ignored on ping", `{"op":3,"intent":"nonsense"}`, OpPing, "", "", "", Intent{}},
		{"group name of every allowed character", `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"bots.eu-1:a_B9"}}`,
			OpEvent, "", "E", "", Intent{TargetGroup, "bots.eu-1:a_B9"}},
		{"data nested to the depth limit", `{"op":0,"event":"E","data":` + nested(MaxDepth-1) + `,"intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", nested(MaxDepth - 1), Intent{Target: TargetGlobal}},
		{"surrogate pair escape", `{"op":0,"event":"E","data":"\ud83d\ude00 \uD83D\uDE00","intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", `"\ud83d\ude00 \uD83D\uDE00"`, Intent{Target: TargetGlobal}},
		{"escaped backslash before u is not an escape", `{"op":0,"event":"E","data":"\\ud800","intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", `"\\ud800"`, Intent{Target: TargetGlobal}},
		{"brackets inside strings do not nest", `{"op":0,"event":"E","data":"` + strings.Repeat("[{", 100) + `","intent":{"target":"GLOBAL"}}`,
			OpEvent, "", "E", `"` + strings.Repeat("[{", 100) + `"`, Intent{Target: TargetGlobal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.Op != tt.op || m.ID != tt.id || m.Event != tt.event || m.Intent != tt.intent {
				t.Errorf("got op %v id %q event %q intent %+v, want op %v id %q event %q intent %+v",
					m.Op, m.ID, m.Event, m.Intent, tt.op, tt.id, tt.event, tt.intent)
			}
			if string(m.Data) != tt.data {
				t.Errorf("got data %s, want %s", m.Data, tt.data)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("x", 129)
	tests := []struct {
		name   string
		body   string
		code   Code
		id     string // the id the error must carry
		hasMsg bool   // whether Parse returns the message along with the error
	}{
		{"not json", `{"op":`, CodeInvalidPayload, "", false},
		{"invalid UTF-8", "{\"op\":0,\"event\":\"E\",\"data\":\"\xff\xfe\",\"intent\":{\"target\":\"GLOBAL\"}}", CodeInvalidPayload, "", false},
		{"empty", ``, CodeInvalidPayload, "", false},
		{"array", `[1,2]`, CodeInvalidPayload, "", false},
		{"string", `"hello"`, CodeInvalidPayload, "", false},
		{"null", `null`, CodeInvalidPayload, "", false},
		{"op missing", `{"id":"a"}`, CodeInvalidPayload, "a", false},
		{"op null", `{"op":null}`, CodeInvalidPayload, "", false},
		{"op string", `{"op":"0"}`, CodeInvalidPayload, "", false},
		{"op fraction", `{"op":1.5}`, CodeInvalidPayload, "", false},
		{"op float form", `{"op":1.0}`, CodeInvalidPayload, "", false},
		{"op exponent", `{"op":1e0}`, CodeInvalidPayload, "", false},
		{"op bool", `{"op":true}`, CodeInvalidPayload, "", false},
		{"op 6 from a client", `{"op":6,"id":"e"}`, CodeUnknownOp, "e", false},
		{"op 7", `{"op":7}`, CodeUnknownOp, "", false},
		{"op negative", `{"op":-1}`, CodeUnknownOp, "", false},
		{"op huge", `{"op":123456789012345678901234567890}`, CodeUnknownOp, "", false},
		{"id number", `{"op":3,"id":5}`, CodeInvalidPayload, "", true},
		{"id empty", `{"op":3,"id":""}`, CodeInvalidPayload, "", true},
		{"id too long", `{"op":3,"id":"` + long + `"}`, CodeInvalidPayload, "", true},
		{"bad id and no op", `{"id":5}`, CodeInvalidPayload, "", false},
		{"event missing", `{"op":0,"id":"a","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "a", true},
		{"event null", `{"op":0,"event":null,"intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", true},
		{"event number", `{"op":0,"event":1,"intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", true},
		{"event empty", `{"op":0,"event":"","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", true},
		{"event too long", `{"op":0,"event":"` + long + `","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", true},
		{"event wrong type on ping", `{"op":3,"event":[]}`, CodeInvalidPayload, "", true},
		{"intent missing", `{"op":0,"id":"b","event":"E"}`, CodeInvalidPayload, "b", true},
		{"intent missing on reply", `{"op":5}`, CodeInvalidPayload, "", true},
		{"intent string", `{"op":0,"event":"E","intent":"GLOBAL"}`, CodeInvalidPayload, "", true},
		{"intent array", `{"op":0,"event":"E","intent":[]}`, CodeInvalidPayload, "", true},
		{"target missing", `{"op":0,"event":"E","intent":{}}`, CodeInvalidPayload, "", true},
		{"target unknown", `{"op":0,"event":"E","intent":{"target":"EVERYONE"}}`, CodeInvalidPayload, "", true},
		{"target lower case", `{"op":0,"event":"E","intent":{"target":"global"}}`, CodeInvalidPayload, "", true},
		{"target number", `{"op":0,"event":"E","intent":{"target":1}}`, CodeInvalidPayload, "", true},
		{"group identifier missing", `{"op":0,"event":"E","intent":{"target":"GROUP"}}`, CodeInvalidPayload, "", true},
		{"direct identifier null", `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":null}}`, CodeInvalidPayload, "", true},
		{"identifier number", `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":7}}`, CodeInvalidPayload, "", true},
		{"identifier empty", `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":""}}`, CodeInvalidPayload, "", true},
		{"identifier too long", `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"` + long + `"}}`, CodeInvalidPayload, "", true},
		{"group name with a space", `{"op":0,"id":"g","event":"E","intent":{"target":"GROUP","identifier":"bad group!"}}`, CodeInvalidPayload, "g", true},
		{"group name of 65 characters", `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"` + strings.Repeat("g", 65) + `"}}`, CodeInvalidPayload, "", true},
		{"group name not ASCII", `{"op":5,"intent":{"target":"GROUP","identifier":"é"}}`, CodeInvalidPayload, "", true},
		{"nested one level too deep", `{"op":0,"event":"E","data":` + nested(MaxDepth) + `,"intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"nested deeper than encoding/json allows", `{"op":0,"event":"E","data":` + nested(20000) + `,"intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"lone high surrogate", `{"op":0,"event":"E","data":"\ud800","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"lone low surrogate", `{"op":0,"event":"E","data":"x\uDC00y","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"high surrogate before a non-surrogate", `{"op":0,"event":"E","data":"\ud800\u0041","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"two high surrogates", `{"op":0,"event":"E","data":"\ud800\ud800","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"lone surrogate in the event", `{"op":0,"event":"\ud800","intent":{"target":"GLOBAL"}}`, CodeInvalidPayload, "", false},
		{"lone surrogate in a key", `{"op":3,"\udfff":1}`, CodeInvalidPayload, "", false},
		{"high surrogate at the end", `{"op":3,"x":"\ud800`, CodeInvalidPayload, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.body))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("got error %v, want a *protocol.Error", err)
			}
			if pe.Code != tt.code {
				t.Errorf("got code %d %s, want %d", pe.Code, pe.Message, tt.code)
			}
			if pe.ID != tt.id {
				t.Errorf("got error id %q, want %q", pe.ID, tt.id)
			}
			if pe.Message == "" {
				t.Error("error has no message")
			}
			if (m != nil) != tt.hasMsg {
				t.Errorf("got message %v, want one: %v", m, tt.hasMsg)
			}
		})
	}
}

// nested returns an array nested depth levels deep: [[[…]]].
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func TestNestingErrorSaysWhy(t *testing.T) {
	_, err := Parse([]byte(`{"op":3,"data":` + nested(20000) + `}`))
	if err == nil || !strings.Contains(err.Error(), "nests deeper than 64 levels") {
		t.Fatalf("got %v, want an error about nesting deeper than 64 levels", err)
	}
	_, err = Parse([]byte(`{"op":3,"data":"\ud800"}`))
	if err == nil || !strings.Contains(err.Error(), "lone UTF-16 surrogate") {
		t.Fatalf("got %v, want an error about a lone surrogate", err)
	}
}

func TestParseIdentify(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Identify
		ok   bool
	}{
		{"valid", `{"token":"abc","group":"bots.eu-1:a_b-c"}`, Identify{"abc", "bots.eu-1:a_b-c"}, true},
		{"extra fields", `{"token":"abc","group":"g","name":"x"}`, Identify{"abc", "g"}, true},
		{"missing", ``, Identify{}, false},
		{"not object", `"abc"`, Identify{}, false},
		{"null", `null`, Identify{}, false},
		{"no token", `{"group":"g"}`, Identify{}, false},
		{"token number", `{"token":1,"group":"g"}`, Identify{}, false},
		{"token empty", `{"token":"","group":"g"}`, Identify{}, false},
		{"no group", `{"token":"t"}`, Identify{}, false},
		{"group empty", `{"token":"t","group":""}`, Identify{}, false},
		{"group space", `{"token":"t","group":"a b"}`, Identify{}, false},
		{"group slash", `{"token":"t","group":"a/b"}`, Identify{}, false},
		{"group unicode", `{"token":"t","group":"é"}`, Identify{}, false},
		{"group 65", `{"token":"t","group":"` + strings.Repeat("g", 65) + `"}`, Identify{}, false},
		{"group 64", `{"token":"t","group":"` + strings.Repeat("g", 64) + `"}`, Identify{"t", strings.Repeat("g", 64)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIdentify(json.RawMessage(tt.data))
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeIdentifyFailed {
				t.Fatalf("got %v, want IDENTIFY_FAILED", err)
			}
		})
	}
}

func TestDeliveryPassesFieldsThrough(t *testing.T) {
	body := `{"id":"m\u0031","op":0,"event":"INFO","data":{ "k" : [1, 2.50, "<&>"] },` +
		`"intent":{ "identifier":"damon", "target":"DIRECT", "target":"GROUP", "x":1 },"source":{"id":"forged","group":"forged"},"extra":1}`
	m, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	out := m.Delivery(Source{ID: "svc-1", Group: "bots"})
	want := `{"id":"m\u0031","op":0,"event":"INFO","data":{ "k" : [1, 2.50, "<&>"] },` +
		`"intent":{"target":"GROUP","identifier":"damon"},"source":{"id":"svc-1","group":"bots"}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}

func TestDeliveryAssignedID(t *testing.T) {
	m, err := Parse([]byte(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`))
	if err != nil {
		t.Fatal(err)
	}
	m.SetID("abc")
	var f Frame
	if err := json.Unmarshal(m.Delivery(Source{ID: "s", Group: "g"}), &f); err != nil {
		t.Fatal(err)
	}
	if f.ID != "abc" || f.Op != OpEvent || f.Event != "E" || f.Data != nil ||
		f.Intent == nil || f.Intent.Target != TargetGlobal || *f.Source != (Source{"s", "g"}) {
		t.Fatalf("got %+v", f)
	}
}

func TestServerFrames(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"identified", IdentifiedFrame("i1", "svc", "g", 30000), `{"op":1,"id":"i1","data":{"id":"svc","group":"g","ping":30000}}`},
		{"identified without id", IdentifiedFrame("", "svc", "g", 5), `{"op":1,"data":{"id":"svc","group":"g","ping":5}}`},
		{"pong", PongFrame("p"), `{"op":4,"id":"p"}`},
		{"pong without id", PongFrame(""), `{"op":4}`},
		{"ping", PingFrame(), `{"op":3}`},
		{"error", ErrorFrame(&Error{Code: CodeTargetNotFound, Message: `no "x"`, ID: "m"}),
			`{"op":6,"id":"m","data":{"code":4006,"reason":"TARGET_NOT_FOUND","message":"no \"x\""}}`},
		{"fatal is a disconnect", ErrorFrame(&Error{Code: CodeIdentifyFailed, Message: "bad token"}),
			`{"op":2,"data":{"code":4004,"reason":"IDENTIFY_FAILED","message":"bad token"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
			if !json.Valid(tt.got) {
				t.Errorf("%s is not valid JSON", tt.got)
			}
		})
	}
}

func TestAppendStringMatchesJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "ctl\x00\x01\x1f\n\r\t", "é中😀", "bad\xffutf8", "sep\u2028\u2029", "<&>"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q round-tripped as %q, want %q", s, back, want)
		}
	}
}

func TestCodes(t *testing.T) {
	tests := []struct {
		code   Code
		reason string
		fatal  bool
	}{
		{CodeMessageTooBig, "MESSAGE_TOO_BIG", false},
		{CodeUnknownError, "UNKNOWN_ERROR", false},
		{CodeUnknownOp, "UNKNOWN_OP", false},
		{CodeInvalidPayload, "INVALID_PAYLOAD", false},
		{CodeUnauthorized, "UNAUTHORIZED", false},
		{CodeIdentifyFailed, "IDENTIFY_FAILED", true},
		{CodeAlreadyIdentified, "ALREADY_IDENTIFIED", false},
		{CodeTargetNotFound, "TARGET_NOT_FOUND", false},
		{CodePingTimeout, "PING_TIMEOUT", true},
	}
	for _, tt := range tests {
		if tt.code.Reason() != tt.reason || tt.code.Fatal() != tt.fatal {
			t.Errorf("code %d: got %s fatal=%v, want %s fatal=%v", tt.code, tt.code.Reason(), tt.code.Fatal(), tt.reason, tt.fatal)
		}
	}
	if got := Op(9).String(); got != "OP(9)" {
		t.Errorf("got %s", got)
	}
}

// FuzzParse checks that no input panics the parser, that every failure is a
// coded INVALID_PAYLOAD or UNKNOWN_OP, and that every accepted EVENT or REPLY
// delivers valid JSON whose data is the sender's bytes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"id":"m1","op":0,"event":"INFO","data":{"a":1},"intent":{"target":"GROUP","identifier":"damon"}}`,
		`{"op":5,"data":[1,"x",null],"intent":{"target":"DIRECT","identifier":"6f1c"}}`,
		`{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":null},"data":"\u2028<>"}`,
		`{"op":0,"event":"E","intent":{"target":"GLOBAL","identifier":5}}`,
		`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"a","target":"GLOBAL"}}`,
		`{"op":1,"data":{"token":"t","group":"g"}}`,
		`{"op":3,"id":"p"}`, `{"op":2}`, `{"op":4}`, `{"op":6}`, `{"op":1.5}`, `{"op":"0"}`,
		`[]`, `null`, `{`, ``, `{"op":0,"intent":{"target":"GROUP"}}`, `{"op":-0,"event":"\ud800","intent":{"target":"GLOBAL"}}`,
		`{"op":0,"event":"E","data":"\ud83d\ude00","intent":{"target":"GROUP","identifier":"a b"}}`,
		`{"op":5,"data":[[[[{"a":[[]]}]]]],"intent":{"target":"GLOBAL"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || (pe.Code != CodeInvalidPayload && pe.Code != CodeUnknownOp) {
				t.Fatalf("Parse(%q) = %v, want INVALID_PAYLOAD or UNKNOWN_OP", body, err)
			}
			if !json.Valid(ErrorFrame(pe)) {
				t.Fatalf("error frame for %q is not JSON", body)
			}
			return
		}
		if m.Op == OpIdentify {
			if _, err := ParseIdentify(m.Data); err != nil {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != CodeIdentifyFailed {
					t.Fatalf("ParseIdentify(%s) = %v", m.Data, err)
				}
			}
		}
		if err := strictlyDecodable(body); err != nil {
			t.Fatalf("Parse accepted %q, which %v", body, err)
		}
		if m.Op != OpEvent && m.Op != OpReply {
			return
		}
		if m.Intent.Target == TargetGroup && !ValidGroup(m.Intent.Identifier) {
			t.Fatalf("Parse accepted GROUP %q, not a group name", m.Intent.Identifier)
		}
		out := m.Delivery(Source{ID: "s", Group: "g"})
		var back map[string]json.RawMessage
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("delivery of %q is not a JSON object: %s: %v", body, out, err)
		}
		if m.Data != nil && !bytes.Equal(back["data"], m.Data) {
			t.Fatalf("data changed: got %s, want %s", back["data"], m.Data)
		}
		var typed Frame // what clients decode deliveries into
		if err := json.Unmarshal(out, &typed); err != nil {
			t.Fatalf("delivery %s does not decode as a Frame: %v", out, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("delivery %s does not parse: %v", out, err)
		}
		if again.Op != m.Op || again.ID != m.ID || again.Event != m.Event || again.Intent != m.Intent {
			t.Fatalf("delivery %s parses as %+v, want %+v", out, again, m)
		}
	})
}

// strictlyDecodable checks what Parse promises recipients, independently of
// its own scanner: no nesting deeper than MaxDepth, and no string that holds
// a lone surrogate once decoded (encoding/json decodes one as U+FFFD, so a
// string that decodes to U+FFFD without "\ufffd" or the character itself
// in its text had one).
func strictlyDecodable(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil // the end, or invalid JSON that Parse refused anyway
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if depth++; depth > MaxDepth {
					return errors.New("nests too deep")
				}
			} else {
				depth--
			}
		case string:
			if strings.ContainsRune(v, '\uFFFD') && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) && !bytes.ContainsRune(body, '\uFFFD') {
				return fmt.Errorf("has a string that decodes to U+FFFD: %q", v)
			}
		}
	}
}

func TestAckAsksForAReceiptAndIsNotDelivered(t *testing.T) {
	m, err := Parse([]byte(`{"op":0,"id":"a1","ack":true,"event":"E","intent":{"target":"GLOBAL"}}`))
	if err != nil || !m.Ack {
		t.Fatalf("got %+v, %v; want a message asking for a receipt", m, err)
	}
	if d := string(m.Delivery(Source{ID: "s", Group: "g"})); strings.Contains(d, "ack") {
		t.Errorf("the delivery %s carries the ack", d)
	}
	for _, body := range []string{`{"op":0,"ack":1,"event":"E","intent":{"target":"GLOBAL"}}`, `{"op":0,"ack":"true","event":"E","intent":{"target":"GLOBAL"}}`} {
		if _, err := Parse([]byte(body)); err == nil || !strings.Contains(err.Error(), "ack must be a boolean") {
			t.Errorf("%s: got %v, want INVALID_PAYLOAD: ack must be a boolean", body, err)
		}
	}
	if m, err := Parse([]byte(`{"op":0,"ack":false,"event":"E","intent":{"target":"GLOBAL"}}`)); err != nil || m.Ack {
		t.Errorf("ack false: got %+v, %v", m, err)
	}
	if got, want := string(ReceiptFrame("a1", Receipt{Delivered: 3, Gone: 1})), `{"op":7,"id":"a1","data":{"delivered":3,"gone":1,"failed":0}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
