package localrun_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/token"
)

// badInput is one row of the bad-input table of docs/SECURITY.md: what a
// client (or a caller of @connections) sends, and the exact answer.
type badInput struct {
	id, input, answer string
	try               func(t *testing.T, s *localrun.Server) string
}

// rawClient is a frame-level WebSocket client: it can send what a library
// would refuse to.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  io.Reader
}

func dialRaw(t *testing.T, s *localrun.Server) *rawClient {
	t.Helper()
	nc, br, _, err := ws.Dialer{Timeout: 5 * time.Second}.Dial(context.Background(), s.URL())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	return &rawClient{t: t, nc: nc, r: r}
}

func (c *rawClient) frame(fin bool, op ws.OpCode, p []byte, masked bool) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), p...))
	if masked {
		f = ws.MaskFrame(f)
	}
	if err := ws.WriteFrame(c.nc, f); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) text(s string) { c.t.Helper(); c.frame(true, ws.OpText, []byte(s), true) }

// answer reads what comes back and describes it: "ERROR 4002
// INVALID_PAYLOAD", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000",
// "close 1009", "PONG", "nothing".
func (c *rawClient) answer(wait time.Duration) string {
	c.t.Helper()
	var parts []string
	var msg []byte
	for {
		c.nc.SetReadDeadline(time.Now().Add(wait))
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			if len(parts) == 0 {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return "nothing"
				}
				return "dropped without a close frame"
			}
			return strings.Join(parts, ", then ")
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			parts = append(parts, fmt.Sprintf("close %d", code))
			return strings.Join(parts, ", then ")
		case ws.OpText, ws.OpContinuation:
			msg = append(msg, f.Payload...)
			if !f.Header.Fin {
				continue
			}
			parts = append(parts, describeFrame(msg))
			msg = nil
			if !strings.HasPrefix(parts[len(parts)-1], "DISCONNECT") {
				return strings.Join(parts, ", then ")
			}
		}
	}
}

func describeFrame(b []byte) string {
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return "not JSON: " + string(b)
	}
	var d protocol.ErrorData
	json.Unmarshal(f.Data, &d)
	switch f.Op {
	case protocol.OpError:
		return fmt.Sprintf("ERROR %d %s", d.Code, d.Reason)
	case protocol.OpDisconnect:
		return fmt.Sprintf("DISCONNECT %d %s", d.Code, d.Reason)
	default:
		return f.Op.String()
	}
}

// identified returns a raw client that has identified in group g.
func identified(t *testing.T, s *localrun.Server, g string) (*rawClient, string) {
	t.Helper()
	c := dialRaw(t, s)
	c.text(`{"op":1,"data":{"token":"` + e2eToken + `","group":"` + g + `"}}`)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(c.r)
	var fr protocol.Frame
	var d protocol.IdentifiedData
	if err != nil || json.Unmarshal(f.Payload, &fr) != nil || json.Unmarshal(fr.Data, &d) != nil || d.ID == "" {
		t.Fatalf("IDENTIFY: %q, %v", f.Payload, err)
	}
	return c, d.ID
}

// send returns a try that sends one text message from an identified
// client and describes the answer.
func send(body string) func(*testing.T, *localrun.Server) string {
	return func(t *testing.T, s *localrun.Server) string {
		c, _ := identified(t, s, "bad")
		c.text(body)
		return c.answer(2 * time.Second)
	}
}

// sendAnonymous is send from a client that has not identified.
func sendAnonymous(body string) func(*testing.T, *localrun.Server) string {
	return func(t *testing.T, s *localrun.Server) string {
		c := dialRaw(t, s)
		c.text(body)
		return c.answer(2 * time.Second)
	}
}

// frames sends raw frames from an identified client.
func frames(send func(c *rawClient)) func(*testing.T, *localrun.Server) string {
	return func(t *testing.T, s *localrun.Server) string {
		c, _ := identified(t, s, "bad")
		send(c)
		return c.answer(2 * time.Second)
	}
}

// httpRequest sends raw bytes to the gateway's port and returns the status
// line's code and the X-Amzn-ErrorType of the answer.
func httpRequest(raw string) func(*testing.T, *localrun.Server) string {
	return func(t *testing.T, s *localrun.Server) string {
		nc, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, strings.ReplaceAll(raw, "HOST", s.Addr()))
		nc.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			if err == io.EOF || strings.Contains(err.Error(), "EOF") {
				return "connection closed"
			}
			return "no answer: " + err.Error()
		}
		resp.Body.Close()
		out := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if typ := resp.Header.Get("X-Amzn-ErrorType"); typ != "" {
			out += " " + typ
		}
		return out
	}
}

