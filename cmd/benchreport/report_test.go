package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleInput is testdata/bench.txt: hand-written output of every
// benchmark the report reads but BenchmarkGroupFanOutSlowSender, with a
// failed command at the end.
func sampleInput(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// report runs the command on input and returns what it printed and the
// document it wrote.
func report(t *testing.T, input string, extra ...string) (stdout, doc string, dir string) {
	t.Helper()
	dir = t.TempDir()
	in := filepath.Join(dir, "bench.txt")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "docs", "BENCHMARKS.md")
	args := append([]string{"-in", in, "-out", out, "-plots", filepath.Join(dir, "docs", "bench"), "-date", "2026-11-26"}, extra...)
	var so, se bytes.Buffer
	if err := run(args, strings.NewReader(""), &so, &se); err != nil {
		t.Fatalf("run: %v\n%s", err, se.String())
	}
	d, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return so.String(), string(d), dir
}

func TestReportOfAFullRun(t *testing.T) {
	stdout, doc, dir := report(t, sampleInput(t))
	for _, row := range [][]string{
		{"| DynamoDB work per message, vs a Scan per message"},
		{"|   GLOBAL-10000 ", "| 80 R + 0 W ", "| 625 R + 0 W ", "| 0.128 ", "calls 8 vs 5, table 10,000, recipients 9,999"},
		{"|   10,000 conns, ours (async) ", "| $1.25 ", "| $1.30 ", "| 0.966 ", "floor $1.25; above it ours $0.00309, baseline $0.0478 (0.0645)"},
		{"|   100,000 recipients, async ", "| 5 s ", "| 1,200 s (extrapolated) ", "| 0.00417 ", "invocations 101"},
		{"|   connect size ", "| 10.0 MiB ", "| 8.5 MiB ", "| 1.18 "},
		{"|   message first answer ", "| 27 ms ", "| 21 ms ", "| 1.29 "},
		{"|   GROUP-10 ", "| 120 µs ", "| 1 ms ", "| 0.12 ", "39.1 KiB, 600 allocs"},
		{"|   p99 latency ", "| 12 ms ", "| 3 ms (p50) ", "| 4 "},
		{"|   deliveries per second, inspector page on ", "| 16,000 ", "| 20,000 (off) ", "| 0.8 ", "50 µs of CPU per delivery (off: 40)"},
		{"|   token reads per storm ", "| 1 ", "| 1,000 ", "| 0.001 "},
		{"|   GetConnection calls per sweep ", "| 10,000 ", "| 10,000 items ", "| 1 "},
		{"|   bound=16 ", "| not measured ", "BenchmarkGroupFanOutSlowSender/bound=16 absent"},
		{"41 of 44 rows measured."},
	} {
		if !lineWith(stdout, row...) {
			t.Errorf("the table has no row with %q:\n%s", row, stdout)
		}
	}
	for _, want := range []string{
		"Measured on 2026-11-26 by `make bench`",
		"| CPU | Hand-written CPU @ 2.00GHz |", "| OS/architecture | linux/amd64 |", "| Go | go1.",
		"scripts/dynamodb-local.sh run go test -run '^$' -bench DynamoDBWork -benchtime 3x ./internal/handler/\n",
		"# ^ failed (exit status 1)",
		"-plots " + filepath.ToSlash(filepath.Join(dir, "docs", "bench")),
		"![fan-out time against recipients](bench/fanout-time.png)",
		"![cost per million deliveries against table size](bench/cost-per-delivery.png)",
		"| GLOBAL-100000 | 800 R + 0 W | 6,250 R + 0 W | 0.128 |",
		"| DynamoDB on-demand write request units (Standard table class) | $0.625 per 1,000,000 write request units | https://aws.amazon.com/dynamodb/pricing/on-demand/ |",
		"read on " + pricesRead,
		"each connection is assumed to receive 1 delivery per minute",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document has no %q", want)
		}
	}
	for _, f := range []string{fanOutPlotFile, costPlotFile} {
		img := decodePNG(t, filepath.Join(dir, "docs", "bench", f))
		if img.Bounds().Dx() != plotWidth || img.Bounds().Dy() != plotHeight {
			t.Errorf("%s: got %v", f, img.Bounds())
		}
	}
}

func TestReportIsTheSameForTheSameInput(t *testing.T) {
	out1, doc1, dir1 := report(t, sampleInput(t))
	out2, doc2, dir2 := report(t, sampleInput(t))
	clean := func(s, dir string) string { return strings.ReplaceAll(s, filepath.ToSlash(dir), "DIR") }
	if clean(out1, dir1) != clean(out2, dir2) || clean(doc1, dir1) != clean(doc2, dir2) {
		t.Error("two reports of one input differ")
	}
	for _, f := range []string{fanOutPlotFile, costPlotFile} {
		a, _ := os.ReadFile(filepath.Join(dir1, "docs", "bench", f))
		b, _ := os.ReadFile(filepath.Join(dir2, "docs", "bench", f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two reports of one input", f)
		}
	}
}

func TestAPartialRunSaysNotMeasured(t *testing.T) {
	stdout, doc, _ := report(t, "pkg: github.com/mastersocket/mastersocket/internal/handler\n"+
		"BenchmarkHandlerMessage/PING-2 40000 30000 ns/op 9000 B/op 110 allocs/op\n"+
		"BenchmarkSomethingNew-2 1 5 ns/op 7 widgets/op\n")
	if !strings.Contains(stdout, "|   PING ") || !strings.Contains(stdout, "| 0.03 ") {
		t.Errorf("the measured row is missing:\n%s", stdout)
	}
	for _, row := range []string{"|   GLOBAL-10000 ", "|   10,000 conns, ours (inline) ", "|   1,000 recipients, async ", "|   bound=16 "} {
		if !lineWith(stdout, row, "| not measured |") {
			t.Errorf("the table has no row %q saying not measured:\n%s", row, stdout)
		}
	}
	if !strings.Contains(stdout, "1 of 32 rows measured; 1 other benchmark results are listed in the document.") {
		t.Errorf("the table does not count the rows measured:\n%s", stdout)
	}
	for _, want := range []string{
		"go test -run '^$' -bench . github.com/mastersocket/mastersocket/internal/handler\n",
		"reconstructed from the `pkg:` lines",
		"- `BenchmarkSomethingNew`: 5 ns/op, 7 widgets/op",
		"| CPU | unknown",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document has no %q", want)
		}
	}
}

func TestCommandsFromTheFlagWhenTheInputRecordsNone(t *testing.T) {
	_, doc, _ := report(t, "BenchmarkSweepCost-2 3 1 ns/op 320 RCU/sweep\n", "-cmd", "go test -bench SweepCost ./internal/handler/")
	if !strings.Contains(doc, "```sh\ngo test -bench SweepCost ./internal/handler/\n") || strings.Contains(doc, "reconstructed") {
		t.Errorf("the document does not list the -cmd command:\n%s", doc)
	}
}

func TestNoResultIsAnError(t *testing.T) {
	var so, se bytes.Buffer
	err := run(nil, strings.NewReader("PASS\nok  \tpkg\t0.1s\n"), &so, &se)
	if err == nil || !strings.Contains(err.Error(), "no benchmark results") {
		t.Errorf("got %v, want an error saying there are no results", err)
	}
}

// lineWith says whether a line of s holds all of parts.
func lineWith(s string, parts ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
