package main

import (
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// WriteTable prints the report's one table: a row per measure, grouped,
// each group headed by what its comparison is.
func (rep *Report) WriteTable(w io.Writer) error {
	header := []string{"measure", "ours", "comparison", "ours ÷ comparison", "note"}
	// A group's heading is a row of one cell, which sets no width.
	var lines [][]string
	for _, g := range rep.Groups {
		lines = append(lines, []string{g.Title + ", vs " + g.Comparison})
		for _, r := range g.Rows {
			lines = append(lines, []string{"  " + r.Name, r.Ours, r.Comp, r.Ratio, r.Note})
		}
	}
	widths := make([]int, len(header))
	for _, l := range append([][]string{header}, lines...) {
		if len(l) == 1 {
			continue
		}
		for i, c := range l {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	row := func(cells []string) {
		if len(cells) == 1 {
			b.WriteString("| " + cells[0] + "\n")
			return
		}
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	row(header)
	b.WriteString("|")
	for _, wd := range widths {
		b.WriteString(strings.Repeat("-", wd+2) + "|")
	}
	b.WriteString("\n")
	for _, l := range lines {
		row(l)
	}
	measured, rows := rep.Measured()
	fmt.Fprintf(&b, "%d of %d rows measured", measured, rows)
	if len(rep.Other) > 0 {
		fmt.Fprintf(&b, "; %d other benchmark results are listed in the document", len(rep.Other))
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// DocInfo is what the document says about the run besides the figures.
type DocInfo struct {
	Date      string
	Cores     int
	GoVersion string
	// Commands are the commands that produced the input; Reconstructed
	// says they were made from its pkg: lines, not recorded.
	Commands      []Command
	Reconstructed bool
	// ReportCommand is how this document was made.
	ReportCommand string
	// PlotDir is the plots' folder relative to the document ("" for none).
	PlotDir string
}

// WriteDoc writes docs/BENCHMARKS.md.
func (rep *Report) WriteDoc(w io.Writer, info DocInfo) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	run := rep.Run

	p("# Benchmarks\n\n")
	p("Measured on %s by `make bench`, on the machine below. Every figure in this file comes from that one run, "+
		"and it is regenerated whole by the next: do not edit it by hand. "+
		"Ratios are ours ÷ the comparison: below 1, ours is smaller (cheaper, faster, lighter). "+
		"A row whose benchmark did not run says %q.\n\n", info.Date, notMeasured)

	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPU | %s |\n", cell(orUnknown(run.CPU)))
	p("| OS/architecture | %s/%s |\n", cell(orUnknown(run.GOOS)), cell(orUnknown(run.GOARCH)))
	p("| cores | %d |\n", info.Cores)
	if procs := run.procs(); procs != "" {
		p("| GOMAXPROCS | %s |\n", procs)
	}
	p("| Go | %s |\n\n", cell(info.GoVersion))

	p("## Commands\n\n```sh\nmake bench\n```\n\n")
	if info.Reconstructed {
		p("runs one `go test` per package (reconstructed from the `pkg:` lines of the output; the exact flags were not recorded):\n\n")
	} else {
		p("runs, in this order, each from the repository's root:\n\n")
	}
	p("```sh\n")
	for _, c := range info.Commands {
		p("%s\n", c.Line)
		if c.Done && c.Exit != 0 {
			p("# ^ failed (exit status %d): the rows of what it did not print say %q\n", c.Exit, notMeasured)
		}
	}
	if info.ReportCommand != "" {
		p("%s\n", info.ReportCommand)
	}
	p("```\n\n")
	for _, c := range info.Commands {
		if strings.Contains(c.Line, "scripts/dynamodb-local.sh run") {
			p("`scripts/dynamodb-local.sh run` starts DynamoDB Local on a free port of 127.0.0.1 for the command it wraps, then stops it.\n\n")
			break
		}
	}

	p("## Results\n\n")
	for _, g := range rep.Groups {
		p("### %s\n\n", g.Title)
		p("%s; compared with %s.", upperFirst(g.Unit), g.Comparison)
		for _, n := range g.Notes {
			p(" %s", n)
		}
		p("\n\n")
		p("| | ours | %s | ours ÷ comparison | note |\n|---|---|---|---|---|\n", cell(g.Comparison))
		for _, r := range g.Rows {
			note := r.Note
			if r.Detail != "" {
				if note != "" {
					note += "; "
				}
				note += r.Detail
			}
			p("| %s | %s | %s | %s | %s |\n", cell(r.Name), cell(r.Ours), cell(r.Comp), cell(r.Ratio), cell(note))
		}
		p("\n")
		if g.Plot != "" && info.PlotDir != "" {
			for _, pf := range rep.Plots {
				if pf.File == g.Plot {
					p("![%s](%s)\n\n", pf.Alt, path.Join(info.PlotDir, pf.File))
				}
			}
		}
	}

	rep.writeCostModel(&b, info)

	if len(rep.Other) > 0 {
		p("## Other results\n\nBenchmarks in the output that no row above reads, as printed:\n\n")
		for _, r := range rep.Other {
			var parts []string
			for _, u := range r.Units {
				v, _ := r.Metric(u)
				parts = append(parts, fmtNum(v)+" "+u)
			}
			p("- `%s`: %s\n", r.Name, strings.Join(parts, ", "))
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (rep *Report) writeCostModel(b *strings.Builder, info DocInfo) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	m := rep.Model
	p("## Cost model\n\n")
	p("The cost of one GLOBAL message to every connection of a table of N connections, per million deliveries (a delivery is a recipient reached):\n\n")
	p("- **DynamoDB**: the read and write capacity units the message consumed in `BenchmarkDynamoDBWork/{ours,scan}/GLOBAL-N`, billed as on-demand read and write request units.\n")
	p("- **Lambda, ours**: the invocations and GB-seconds of `BenchmarkFanOutTime/{inline,async}` at the recipient count nearest to N, scaled linearly to N's deliveries (at least one invocation); the row says when a figure is scaled. That benchmark sends a GROUP message; a GLOBAL one fans out the same way once its recipients are read.\n")
	p("- **Lambda, the baseline**: one invocation of %d MB that lasts as long as its posts take one after another, at the time per post of `BenchmarkFanOutTime/sequential`. "+
		"The Scan's own time is not counted, which flatters the baseline; past 900 s the baseline could not run in one invocation at all.\n", m.MemoryMB)
	p("- **API Gateway messages**: the inbound message and one per delivery, each metered in 32 KB increments (a message of %s here: `-message-bytes`).\n", fmtBytes(float64(m.MessageBytes)))
	p("- **API Gateway connection minutes**: each connection is assumed to receive %s per minute it is connected (`-deliveries-per-conn-minute`), so a delivery carries %s.\n",
		plural(m.DeliveriesPerConnMinute, "delivery", "deliveries"), plural(1/m.DeliveriesPerConnMinute, "connection minute", "connection minutes"))
	p("- **The floor** is API Gateway's messages and connection minutes: every design that delivers through API Gateway pays them, whatever it does in between.\n\n")
	p("Prices, US East (N. Virginia), pay-as-you-go, first tier, free tier left out, read on %s (they live in one table, `Prices` in cmd/benchreport/prices.go):\n\n", pricesRead)
	p("| item | price | source | note |\n|---|---|---|---|\n")
	for _, pr := range Prices {
		per := fmtNum(pr.Per) + " " + pr.Unit
		if pr.Per == 1 {
			per = pr.Unit
		}
		p("| %s | $%s per %s | %s | %s |\n", cell(pr.Item), trimZeros(fmt.Sprintf("%.10f", pr.Dollars)), cell(per), pr.Source, cell(pr.Note))
	}
	p("\nAWS's pricing pages render their rate tables in the browser; the figures were checked against their worked examples and these other sources:\n\n")
	for _, s := range priceSources {
		p("- %s\n", s)
	}
	p("\n")
}

// cell makes s safe in a markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// plural formats v with the noun that goes with it: 1 delivery, 2 deliveries.
func plural(v float64, one, many string) string {
	if v == 1 {
		return "1 " + one
	}
	return fmtNum(v) + " " + many
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown (no such header line in the output)"
	}
	return s
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}