const bigOK = 20 << 10 // a frame under the 32 KB frame limit

var badInputs = []badInput{
	// The WebSocket transport: the gateway answers, no function runs.
	{"T1", "a binary frame", "close 1003", frames(func(c *rawClient) { c.frame(true, ws.OpBinary, []byte{1, 2}, true) })},
	{"T2", "a frame over 32 KB", "close 1009", frames(func(c *rawClient) { c.frame(true, ws.OpText, make([]byte, 33<<10), true) })},
	{"T3", "a message over 128 KB in frames of 20 KB", "close 1009", frames(func(c *rawClient) {
		c.frame(false, ws.OpText, make([]byte, bigOK), true)
		for range 6 {
			c.frame(false, ws.OpContinuation, make([]byte, bigOK), true)
		}
		c.frame(true, ws.OpContinuation, make([]byte, bigOK), true)
	})},
	{"T4", "invalid UTF-8 in a text message", "close 1007", frames(func(c *rawClient) { c.frame(true, ws.OpText, []byte{'"', 0xff, 0xfe, '"'}, true) })},
	{"T5", "an unmasked frame", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpText, []byte(`{"op":3}`), false) })},
	{"T6", "a close frame with a 1-byte body", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpClose, []byte{3}, true) })},
	{"T7", "a close frame with a code a client may not send (1005)", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpClose, []byte{0x03, 0xed}, true) })},
	{"T8", "a continuation frame with no message to continue", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpContinuation, []byte("x"), true) })},
	{"T9", "a ping frame over 125 bytes", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpPing, make([]byte, 126), true) })},
	{"T10", "a frame with an unknown opcode (0x3)", "close 1002", frames(func(c *rawClient) { c.frame(true, ws.OpCode(3), []byte("x"), true) })},
	{"T11", "a ping frame", "a pong frame with the same payload", func(t *testing.T, s *localrun.Server) string {
		c := dialRaw(t, s)
		c.frame(true, ws.OpPing, []byte("hi"), true)
		c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		f, err := ws.ReadFrame(c.r)
		if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
			return fmt.Sprintf("frame %v %q, %v", f.Header.OpCode, f.Payload, err)
		}
		return "a pong frame with the same payload"
	}},
	{"T12", "a handshake on another path than the stage", "HTTP 403", httpRequest("GET /other HTTP/1.1\r\nHost: HOST\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")},
	{"T13", "a request head over 16 KB", "HTTP 431", httpRequest("GET /dev HTTP/1.1\r\nHost: HOST\r\nX-Pad: " + strings.Repeat("a", 17<<10) + "\r\n\r\n")},
	{"T14", "a request that is not HTTP", "HTTP 400", httpRequest("HELLO\r\n\r\n")},
	// The @connections management API (the functions' own calls).
	{"M1", "PostToConnection over 128 KB", "HTTP 413 PayloadTooLargeException", httpRequest("POST /dev/@connections/x HTTP/1.1\r\nHost: HOST\r\nContent-Length: 131073\r\n\r\n" + strings.Repeat("a", 131073))},
	{"M2", "PostToConnection to an unknown connection", "HTTP 410 GoneException", httpRequest("POST /dev/@connections/R1kmxc2VNjMCFIA%3D HTTP/1.1\r\nHost: HOST\r\nContent-Length: 2\r\n\r\nhi")},
	{"M3", "a request whose body stops short", "HTTP 400 BadRequestException", httpRequest("POST /dev/@connections/x HTTP/1.1\r\nHost: HOST\r\nContent-Length: 100\r\n\r\n12")},
	{"M4", "a call on another stage", "HTTP 403 ForbiddenException", httpRequest("GET /prod/@connections/x HTTP/1.1\r\nHost: HOST\r\n\r\n")},
	// The protocol: the message function answers with a frame.
	{"P1", "text that is not JSON", "ERROR 4002 INVALID_PAYLOAD", send(`not json`)},
	{"P2", "JSON that is not an object", "ERROR 4002 INVALID_PAYLOAD", send(`[1,2]`)},
	{"P3", "a message over MAX_MESSAGE_BYTES (32 KB by default) in frames under 32 KB", "ERROR 1009 MESSAGE_TOO_BIG", frames(func(c *rawClient) {
		c.frame(false, ws.OpText, []byte(`{"op":3,"pad":"`+strings.Repeat("x", bigOK)), true)
		c.frame(true, ws.OpContinuation, []byte(strings.Repeat("x", bigOK)+`"}`), true)
	})},
	{"P4", "an op a client may not send (6, ERROR)", "ERROR 4001 UNKNOWN_OP", send(`{"op":6}`)},
	{"P5", "an op that is not an integer", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":"0"}`)},
	{"P6", "an id that is not a string of 1 to 128 characters", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":3,"id":"` + strings.Repeat("i", 129) + `"}`)},
	{"P7", "an EVENT without event", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":0,"intent":{"target":"GLOBAL"}}`)},
	{"P8", "an intent with an unknown target", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":0,"event":"E","intent":{"target":"EVERYONE"}}`)},
	{"P9", "a GROUP to a name that is not a group name", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"bad group!"}}`)},
	{"P10", "JSON nested deeper than 64 levels", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":3,"data":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`)},
	{"P11", "a lone UTF-16 surrogate escape", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":0,"event":"E","data":"\ud800","intent":{"target":"GLOBAL"}}`)},
	{"P12", "an EVENT or REPLY before IDENTIFY", "ERROR 4003 UNAUTHORIZED", sendAnonymous(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`)},
	{"P13", "IDENTIFY with a token that is not stored", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000", sendAnonymous(`{"op":1,"data":{"token":"mst_guessed","group":"g"}}`)},
	{"P14", "IDENTIFY for a group the token does not allow", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000", sendAnonymous(`{"op":1,"data":{"token":"` + scopedToken + `","group":"admins"}}`)},
	{"P15", "IDENTIFY with a bad group name", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000", sendAnonymous(`{"op":1,"data":{"token":"` + e2eToken + `","group":"a/b"}}`)},
	{"P16", "IDENTIFY after IDENTIFY_TIMEOUT_SECONDS", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000", func(t *testing.T, s *localrun.Server) string {
		c := dialRaw(t, s)
		time.Sleep(1100 * time.Millisecond) // the run's deadline is 1 s
		c.text(`{"op":1,"data":{"token":"` + e2eToken + `","group":"g"}}`)
		return c.answer(2 * time.Second)
	}},
	{"P17", "an EVENT from an anonymous connection after IDENTIFY_TIMEOUT_SECONDS", "DISCONNECT 4004 IDENTIFY_FAILED, then close 1000", func(t *testing.T, s *localrun.Server) string {
		c := dialRaw(t, s)
		time.Sleep(1100 * time.Millisecond)
		c.text(`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`)
		return c.answer(2 * time.Second)
	}},
	{"P18", "a second IDENTIFY", "ERROR 4005 ALREADY_IDENTIFIED", send(`{"op":1,"data":{"token":"` + e2eToken + `","group":"other"}}`)},
	{"P19", "a DIRECT to a service that is not connected", "ERROR 4006 TARGET_NOT_FOUND", send(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"00000000-0000-4000-8000-000000000000"}}`)},
	{"P21", "an ack that is not a boolean", "ERROR 4002 INVALID_PAYLOAD", send(`{"op":0,"ack":"yes","event":"E","intent":{"target":"GLOBAL"}}`)},
	{"P20", "an EVENT with a forged source", "delivered with the sender's true source", func(t *testing.T, s *localrun.Server) string {
		from, fromID := identified(t, s, "forge")
		to, _ := identified(t, s, "forge")
		from.text(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"forge"},"source":{"id":"someone-else","group":"admins"}}`)
		to.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := ws.ReadFrame(to.r)
		var fr protocol.Frame
		if err != nil || json.Unmarshal(f.Payload, &fr) != nil || fr.Source == nil {
			return "nothing delivered"
		}
		if fr.Source.ID == fromID && fr.Source.Group == "forge" {
			return "delivered with the sender's true source"
		}
		return fmt.Sprintf("delivered with source %+v", fr.Source)
	}},
}

const scopedToken = "mst_bad-input-scoped"

// handshake is a WebSocket upgrade request to the stage with extra header
// lines and a query string.
func handshake(query string, headers ...string) func(*testing.T, *localrun.Server) string {
	raw := "GET /dev" + query + " HTTP/1.1\r\nHost: HOST\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range headers {
		raw += h + "\r\n"
	}
	return httpRequest(raw + "\r\n")
}

const expiredToken = "mst_bad-input-expired"

// handshakeInputs are tried on a gateway in the template's default mode,
// ConnectAuth=required: the $connect authorizer answers, and no connection
// is made.
var handshakeInputs = []badInput{
	{"H1", "a handshake without a token", "HTTP 401", handshake("?group=g")},
	{"H2", "a handshake whose Authorization is not a bearer token", "HTTP 401", handshake("?group=g", "Authorization: Basic dXNlcjpwdw==")},
	{"H3", "a handshake with a token that is not stored", "HTTP 401", handshake("?group=g", "Authorization: Bearer mst_guessed")},
	{"H4", "a handshake with an expired token", "HTTP 401", handshake("?group=g", "Authorization: Bearer "+expiredToken)},
	{"H5", "a handshake with two different tokens (header and subprotocol)", "HTTP 401", handshake("?group=g", "Authorization: Bearer "+e2eToken, "Sec-WebSocket-Protocol: mastersocket, bearer."+scopedToken)},
	{"H6", "a handshake without a group", "HTTP 403", handshake("", "Authorization: Bearer "+e2eToken)},
	{"H7", "a handshake with a group that is not a group name", "HTTP 403", handshake("?group=a%2Fb", "Authorization: Bearer "+e2eToken)},
	{"H8", "a handshake with two different groups", "HTTP 403", handshake("?group=a", "Authorization: Bearer "+e2eToken, "X-Mastersocket-Group: b")},
	{"H9", "a handshake for a group the token does not allow", "HTTP 403", handshake("?group=admins", "Authorization: Bearer "+scopedToken)},
}

// TestBadInput sends every kind of bad input of docs/SECURITY.md's table
// to a local gateway over real sockets and checks the exact answer.
func TestBadInput(t *testing.T) {
	s := startLocal(t, localrun.Options{
		Parameters: map[string]string{"IdentifyTimeoutSeconds": "1"},
		SweepEvery: -1, // the rows P16 and P17 are the router's answers, not the sweeper's
		Gateway:    gateway.Config{ManagementTimeout: time.Second},
	})
	if err := s.Store().PutToken(t.Context(), scopedTokenOf()); err != nil {
		t.Fatal(err)
	}
	for _, b := range badInputs {
		t.Run(b.id, func(t *testing.T) { // the row of docs/SECURITY.md
			if got := b.try(t, s); got != b.answer {
				t.Errorf("got %q, want %q", got, b.answer)
			}
		})
	}

	sr := startLocal(t, localrun.Options{Parameters: map[string]string{"ConnectAuth": "required"}})
	expired := token.Token{Hash: token.HashOf(expiredToken), AllGroups: true, ExpiresAt: time.Now().Add(-time.Minute)}
	for _, tok := range []token.Token{scopedTokenOf(), expired} {
		if err := sr.Store().PutToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range handshakeInputs {
		t.Run(b.id, func(t *testing.T) {
			if got := b.try(t, sr); got != b.answer {
				t.Errorf("got %q, want %q", got, b.answer)
			}
		})
	}
	if n := len(items(t, sr)); n != 0 || sr.Stats().Invocations["ConnectFunction"] != 0 {
		t.Errorf("refused handshakes left %d connections and ran $connect %d times", n, sr.Stats().Invocations["ConnectFunction"])
	}
}

// TestSecurityDocListsTheBadInputTable checks that docs/SECURITY.md's
// bad-input table is this test's table: the same rows, the same answers.
func TestSecurityDocListsTheBadInputTable(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| ([TMPH]\d+) \| (.+?) \| (.+?) \|`)
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = strings.Trim(m[3], "` ")
	}
	for _, b := range append(slices.Clone(badInputs), handshakeInputs...) {
		got, ok := documented[b.id]
		if !ok {
			t.Errorf("%s (%s) is not in docs/SECURITY.md's bad-input table", b.id, b.input)
			continue
		}
		if got != b.answer {
			t.Errorf("%s: docs/SECURITY.md says %q, the test checks %q", b.id, got, b.answer)
		}
		delete(documented, b.id)
	}
	for id := range documented {
		t.Errorf("docs/SECURITY.md lists %s, which no test tries", id)
	}
}

func scopedTokenOf() token.Token {
	return token.Token{Hash: token.HashOf(scopedToken), Name: "scoped", Groups: []string{"bots"}, CreatedAt: time.Now()}
}
