// Command benchreport turns the output of `make bench` into one table and
// docs/BENCHMARKS.md.
//
// It reads the text that `go test -bench` prints (one file or several
// concatenated: the benchmark lines and the goos, goarch, cpu and pkg
// header lines), and the "command: ..." and "exit: N" lines that the bench
// target writes around each command. It prints one table to standard
// output, grouped (DynamoDB work per message against a Scan per message,
// cost per million deliveries, fan-out time, cold start, handler CPU and
// allocations, the local gateway under load, a reconnect storm, a sweep,
// fan-out through a slow sender), each row with ours, its comparison and
// their ratio. With -out it writes the document: the date, the machine, the
// commands, the tables, the cost model with its prices and their sources,
// and, with -plots, the PNG plots it draws there.
//
// A benchmark that did not run leaves its rows "not measured"; benchreport
// fails only when the input holds no benchmark result at all.
//
// Usage:
//
//	go run ./cmd/benchreport -in bench.txt -out docs/BENCHMARKS.md -plots docs/bench
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.SetFlags(0)
		log.Fatal("benchreport: ", err)
	}
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// run is the command, with its arguments and streams.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ins, cmds listFlag
	fs.Var(&ins, "in", "a file of `go test -bench` output; several may be given, - is standard input (default: the arguments, else standard input)")
	out := fs.String("out", "", "write the document here, e.g. docs/BENCHMARKS.md (default: none)")
	plots := fs.String("plots", "", "draw the PNG plots into this folder, e.g. docs/bench (default: none)")
	fs.Var(&cmds, "cmd", "a command that produced the input, for the document when the input records none; may be repeated")
	date := fs.String("date", "", "the date the document gives (default: today, UTC)")
	m := Model{}
	fs.IntVar(&m.MessageBytes, "message-bytes", 1024, "the size of a message, for API Gateway's 32 KB metering")
	fs.Float64Var(&m.DeliveriesPerConnMinute, "deliveries-per-conn-minute", 1, "deliveries each connection receives per minute it is connected (the connection minutes a delivery carries are the inverse)")
	fs.IntVar(&m.MemoryMB, "memory-mb", 256, "the functions' memory in MB (template.yaml's MemorySize), for the baseline's GB-seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ins = append(ins, fs.Args()...)
	if m.MessageBytes <= 0 || m.DeliveriesPerConnMinute <= 0 || m.MemoryMB <= 0 {
		return errors.New("-message-bytes, -deliveries-per-conn-minute and -memory-mb must be positive")
	}

	input, names, err := readInputs(ins, stdin)
	if err != nil {
		return err
	}
	parsed, err := Parse(bytes.NewReader(input), isKnown)
	if err != nil {
		return fmt.Errorf("%s: %w", names, err)
	}
	if len(parsed.Names) == 0 {
		return fmt.Errorf("%s: no benchmark results", names)
	}
	rep := Build(parsed, m)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}

	if *plots != "" {
		if err := os.MkdirAll(*plots, 0o755); err != nil {
			return err
		}
		for _, pf := range rep.Plots {
			if err := pf.Plot.WritePNG(filepath.Join(*plots, pf.File)); err != nil {
				return fmt.Errorf("plot %s: %w", pf.File, err)
			}
		}
	}
	if *out == "" {
		return nil
	}
	info := DocInfo{Date: *date, Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Commands: parsed.Commands}
	if info.Date == "" {
		info.Date = time.Now().UTC().Format("2006-01-02")
	}
	if len(info.Commands) == 0 {
		for _, c := range cmds {
			info.Commands = append(info.Commands, Command{Line: c})
		}
	}
	if len(info.Commands) == 0 {
		info.Reconstructed = true
		for _, pkg := range parsed.Pkgs {
			info.Commands = append(info.Commands, Command{Line: "go test -run '^$' -bench . " + pkg})
		}
	}
	info.ReportCommand = "go run ./cmd/benchreport -in FILE -out " + filepath.ToSlash(*out)
	if *plots != "" {
		info.ReportCommand += " -plots " + filepath.ToSlash(*plots)
		rel, err := filepath.Rel(filepath.Dir(*out), *plots)
		if err != nil {
			rel = *plots
		}
		info.PlotDir = filepath.ToSlash(rel)
	}
	var doc bytes.Buffer
	if err := rep.WriteDoc(&doc, info); err != nil {
		return err
	}
	if dir := filepath.Dir(*out); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(*out, doc.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s", *out)
	if *plots != "" {
		fmt.Fprintf(stdout, " and its plots in %s", *plots)
	}
	fmt.Fprintln(stdout)
	return nil
}

// readInputs concatenates the named files ("-" is stdin; none: stdin)
// and returns them with a name for errors.
func readInputs(names []string, stdin io.Reader) ([]byte, string, error) {
	if len(names) == 0 {
		names = []string{"-"}
	}
	var all bytes.Buffer
	for _, n := range names {
		var data []byte
		var err error
		if n == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(n)
		}
		if err != nil {
			return nil, "", err
		}
		all.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			all.WriteByte('\n')
		}
	}
	label := strings.Join(names, ", ")
	if label == "-" {
		label = "standard input"
	}
	return all.Bytes(), label, nil
}
