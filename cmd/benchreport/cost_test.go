package main

import (
	"math"
	"strings"
	"testing"
)

var defaultModel = Model{MessageBytes: 1024, DeliveriesPerConnMinute: 1, MemoryMB: 256}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func TestCostModelPricesEachService(t *testing.T) {
	c := defaultModel.Cost(Usage{Deliveries: 1000, RRU: 10, WRU: 2, Invocations: 3, GBSeconds: 4})
	for _, tt := range []struct {
		name      string
		got, want float64
	}{
		{"DynamoDB", c.DynamoDB, 10*0.125/1e6 + 2*0.625/1e6},
		{"Lambda", c.Lambda, 3*0.20/1e6 + 4*0.0000133334},
		{"messages", c.Messages, 1001 * 1.00 / 1e6}, // the inbound one and 1,000 deliveries
		{"connection minutes", c.ConnMinutes, 1000 * 0.25 / 1e6},
		{"floor", c.Floor(), 1001*1.00/1e6 + 1000*0.25/1e6},
		{"per million deliveries", c.PerMillion(c.Total()), c.Total() * 1000},
	} {
		if !near(tt.got, tt.want) {
			t.Errorf("%s: got $%g, want $%g", tt.name, tt.got, tt.want)
		}
	}
}

func TestCostModelMetersMessagesIn32KBIncrements(t *testing.T) {
	for _, tt := range []struct {
		bytes int
		units float64
	}{{1, 1}, {32 << 10, 1}, {33 << 10, 2}, {128 << 10, 4}} {
		m := defaultModel
		m.MessageBytes = tt.bytes
		if got, want := m.Cost(Usage{Deliveries: 9}).Messages, 10*tt.units/1e6; !near(got, want) {
			t.Errorf("%d bytes: got $%g for 10 messages, want $%g (%v units each)", tt.bytes, got, want, tt.units)
		}
	}
}

func TestCostModelConnectionMinutesFollowTheAssumption(t *testing.T) {
	m := defaultModel
	m.DeliveriesPerConnMinute = 4
	if got, want := m.Cost(Usage{Deliveries: 100}).ConnMinutes, 25*0.25/1e6; !near(got, want) {
		t.Errorf("got $%g, want $%g: 100 deliveries at 4 a minute carry 25 connection minutes", got, want)
	}
}

func parseRun(t *testing.T, in string) *Run {
	t.Helper()
	run, err := Parse(strings.NewReader(in), isKnown)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestTheBaselineLastsAsLongAsItsPostsOneAfterAnother(t *testing.T) {
	run := parseRun(t, `
BenchmarkDynamoDBWork/scan/GLOBAL-10000-2 3 1 ns/op 625 RCU/msg 0 WCU/msg 9999 recipients/msg
BenchmarkFanOutTime/sequential/recipients=10000-2 1 1 ns/op 120 s/msg 10000 posts/msg 1 extrapolated
`)
	u, note, missing := defaultModel.scanUsage(run, 10000)
	if missing != "" {
		t.Fatalf("got %s missing", missing)
	}
	if want := 9999 * 0.012 * 0.25; !near(u.GBSeconds, want) || u.Invocations != 1 || u.RRU != 625 || u.Deliveries != 9999 {
		t.Errorf("got %+v, want 1 invocation of %v GB-s, 625 RRU, 9999 deliveries", u, want)
	}
	if !strings.Contains(note, "12 ms per post") {
		t.Errorf("got note %q, want it to give the time per post", note)
	}
}

func TestOursScalesTheNearestMeasuredFanOut(t *testing.T) {
	run := parseRun(t, `
BenchmarkDynamoDBWork/ours/GLOBAL-100-2 3 1 ns/op 2 RCU/msg 0 WCU/msg 99 recipients/msg
BenchmarkDynamoDBWork/ours/GLOBAL-100000-2 3 1 ns/op 800 RCU/msg 0 WCU/msg 99999 recipients/msg
BenchmarkFanOutTime/async/recipients=1000-2 1 1 ns/op 0.3 s/msg 2 invocations/msg 0.14 GB-s/msg
BenchmarkFanOutTime/async/recipients=100000-2 1 1 ns/op 5 s/msg 101 invocations/msg 14 GB-s/msg
`)
	u, note, missing := oursUsage(run, "async", 100)
	if missing != "" {
		t.Fatalf("got %s missing", missing)
	}
	if u.Invocations != 1 || !near(u.GBSeconds, 0.14*99/1000) {
		t.Errorf("got %v invocations, %v GB-s; want at least 1 invocation and 0.14 GB-s scaled to 99 of 1,000", u.Invocations, u.GBSeconds)
	}
	if note != "Lambda scaled from recipients=1000" {
		t.Errorf("got note %q", note)
	}
	u, note, _ = oursUsage(run, "async", 100000)
	if !near(u.Invocations, 101*0.99999) || note != "Lambda recipients=100000" {
		t.Errorf("got %v invocations (%s), want the measured 101 for 99,999 of 100,000", u.Invocations, note)
	}
	if _, _, missing := oursUsage(run, "inline", 100); missing != "BenchmarkFanOutTime/inline" {
		t.Errorf("got missing %q, want BenchmarkFanOutTime/inline", missing)
	}
	if _, _, missing := oursUsage(run, "async", 10000); missing != "BenchmarkDynamoDBWork/ours/GLOBAL-10000" {
		t.Errorf("got missing %q, want BenchmarkDynamoDBWork/ours/GLOBAL-10000", missing)
	}
}

func TestEveryPriceHasASource(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Prices {
		if p.Dollars <= 0 || p.Per <= 0 || !strings.HasPrefix(p.Source, "https://") || seen[p.Key] {
			t.Errorf("price %+v: want a positive price, an https source and a key of its own", p)
		}
		seen[p.Key] = true
	}
	for _, k := range []string{"apigw-message", "apigw-connection-minute", "lambda-request", "lambda-gb-second", "dynamodb-rru", "dynamodb-wru"} {
		if !seen[k] {
			t.Errorf("no price %s", k)
		}
	}
}
