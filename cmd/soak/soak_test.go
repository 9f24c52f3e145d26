package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the clients' process of the soak it
// runs, as the soak command is its own.
func TestMain(m *testing.M) {
	if isClients(os.Args[1:]) {
		os.Exit(clientsMain(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// A tiny soak, with many faults for its size, loses, duplicates,
// misdelivers and leaves nothing, in each mode of authentication; with
// connect auth, both ways of offering the token are used and every
// handshake without credentials is refused with 401.
func TestTinySoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two 5 s soaks")
	}
	for _, mode := range []string{connectAuthRequired, connectAuthOff} {
		t.Run(mode, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.ConnectAuth = mode
			cfg.Connections, cfg.Groups, cfg.Rate = 40, 4, 40
			cfg.Duration, cfg.Churn, cfg.DisconnectFaults = 5*time.Second, 6, 0.3
			cfg.AnonymousShare = 0.3 // a few anonymous ones, even in 5 s
			cfg.Seed = 1
			var progress bytes.Buffer
			res, err := runSoak(context.Background(), cfg, &progress)
			if err != nil {
				t.Fatalf("runSoak: %v\n%s", err, progress.String())
			}
			var out bytes.Buffer
			res.print(&out)
			t.Logf("\n%s", out.String())
			c, v := res.Clients, res.Clients.Verdict
			if c.Deliveries == 0 || v.Expected == 0 {
				t.Errorf("deliveries %d, expected %d: want traffic", c.Deliveries, v.Expected)
			}
			if v.Lost != 0 || v.Duplicates != 0 || res.itemsLeft() != 0 || c.Misdelivered != 0 || res.failed() {
				t.Errorf("lost %d, duplicates %d, items left %d, misdelivered %d, failed %v: want 0 each, and not failed",
					v.Lost, v.Duplicates, res.itemsLeft(), c.Misdelivered, res.failed())
			}
			lines := strings.Split(out.String(), "\n")
			for i, label := range []string{"deliveries", "lost to live recipients", "duplicates", "items left",
				"latency p50", "latency p99", "gateway peak memory", "gateway peak goroutines"} {
				if !strings.HasPrefix(lines[i], label+":") {
					t.Errorf("line %d is %q, want the label %q", i+1, lines[i], label)
				}
			}
			if !strings.Contains(out.String(), "--connect-auth "+mode+" ") {
				t.Errorf("the settings do not say --connect-auth %s", mode)
			}
			if c.Anonymous == 0 {
				t.Errorf("no anonymous connection or handshake: want some")
			}
			if mode == connectAuthOff {
				if c.SubprotocolSessions != 0 || c.AnonymousRefused != 0 || res.Handshakes != (handshakeTotals{}) {
					t.Errorf("off: %d subprotocol sessions, %d anonymous refused, handshakes %+v: want none",
						c.SubprotocolSessions, c.AnonymousRefused, res.Handshakes)
				}
				return
			}
			if c.AnonymousRefused != c.Anonymous || len(c.AnonymousOther) != 0 || res.authFailed() {
				t.Errorf("anonymous handshakes: %d of %d refused with 401, other outcomes %v: want all refused with 401",
					c.AnonymousRefused, c.Anonymous, c.AnonymousOther)
			}
			if want := fmt.Sprintf("anonymous handshakes refused with 401: %d of %d\n", c.Anonymous, c.Anonymous); !strings.Contains(out.String(), want) {
				t.Errorf("the report lacks %q", want)
			}
			if h := res.Handshakes; h.Refused401 != c.AnonymousRefused || h.Refused403 != 0 || h.Failed500 != 0 || h.Allowed < c.Sessions {
				t.Errorf("the gateway's handshakes %+v: want %d refused with 401 (the anonymous ones), none with 403 or 500, at least %d allowed",
					h, c.AnonymousRefused, c.Sessions)
			}
			if c.SubprotocolSessions == 0 || c.SubprotocolSessions == c.Sessions {
				t.Errorf("%d of %d sessions offered the token as a subprotocol: want both ways used", c.SubprotocolSessions, c.Sessions)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags(nil, &bytes.Buffer{}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c, err := parseFlags([]string{"--duration", "20s", "--connections", "200", "--seed", "7"}, &bytes.Buffer{})
	if err != nil || c.Duration != 20*time.Second || c.Connections != 200 || c.Seed != 7 || c.Groups != 20 || c.ConnectAuth != connectAuthRequired {
		t.Fatalf("got %+v, %v", c, err)
	}
	if c, err := parseFlags([]string{"--connect-auth", "off"}, &bytes.Buffer{}); err != nil || c.ConnectAuth != connectAuthOff || c.authAtConnect() {
		t.Fatalf("--connect-auth off: got %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--connections", "1"}, "--connections 1"},
		{[]string{"--groups", "0"}, "--groups 0"},
		{[]string{"--rate", "0"}, "--rate 0"},
		{[]string{"--rate", "NaN"}, "--rate NaN"},
		{[]string{"--rate", "10", "--global-rate", "11"}, "--global-rate 11"},
		{[]string{"--disconnect-faults", "1.5"}, "--disconnect-faults 1.5"},
		{[]string{"--duration", "10ms"}, "--duration 10ms"},
		{[]string{"--churn", "-1"}, "--churn -1"},
		{[]string{"--sweep-every", "0s"}, "--sweep-every 0s"},
		{[]string{"--connect-auth", "maybe"}, "--connect-auth maybe"},
		{[]string{"--connect-auth", ""}, "--connect-auth "},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		if _, err := parseFlags(tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--connections", "x"}, nil, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "-connections") {
		t.Errorf("bad flag: status %d, stderr %q; want 2 and the flag named", code, stderr.String())
	}
}

// The judgement: expected pairs are those whose ends stayed up for the
// grace after the send; the others are in doubt.
func TestJudge(t *testing.T) {
	const s = int64(time.Second)
	forever := int64(math.MaxInt64)
	spans := []span{
		{group: 0, identifiedAt: 0, endAt: forever},      // 0: sender
		{group: 0, identifiedAt: 0, endAt: forever},      // 1: receives all
		{group: 0, identifiedAt: 0, endAt: forever},      // 2: loses m0
		{group: 0, identifiedAt: 0, endAt: 12 * s},       // 3: leaves within grace of m0
		{group: 0, identifiedAt: 11 * s, endAt: forever}, // 4: identified after m0
		{group: 1, identifiedAt: 0, endAt: forever},      // 5: other group
	}
	msgs := []message{
		{sentAt: 10 * s, sender: 0, target: 0, kind: kindGroup},
		{sentAt: 20 * s, sender: 0, target: 5, kind: kindDirect},
		{sentAt: 30 * s, sender: 0, kind: kindGlobal},
		{sentAt: 40 * s, sender: 0, kind: kindGlobal, failed: true},
	}
	receipts := [][]uint32{
		nil,
		{0, 2, 2, 2}, // m2 three times: one duplicate pair
		{2},
		{},
		{0, 2},
		{1, 2},
	}
	v := judge(spans, msgs, receipts, 5*time.Second)
	// m0: 1 got, 2 lost, 3 in doubt, 4 not judged; m1: 5 got;
	// m2: 1, 2, 4, 5 got, 3 gone; m3 failed.
	want := verdict{Expected: 7, Lost: 1, InDoubt: 1, Duplicates: 1}
	if len(v.LostSamples) != 1 || !strings.Contains(v.LostSamples[0], "m0 ") {
		t.Errorf("lost samples %q, want m0's", v.LostSamples)
	}
	v.LostSamples = nil
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %+v, want %+v", v, want)
	}
}

// With connect auth, a handshake judged wrongly fails the soak: an
// anonymous one not refused with 401, or one with the token refused by the
// authorizer. Off, the anonymous connections' fate is context only.
func TestAuthFailed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		c      clientReport
		failed bool
	}{
		{"all refused with 401", connectAuthRequired, clientReport{Anonymous: 3, AnonymousRefused: 3}, false},
		{"none tried", connectAuthRequired, clientReport{}, false},
		{"one not refused", connectAuthRequired, clientReport{Anonymous: 3, AnonymousRefused: 2, AnonymousOther: map[string]int64{"accepted": 1}}, true},
		{"one unaccounted for", connectAuthRequired, clientReport{Anonymous: 3, AnonymousRefused: 2}, true},
		{"the token refused with 403", connectAuthRequired, clientReport{HandshakeRefused: map[string]int64{"HTTP 403": 1}}, true},
		{"the token refused with 401", connectAuthRequired, clientReport{HandshakeRefused: map[string]int64{"HTTP 401": 1}}, true},
		{"$connect failed with 502", connectAuthRequired, clientReport{HandshakeRefused: map[string]int64{"HTTP 502": 1}}, false},
		{"off: anonymous not swept", connectAuthOff, clientReport{Anonymous: 3, AnonymousSwept: 1}, false},
	} {
		r := &result{Config: defaultConfig(), Clients: tc.c}
		r.Config.ConnectAuth = tc.mode
		if got := r.failed(); got != tc.failed {
			t.Errorf("%s: failed %v, want %v", tc.name, got, tc.failed)
		}
		var out bytes.Buffer
		r.print(&out)
		if want := map[bool]string{true: "FAIL\n", false: "PASS\n"}[tc.failed]; !strings.HasSuffix(out.String(), want) {
			t.Errorf("%s: the report ends %q, want %q", tc.name, out.String()[max(0, out.Len()-20):], want)
		}
	}
}
