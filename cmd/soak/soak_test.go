package main

import (
	"bytes"
	"context"
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
// misdelivers and leaves nothing.
func TestTinySoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 5 s soak")
	}
	cfg := defaultConfig()
	cfg.Connections, cfg.Groups, cfg.Rate = 40, 4, 40
	cfg.Duration, cfg.Churn, cfg.DisconnectFaults = 5*time.Second, 6, 0.3
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
		t.Errorf("lost %d, duplicates %d, items left %d, misdelivered %d: want 0 each", v.Lost, v.Duplicates, res.itemsLeft(), c.Misdelivered)
	}
	lines := strings.Split(out.String(), "\n")
	for i, label := range []string{"deliveries", "lost to live recipients", "duplicates", "items left",
		"latency p50", "latency p99", "gateway peak memory", "gateway peak goroutines"} {
		if !strings.HasPrefix(lines[i], label+":") {
			t.Errorf("line %d is %q, want the label %q", i+1, lines[i], label)
		}
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags(nil, &bytes.Buffer{}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c, err := parseFlags([]string{"--duration", "20s", "--connections", "200", "--seed", "7"}, &bytes.Buffer{})
	if err != nil || c.Duration != 20*time.Second || c.Connections != 200 || c.Seed != 7 || c.Groups != 20 {
		t.Fatalf("got %+v, %v", c, err)
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
