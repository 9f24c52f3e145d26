package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	var stdout, stderr syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--template", "../../template.yaml", "--token", "mst_cmd-test"}, &stdout, &stderr)
	}()
	url := regexp.MustCompile(`ws://127\.0\.0\.1:\d+/dev`)
	deadline := time.Now().Add(10 * time.Second)
	for url.FindString(stdout.String()) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no URL printed; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := stdout.String()
	for _, want := range []string{"@connections", "/dev/@connections/{connectionId}", "mst_cmd-test", "store memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("startup output %q lacks %q", out, want)
		}
	}

	// As a new user does: the printed wscat line's URL and header, and an
	// EVENT at once, with no IDENTIFY, reaches another client of the group.
	line := regexp.MustCompile(`wscat -c '(ws://[^?']+)\?group=(\w+)' -H 'Authorization: Bearer (\S+)'`).FindStringSubmatch(out)
	if line == nil || line[3] != "mst_cmd-test" {
		t.Fatalf("startup output %q has no wscat line with the token's header", out)
	}
	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(context.Background(), line[1]+"?group="+line[2], &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + line[3]}},
		})
		if err != nil {
			t.Fatalf("dial as printed: %v", err)
		}
		return c
	}
	c, sender := dial(), dial()
	defer c.CloseNow()
	defer sender.CloseNow()
	sender.Write(context.Background(), websocket.MessageText, []byte(`{"op":0,"event":"HELLO","data":{"n":1},"intent":{"target":"GROUP","identifier":"`+line[2]+`"}}`))
	if _, msg, err := c.Read(context.Background()); err != nil || !strings.Contains(string(msg), `"event":"HELLO"`) {
		t.Fatalf("an EVENT sent at once by a client connected as printed: the other got %s, %v", msg, err)
	}
	if _, _, err := websocket.Dial(context.Background(), line[1]+"?group=g", nil); err == nil {
		t.Error("a handshake without the token was accepted")
	}

	stop() // what SIGINT does
	if _, _, err := c.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("on stop the client got %v, want close 1001", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the stop")
	}
	logs := stderr.String()
	for _, want := range []string{"msg=CONNECT", "msg=MESSAGE", "msg=DISCONNECT", "code=1001", "stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"--store", "redis"}, "--store"},
		{[]string{"--functions", "binaries", "--template", "../../template.yaml", "--addr", "127.0.0.1:0"}, "--store dynamodb"},
		{[]string{"--template", "missing.yaml", "--addr", "127.0.0.1:0"}, "missing.yaml"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--store", "dynamodb", "--dynamodb-endpoint", "", "--template", "../../template.yaml", "--addr", "127.0.0.1:0"}, "--allow-aws"},
		{[]string{"--sweep-every", "0s"}, "positive duration"},
		{[]string{"--sweep-every", "often"}, "positive duration"},
		{[]string{"--parameter-overrides", "PingIntervalMs"}, "want Name=Value"},
		{[]string{"--parameter-overrides", "Nope=1", "--template", "../../template.yaml", "--addr", "127.0.0.1:0"}, "no such parameter"},
		{[]string{"--parameter-overrides", "PingIntervalMs=5", "--template", "../../template.yaml", "--addr", "127.0.0.1:0"}, "PingIntervalMs=5"},
		{[]string{"--parameter-overrides", "SweepSchedule=cron(0/5)", "--template", "../../template.yaml", "--addr", "127.0.0.1:0"}, "does not match"},
		{[]string{"--parameter-overrides", `SweepSchedule="rate(5 minutes)`}, "not closed"},
		{[]string{"--management-rate", "-1"}, "want 0 or more"},
		{[]string{"--management-latency", "-1s"}, "want 0 or more"},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
			t.Errorf("%v: got %v (stderr %q), want an error mentioning %q", tt.args, err, stderr.String(), tt.want)
		}
	}
}

// --management-rate and --management-latency make @connections answer as
// AWS's does under its quota: late, and 429 beyond the rate.
func TestTheManagementAPICanBeThrottledLikeAWS(t *testing.T) {
	var stdout, stderr syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--template", "../../template.yaml",
			"--management-rate", "1", "--management-latency", "50ms"}, &stdout, &stderr)
	}()
	defer func() { stop(); <-done }()
	ep := regexp.MustCompile(`http://127\.0\.0\.1:\d+/dev/@connections/`)
	deadline := time.Now().Add(10 * time.Second)
	for ep.FindString(stdout.String()) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no @connections URL printed; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	post := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Post(ep.FindString(stdout.String())+"nobody", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), time.Since(start)
	}
	if code, typ, took := post(); code != http.StatusGone || took < 50*time.Millisecond {
		t.Errorf("first call: got %d %s in %v, want 410 GoneException after 50ms", code, typ, took)
	}
	if code, typ, _ := post(); code != http.StatusTooManyRequests || typ != "LimitExceededException" {
		t.Errorf("second call in the same second: got %d %s, want 429 LimitExceededException", code, typ)
	}
}

func TestParameterOverridesTakeQuotedValues(t *testing.T) {
	var got map[string]string
	f := parameterOverrides{&got}
	for _, v := range []string{`SweepSchedule="rate(5 minutes)" PingIntervalMs=5000`, `ParameterKey=LogLevel,ParameterValue='debug'`} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%s): %v", v, err)
		}
	}
	want := map[string]string{"SweepSchedule": "rate(5 minutes)", "PingIntervalMs": "5000", "LogLevel": "debug"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

// TestTheInspectorIsOnByDefaultAndCanBeTurnedOff: the startup output names
// the inspector page, which answers; with --inspector=false it is neither
// printed nor served ("/" is refused as before).
func TestTheInspectorIsOnByDefaultAndCanBeTurnedOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flags  []string
		status int
	}{
		{"by default", nil, http.StatusOK},
		{"--inspector=false", []string{"--inspector=false"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			args := append([]string{"--addr", "127.0.0.1:0", "--template", "../../template.yaml", "--token", "mst_cmd-test"}, tc.flags...)
			go func() { done <- run(ctx, args, &stdout, &stderr) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			ws := regexp.MustCompile(`ws://(127\.0\.0\.1:\d+)/dev`)
			deadline := time.Now().Add(10 * time.Second)
			for ws.FindString(stdout.String()) == "" {
				if time.Now().After(deadline) {
					t.Fatalf("no URL printed; stdout %q stderr %q", stdout.String(), stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			out := stdout.String()
			addr := ws.FindStringSubmatch(out)[1]
			line := "\n  Inspector      http://" + addr + "/\n"
			if printed := strings.Contains(out, line); printed != (tc.status == http.StatusOK) {
				t.Errorf("the inspector line %q printed: %v, want %v:\n%s", line, printed, !printed, out)
			}
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("GET /: %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}
