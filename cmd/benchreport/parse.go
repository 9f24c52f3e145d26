package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Run is what one `make bench` printed: the header lines of `go test
// -bench`, the commands that were run and the benchmark results.
type Run struct {
	GOOS, GOARCH, CPU string
	// Pkgs are the packages of the pkg: lines, in order of appearance.
	Pkgs []string
	// Commands are the commands recorded with "command: ..." lines (the
	// bench target prints one before each command), with the status of the
	// "exit: N" line that follows each.
	Commands []Command
	// Results are by name (see Result.Name); Names lists them in order of
	// appearance.
	Results map[string]*Result
	Names   []string
}

// Command is one recorded command and how it ended.
type Command struct {
	Line string
	Exit int  // the exit status, when Exited
	Done bool // an "exit: N" line followed it
}

// Result is one benchmark's figures. A benchmark that appears several
// times (-count, or two files concatenated) gets the median of each metric.
type Result struct {
	// Name is the benchmark's name as printed, without the -GOMAXPROCS
	// suffix: "BenchmarkFanOutTime/inline/recipients=1000".
	Name  string
	Procs int // the GOMAXPROCS suffix; 1 when there was none
	Lines int // how many lines were merged
	// Units lists the metrics' units in order of first appearance.
	Units   []string
	samples map[string][]float64
}

// Metric returns the median of the values reported with unit, and whether
// there was any.
func (r *Result) Metric(unit string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	v := r.samples[unit]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

// Get returns the metric unit of the named benchmark, and whether it was
// measured.
func (r *Run) Get(name, unit string) (float64, bool) {
	return r.Results[name].Metric(unit)
}

// procs returns the GOMAXPROCS the benchmarks ran with: "2", or "1, 2"
// when they differ.
func (r *Run) procs() string {
	var seen []int
	for _, name := range r.Names {
		if p := r.Results[name].Procs; !slices.Contains(seen, p) {
			seen = append(seen, p)
		}
	}
	slices.Sort(seen)
	parts := make([]string, len(seen))
	for i, p := range seen {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, ", ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Parse reads the output of `go test -bench` runs (several may be
// concatenated) and returns what it found. Lines it does not know (test
// logs, PASS, ok) are skipped; a malformed benchmark line is an error that
// names it. known says which names are expected, so that a name whose last
// element ends in digits ("GROUP-10") is told apart from a -GOMAXPROCS
// suffix when GOMAXPROCS is 1 and Go printed none.
func Parse(r io.Reader, known func(name string) bool) (*Run, error) {
	run := &Run{Results: map[string]*Result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			v = strings.TrimSpace(v)
			switch k {
			case "goos":
				run.GOOS = v
				continue
			case "goarch":
				run.GOARCH = v
				continue
			case "cpu":
				run.CPU = v
				continue
			case "pkg":
				if !slices.Contains(run.Pkgs, v) {
					run.Pkgs = append(run.Pkgs, v)
				}
				continue
			case "command":
				run.Commands = append(run.Commands, Command{Line: v})
				continue
			case "exit":
				if n := len(run.Commands); n > 0 && !run.Commands[n-1].Done {
					if code, err := strconv.Atoi(v); err == nil {
						run.Commands[n-1].Exit, run.Commands[n-1].Done = code, true
					}
				}
				continue
			}
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue // the name alone: a benchmark that logged before its result, or failed
		}
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			continue // not a result line ("BenchmarkX-2 --- FAIL", or output in between)
		}
		if len(fields) < 4 || len(fields)%2 != 0 {
			return nil, fmt.Errorf("line %d: a benchmark line with no value-unit pairs: %q", lineNo, line)
		}
		name, procs := splitProcs(fields[0], known)
		res := run.Results[name]
		if res == nil {
			res = &Result{Name: name, Procs: procs, samples: map[string][]float64{}}
			run.Results[name] = res
			run.Names = append(run.Names, name)
		}
		res.Lines++
		for i := 2; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not a number in %q", lineNo, fields[i], line)
			}
			unit := fields[i+1]
			if _, ok := res.samples[unit]; !ok {
				res.Units = append(res.Units, unit)
			}
			res.samples[unit] = append(res.samples[unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return run, nil
}

// splitProcs strips the -GOMAXPROCS suffix Go appends to a benchmark's
// name ("BenchmarkX/a/b-2"). Go appends none when GOMAXPROCS is 1, and
// sub-benchmark names may end in "-digits" themselves ("GROUP-10"): a name
// that known accepts as it is, and not without its last "-digits", is kept
// whole.
func splitProcs(name string, known func(string) bool) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i < strings.LastIndexByte(name, '/') {
		return name, 1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 || name[i+1] == '0' {
		return name, 1
	}
	stripped := name[:i]
	if known != nil && known(name) && !known(stripped) {
		return name, 1
	}
	return stripped, n
}
