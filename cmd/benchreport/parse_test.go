package main

import (
	"strings"
	"testing"
)

const smallRun = `command: go test -run '^$' -bench HandlerMessage -benchmem ./internal/handler/
goos: linux
goarch: arm64
pkg: github.com/mastersocket/mastersocket/internal/handler
cpu: Test CPU
BenchmarkHandlerMessage/PING-2     	   40000	     30000 ns/op	    9000 B/op	     110 allocs/op
BenchmarkHandlerMessage/GROUP-10-2 	   10000	    120000 ns/op	   40000 B/op	     600 allocs/op
--- BENCH: BenchmarkHandlerMessage/GROUP-10-2
    bench_test.go:12: a log line: 1 2 3
PASS
ok  	github.com/mastersocket/mastersocket/internal/handler	3.1s
exit: 0
command: go test -run '^$' -bench SweepCost ./internal/handler/
pkg: github.com/mastersocket/mastersocket/internal/handler
BenchmarkSweepCost-2
BenchmarkSweepCost-2   --- FAIL: something
exit: 1
`

func TestParseReadsHeadersResultsAndCommands(t *testing.T) {
	run, err := Parse(strings.NewReader(smallRun), isKnown)
	if err != nil {
		t.Fatal(err)
	}
	if run.GOOS != "linux" || run.GOARCH != "arm64" || run.CPU != "Test CPU" {
		t.Errorf("got headers %q %q %q, want linux arm64 Test CPU", run.GOOS, run.GOARCH, run.CPU)
	}
	if len(run.Pkgs) != 1 || run.Pkgs[0] != "github.com/mastersocket/mastersocket/internal/handler" {
		t.Errorf("got pkgs %q, want the handler package once", run.Pkgs)
	}
	wantNames := []string{"BenchmarkHandlerMessage/PING", "BenchmarkHandlerMessage/GROUP-10"}
	if strings.Join(run.Names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("got names %q, want %q", run.Names, wantNames)
	}
	if v, ok := run.Get("BenchmarkHandlerMessage/GROUP-10", "allocs/op"); !ok || v != 600 {
		t.Errorf("got GROUP-10 allocs/op %v, %v; want 600", v, ok)
	}
	if r := run.Results["BenchmarkHandlerMessage/PING"]; r.Procs != 2 || strings.Join(r.Units, " ") != "ns/op B/op allocs/op" {
		t.Errorf("got procs %d units %q, want 2 and ns/op B/op allocs/op", r.Procs, r.Units)
	}
	if len(run.Commands) != 2 {
		t.Fatalf("got %d commands, want 2", len(run.Commands))
	}
	if c := run.Commands[0]; c.Line != "go test -run '^$' -bench HandlerMessage -benchmem ./internal/handler/" || !c.Done || c.Exit != 0 {
		t.Errorf("got first command %+v", c)
	}
	if c := run.Commands[1]; !c.Done || c.Exit != 1 {
		t.Errorf("got second command %+v, want exit 1", c)
	}
}

func TestParseStripsTheGOMAXPROCSSuffixButNotADigitCase(t *testing.T) {
	for _, tt := range []struct {
		printed, name string
		procs         int
	}{
		{"BenchmarkHandlerMessage/GROUP-10-2", "BenchmarkHandlerMessage/GROUP-10", 2},
		{"BenchmarkHandlerMessage/GROUP-10", "BenchmarkHandlerMessage/GROUP-10", 1}, // GOMAXPROCS=1 prints no suffix
		{"BenchmarkDynamoDBWork/ours/GLOBAL-100000-16", "BenchmarkDynamoDBWork/ours/GLOBAL-100000", 16},
		{"BenchmarkDynamoDBWork/scan/GLOBAL-100", "BenchmarkDynamoDBWork/scan/GLOBAL-100", 1},
		{"BenchmarkDynamoDBWork/ours/GROUP-1000-whole-table-2", "BenchmarkDynamoDBWork/ours/GROUP-1000-whole-table", 2},
		{"BenchmarkDynamoDBWork/ours/DIRECT-cold", "BenchmarkDynamoDBWork/ours/DIRECT-cold", 1},
		{"BenchmarkFanOutTime/inline/recipients=1000-2", "BenchmarkFanOutTime/inline/recipients=1000", 2},
		{"BenchmarkColdStart/connect-2", "BenchmarkColdStart/connect", 2},
		{"BenchmarkSweepCost-8", "BenchmarkSweepCost", 8},
		{"BenchmarkSweepCost", "BenchmarkSweepCost", 1},
		{"BenchmarkSomethingNew/x-3", "BenchmarkSomethingNew/x", 3},
		{"BenchmarkA-b/c", "BenchmarkA-b/c", 1},
	} {
		t.Run(tt.printed, func(t *testing.T) {
			name, procs := splitProcs(tt.printed, isKnown)
			if name != tt.name || procs != tt.procs {
				t.Errorf("got %q, %d; want %q, %d", name, procs, tt.name, tt.procs)
			}
		})
	}
}

func TestParseTakesTheMedianOfRepeatedLines(t *testing.T) {
	in := "BenchmarkSweepCost-2 3 1 ns/op 30 RCU/sweep\n" +
		"BenchmarkSweepCost-2 3 1 ns/op 10 RCU/sweep\n" +
		"BenchmarkSweepCost-2 3 1 ns/op 20 RCU/sweep\n" +
		"BenchmarkSweepCost-2 3 1 ns/op 1000 RCU/sweep\n"
	run, err := Parse(strings.NewReader(in), isKnown)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := run.Get(sweepCost, "RCU/sweep"); v != 25 {
		t.Errorf("got %v, want the median 25", v)
	}
	if n := run.Results[sweepCost].Lines; n != 4 {
		t.Errorf("got %d lines merged, want 4", n)
	}
}

func TestParseRejectsAMalformedResultLine(t *testing.T) {
	for _, line := range []string{
		"BenchmarkSweepCost-2 3 1 ns/op 30",
		"BenchmarkSweepCost-2 3 many ns/op",
		"BenchmarkSweepCost-2 3",
	} {
		if _, err := Parse(strings.NewReader("goos: linux\n"+line+"\n"), isKnown); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: got %v, want an error naming line 2", line, err)
		}
	}
}

func TestParseSkipsWhatIsNotAResult(t *testing.T) {
	in := "BenchmarkX-2\n" +
		"BenchmarkX-2 --- FAIL: BenchmarkX-2\n" +
		"    x_test.go:1: BenchmarkY-2 5 1 ns/op\n" +
		"Benchmark results follow\n" +
		"ok  \tpkg\t1s\n"
	run, err := Parse(strings.NewReader(in), isKnown)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Names) != 0 {
		t.Errorf("got results %q, want none", run.Names)
	}
}
