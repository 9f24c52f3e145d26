package main

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// The benchmarks the report knows, by the names their packages give them.
var (
	dynamoCases = []string{"IDENTIFY", "DIRECT-cold", "DIRECT-warm", "GROUP-10", "GROUP-1000",
		"GROUP-1000-whole-table", "GLOBAL-100", "GLOBAL-1000", "GLOBAL-10000", "GLOBAL-100000"}
	fanOutModes   = []string{"inline", "async", "sequential"}
	oursModes     = []string{"inline", "async"}
	handlerOps    = []string{"PING", "DIRECT", "GROUP-10"}
	stormCaches   = []string{"cache-30s", "cache-off"}
	slowBounds    = []int{16, 64, 256}
	costConns     = []int{100, 10000, 100000}
	costPlotConns = []int{100, 1000, 10000, 100000}
)

func dynamoName(design, c string) string { return "BenchmarkDynamoDBWork/" + design + "/" + c }
func fanOutName(mode string, n int) string {
	return fmt.Sprintf("BenchmarkFanOutTime/%s/recipients=%d", mode, n)
}

const (
	coldStartPrefix = "BenchmarkColdStart/"
	coldStartFloor  = coldStartPrefix + "floor"
	localGateway    = "BenchmarkLocalGatewayGroupFanOut/inspector=off"
	localInspected  = "BenchmarkLocalGatewayGroupFanOut/inspector=on"
	sweepCost       = "BenchmarkSweepCost"

	fanOutPlotFile = "fanout-time.png"
	costPlotFile   = "cost-per-delivery.png"
)

// knownNames returns the names of every benchmark the report reads, but
// the cold-start ones, whose function names come from the input.
var knownNames = sync.OnceValue(func() map[string]bool {
	k := map[string]bool{localGateway: true, localInspected: true, sweepCost: true}
	for _, d := range []string{"ours", "scan"} {
		for _, c := range dynamoCases {
			k[dynamoName(d, c)] = true
		}
	}
	for _, m := range fanOutModes {
		for _, n := range fanOutCounts {
			k[fanOutName(m, n)] = true
		}
	}
	for _, op := range handlerOps {
		k["BenchmarkHandlerMessage/"+op] = true
	}
	for _, c := range stormCaches {
		k["BenchmarkReconnectStorm/"+c] = true
	}
	for _, b := range slowBounds {
		k[fmt.Sprintf("BenchmarkGroupFanOutSlowSender/bound=%d", b)] = true
	}
	return k
})

// isKnown says whether the report reads the named benchmark.
func isKnown(name string) bool {
	if rest, ok := strings.CutPrefix(name, coldStartPrefix); ok {
		return rest != "" && !strings.Contains(rest, "/")
	}
	return knownNames()[name]
}

// Group is a part of the table: rows of one kind, against one comparison.
type Group struct {
	Title      string // "DynamoDB work per message"
	Unit       string // what the cells hold
	Comparison string // what the comparison column is
	Rows       []Row
	Notes      []string // how to read it, for the document
	Plot       string   // the file of the plot that goes with it, if any
}

// Row is one line of the table: ours, the comparison and ours ÷ comparison.
type Row struct {
	Name     string
	Ours     string
	Comp     string
	Ratio    string
	Note     string // short, for the terminal and the document
	Detail   string // more, for the document only
	Measured bool
}

const notMeasured = "not measured"

func missingRow(name, what string) Row {
	return Row{Name: name, Ours: notMeasured, Comp: "", Ratio: "", Note: what + " absent"}
}

// Report is everything the table, the document and the plots show.
type Report struct {
	Run    *Run
	Model  Model
	Groups []Group
	Other  []*Result // benchmarks parsed that no row reads
	Plots  []PlotFile
}

// PlotFile is a plot and the file it is written to.
type PlotFile struct {
	File string // base name, e.g. "fanout-time.png"
	Alt  string
	Plot Plot
}

// Build makes the report's groups and plots from a run.
func Build(run *Run, m Model) *Report {
	rep := &Report{Run: run, Model: m}
	cost, fanOut := costGroup(run, m), fanOutGroup(run)
	cost.Plot, fanOut.Plot = costPlotFile, fanOutPlotFile
	rep.Groups = []Group{
		dynamoGroup(run),
		cost,
		fanOut,
		coldStartGroup(run),
		handlerGroup(run),
		localGatewayGroup(run),
		stormGroup(run),
		sweepGroup(run),
		slowSenderGroup(run),
	}
	for _, name := range run.Names {
		if !isKnown(name) {
			rep.Other = append(rep.Other, run.Results[name])
		}
	}
	rep.Plots = []PlotFile{
		{File: fanOutPlotFile, Alt: "fan-out time against recipients", Plot: fanOutPlot(run)},
		{File: costPlotFile, Alt: "cost per million deliveries against table size", Plot: costPlot(run, m)},
	}
	return rep
}

// Measured counts the rows that were measured.
func (rep *Report) Measured() (measured, rows int) {
	for _, g := range rep.Groups {
		for _, r := range g.Rows {
			rows++
			if r.Measured {
				measured++
			}
		}
	}
	return measured, rows
}

func dynamoGroup(run *Run) Group {
	g := Group{
		Title:      "DynamoDB work per message",
		Unit:       "read and write capacity units consumed per message, as DynamoDB reports them; the ratio weighs them by their on-demand prices (a write costs five reads)",
		Comparison: "a Scan per message",
		Notes: []string{
			"Ours finds recipients through the table's keys and indexes; the baseline finds them with a Scan of the table, as AWS's simple WebSocket chat sample does for every message. Each case is one message on DynamoDB Local; GROUP-1000-whole-table is a group of 1,000 that is every connection of the table.",
		},
	}
	for _, c := range dynamoCases {
		ours, oursText, okO := work(run, "ours", c)
		scan, scanText, okS := work(run, "scan", c)
		if !okO && !okS {
			g.Rows = append(g.Rows, missingRow(c, "BenchmarkDynamoDBWork/{ours,scan}/"+c))
			continue
		}
		row := Row{Name: c, Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if okO {
			row.Ours = oursText
		}
		if okS {
			row.Comp = scanText
		}
		if okO && okS {
			row.Ratio = fmtRatio(ours, scan)
			row.Measured = true
		}
		var notes []string
		oc, okc := run.Get(dynamoName("ours", c), "calls/msg")
		sc, oks := run.Get(dynamoName("scan", c), "calls/msg")
		if okc || oks {
			notes = append(notes, fmt.Sprintf("calls %s vs %s", orDash(oc, okc), orDash(sc, oks)))
		}
		if n, ok := firstMetric(run, "table-conns", dynamoName("ours", c), dynamoName("scan", c)); ok {
			notes = append(notes, "table "+fmtNum(n))
		}
		if n, ok := firstMetric(run, "recipients/msg", dynamoName("ours", c), dynamoName("scan", c)); ok {
			notes = append(notes, "recipients "+fmtNum(n))
		}
		row.Note = strings.Join(notes, ", ")
		g.Rows = append(g.Rows, row)
	}
	return g
}

// work returns the on-demand price of a DynamoDBWork case's units per
// message, and the units as text ("2.5 R + 5 W").
func work(run *Run, design, c string) (float64, string, bool) {
	r := run.Results[dynamoName(design, c)]
	rcu, ok1 := r.Metric("RCU/msg")
	wcu, ok2 := r.Metric("WCU/msg")
	dollars := rcu*price("dynamodb-rru").PerUnit() + wcu*price("dynamodb-wru").PerUnit()
	return dollars, fmtNum(rcu) + " R + " + fmtNum(wcu) + " W", ok1 || ok2
}

func orDash(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmtNum(v)
}

func firstMetric(run *Run, unit string, names ...string) (float64, bool) {
	for _, n := range names {
		if v, ok := run.Get(n, unit); ok {
			return v, true
		}
	}
	return 0, false
}

func costGroup(run *Run, m Model) Group {
	g := Group{
		Title:      "Cost per million deliveries",
		Unit:       "dollars per million deliveries of GLOBAL messages, each to every connection of the table",
		Comparison: "the Scan baseline",
	}
	for _, conns := range costConns {
		su, snote, smiss := m.scanUsage(run, conns)
		scan := m.Cost(su)
		for _, mode := range oursModes {
			name := fmt.Sprintf("%s conns, ours (%s)", fmtNum(float64(conns)), mode)
			ou, onote, omiss := oursUsage(run, mode, conns)
			if omiss != "" {
				g.Rows = append(g.Rows, missingRow(name, omiss))
				continue
			}
			ours := m.Cost(ou)
			total, above := ours.PerMillion(ours.Total()), ours.PerMillion(ours.DynamoDB+ours.Lambda)
			row := Row{Name: name, Ours: fmtDollars(total), Comp: notMeasured, Ratio: "—"}
			row.Note = fmt.Sprintf("floor %s; above it ours %s", fmtDollars(ours.PerMillion(ours.Floor())), fmtDollars(above))
			row.Detail = fmt.Sprintf("ours: DynamoDB %s + Lambda %s per million deliveries; %s RRU + %s WRU, %s invocations, %s GB-s per message (%s)",
				fmtDollars(ours.PerMillion(ours.DynamoDB)), fmtDollars(ours.PerMillion(ours.Lambda)),
				fmtNum(ou.RRU), fmtNum(ou.WRU), fmtNum(ou.Invocations), fmtNum(ou.GBSeconds), onote)
			if smiss == "" {
				scanTotal, scanAbove := scan.PerMillion(scan.Total()), scan.PerMillion(scan.DynamoDB+scan.Lambda)
				row.Comp = fmtDollars(scanTotal)
				row.Ratio = fmtRatio(total, scanTotal)
				row.Measured = true
				row.Note += fmt.Sprintf(", baseline %s (%s)", fmtDollars(scanAbove), fmtRatio(above, scanAbove))
				row.Detail += fmt.Sprintf("; baseline: DynamoDB %s + Lambda %s per million deliveries; %s RRU + %s WRU, %s GB-s per message (%s)",
					fmtDollars(scan.PerMillion(scan.DynamoDB)), fmtDollars(scan.PerMillion(scan.Lambda)),
					fmtNum(su.RRU), fmtNum(su.WRU), fmtNum(su.GBSeconds), snote)
			} else {
				row.Detail += "; " + smiss + " absent"
			}
			g.Rows = append(g.Rows, row)
		}
	}
	return g
}

func fanOutGroup(run *Run) Group {
	g := Group{
		Title:      "Fan-out time",
		Unit:       "seconds from the message to its last delivery",
		Comparison: "sequential posts",
		Notes: []string{
			"inline: the message's own invocation posts to every recipient, FANOUT_LIMIT at a time; async: it hands shares of the recipients to asynchronous invocations of the fan-out function; sequential: one post after another, the naive handler. A sequential figure marked extrapolated is its measured time per post times the recipients.",
		},
	}
	for _, n := range fanOutCounts {
		seq := run.Results[fanOutName("sequential", n)]
		seqS, seqOK := seq.Metric("s/msg")
		comp := notMeasured
		if seqOK {
			comp = fmtSeconds(seqS)
			if x, _ := seq.Metric("extrapolated"); x > 0 {
				comp += " (extrapolated)"
			}
		}
		for _, mode := range oursModes {
			name := fmt.Sprintf("%s recipients, %s", fmtNum(float64(n)), mode)
			r := run.Results[fanOutName(mode, n)]
			s, ok := r.Metric("s/msg")
			if !ok {
				row := missingRow(name, fanOutName(mode, n))
				if seqOK {
					row.Comp = comp
				}
				g.Rows = append(g.Rows, row)
				continue
			}
			row := Row{Name: name, Ours: fmtSeconds(s), Comp: comp, Ratio: "—"}
			if seqOK {
				row.Ratio = fmtRatio(s, seqS)
				row.Measured = true
			}
			var notes []string
			for _, mu := range []struct{ unit, label string }{
				{"delivered/msg", "delivered"}, {"lost/msg", "lost"}, {"invocations/msg", "invocations"}, {"GB-s/msg", "GB-s"},
			} {
				if v, ok := r.Metric(mu.unit); ok {
					notes = append(notes, mu.label+" "+fmtNum(v))
				}
			}
			row.Note = strings.Join(notes, ", ")
			g.Rows = append(g.Rows, row)
		}
	}
	return g
}

func coldStartGroup(run *Run) Group {
	g := Group{
		Title:      "Cold start",
		Unit:       "bootstrap size (linux/arm64, as `make build` builds it) and time from process start to the first answered invocation under the local Runtime API",
		Comparison: "a do-nothing function linking the same SDK clients",
		Notes: []string{
			"The floor is functions/testdata/floor: lambda.Start of a handler that returns nil, which constructs the DynamoDB, API Gateway Management API and Lambda clients from config.LoadDefaultConfig. The time is measured on this machine's GOOS/GOARCH, the median over the benchmark's runs, each a new process answering one event from testdata/ (the AWS endpoints it calls answer at once on 127.0.0.1); it is the part of a cold start that is the binary's, not Lambda's sandbox.",
		},
	}
	floorMs, floorOK := run.Get(coldStartFloor, "ms-to-first-answer")
	var fns []string
	for _, name := range run.Names {
		if fn, ok := strings.CutPrefix(name, coldStartPrefix); ok && name != coldStartFloor && !strings.Contains(fn, "/") {
			fns = append(fns, fn)
		}
	}
	if len(fns) == 0 {
		g.Rows = append(g.Rows, missingRow("functions", "BenchmarkColdStart"))
		return g
	}
	for _, fn := range fns {
		r := run.Results[coldStartPrefix+fn]
		size, okS := r.Metric("bootstrap-bytes")
		floor, okF := r.Metric("floor-bytes")
		if !okF {
			floor, okF = run.Get(coldStartFloor, "bootstrap-bytes")
		}
		row := Row{Name: fn + " size", Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if okS {
			row.Ours = fmtBytes(size)
		}
		if okF {
			row.Comp = fmtBytes(floor)
		}
		if okS && okF {
			row.Ratio = fmtRatio(size, floor)
			row.Measured = true
			row.Note = fmt.Sprintf("+%s over the floor", fmtBytes(size-floor))
		}
		g.Rows = append(g.Rows, row)

		ms, okM := r.Metric("ms-to-first-answer")
		row = Row{Name: fn + " first answer", Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if okM {
			row.Ours = fmtSeconds(ms / 1e3)
		}
		if floorOK {
			row.Comp = fmtSeconds(floorMs / 1e3)
		}
		if okM && floorOK {
			row.Ratio = fmtRatio(ms, floorMs)
			row.Measured = true
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}

// billingIncrement is Lambda's billing granularity, in nanoseconds.
const billingIncrement = 1e6

func handlerGroup(run *Run) Group {
	g := Group{
		Title:      "Handler CPU and allocations per message",
		Unit:       "time, bytes and allocations per message in the message function's handler, its metric document included",
		Comparison: "1 ms, Lambda's billing increment",
	}
	for _, op := range handlerOps {
		r := run.Results["BenchmarkHandlerMessage/"+op]
		ns, ok := r.Metric("ns/op")
		if !ok {
			g.Rows = append(g.Rows, missingRow(op, "BenchmarkHandlerMessage/"+op))
			continue
		}
		row := Row{Name: op, Ours: fmtSeconds(ns / 1e9), Comp: "1 ms", Ratio: fmtRatio(ns, billingIncrement), Measured: true}
		var notes []string
		if b, ok := r.Metric("B/op"); ok {
			notes = append(notes, fmtBytes(b))
		}
		if a, ok := r.Metric("allocs/op"); ok {
			notes = append(notes, fmtNum(a)+" allocs")
		}
		row.Note = strings.Join(notes, ", ")
		g.Rows = append(g.Rows, row)
	}
	return g
}

func localGatewayGroup(run *Run) Group {
	g := Group{
		Title:      "Local gateway under load",
		Unit:       "GROUP fan-out through `make run`'s gateway, functions in process",
		Comparison: "the median latency",
	}
	r := run.Results[localGateway]
	if r == nil {
		g.Rows = append(g.Rows, missingRow("deliveries per second", localGateway))
		return g
	}
	rate, ok := r.Metric("deliveries/s")
	row := Row{Name: "deliveries per second", Ours: notMeasured, Comp: "—", Ratio: "—", Measured: ok}
	if ok {
		row.Ours = fmtNum(rate)
	}
	if cpu, ok := r.Metric("cpu-%"); ok {
		row.Note = "CPU " + fmtNum(cpu) + "% of the machine"
	}
	g.Rows = append(g.Rows, row)
	p50, ok50 := r.Metric("p50-ms")
	for _, q := range []struct{ unit, name string }{{"p99-ms", "p99 latency"}, {"max-ms", "max latency"}} {
		v, ok := r.Metric(q.unit)
		row := Row{Name: q.name, Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if ok {
			row.Ours = fmtSeconds(v / 1e3)
		}
		if ok50 {
			row.Comp = fmtSeconds(p50/1e3) + " (p50)"
		}
		if ok && ok50 {
			row.Ratio = fmtRatio(v, p50)
			row.Measured = true
		}
		g.Rows = append(g.Rows, row)
	}
	// What the inspector page, on by default in `make run`, costs.
	row = Row{Name: "deliveries per second, inspector page on", Ours: notMeasured, Comp: "—", Ratio: "—"}
	if on := run.Results[localInspected]; on != nil {
		if v, ok := on.Metric("deliveries/s"); ok {
			row.Ours = fmtNum(v)
			if rate > 0 {
				row.Comp = fmtNum(rate) + " (off)"
				row.Ratio = fmtRatio(v, rate)
				row.Measured = true
			}
		}
		if cpu, ok := on.Metric("cpu-us/delivery"); ok {
			row.Note = fmtNum(cpu) + " µs of CPU per delivery"
			if off, ok := r.Metric("cpu-us/delivery"); ok {
				row.Note += " (off: " + fmtNum(off) + ")"
			}
		}
	}
	g.Rows = append(g.Rows, row)
	return g
}

func stormGroup(run *Run) Group {
	g := Group{
		Title:      "Reconnect storm",
		Unit:       "1,000 handshakes at once with one token, through the $connect authorizer",
		Comparison: "the authorizer's cache off",
	}
	on, off := run.Results["BenchmarkReconnectStorm/cache-30s"], run.Results["BenchmarkReconnectStorm/cache-off"]
	if on == nil && off == nil {
		g.Rows = append(g.Rows, missingRow("token reads per storm", "BenchmarkReconnectStorm"))
		return g
	}
	for _, q := range []struct{ unit, name string }{
		{"token-reads/storm", "token reads per storm"},
		{"authorizer-invocations/storm", "authorizer invocations"},
		{"ms/storm", "storm duration"},
	} {
		a, okA := on.Metric(q.unit)
		b, okB := off.Metric(q.unit)
		f := fmtNum
		if q.unit == "ms/storm" {
			f = func(v float64) string { return fmtSeconds(v / 1e3) }
		}
		row := Row{Name: q.name, Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if okA {
			row.Ours = f(a)
		}
		if okB {
			row.Comp = f(b)
		}
		if okA && okB {
			row.Ratio = fmtRatio(a, b)
			row.Measured = true
		}
		if q.unit == "ms/storm" {
			if hs, ok := on.Metric("handshakes/s"); ok {
				row.Note = fmtNum(hs) + " handshakes/s with the cache"
			}
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}

func sweepGroup(run *Run) Group {
	g := Group{
		Title:      "Sweep",
		Unit:       "one sweep of 10,000 identified connections on DynamoDB Local",
		Comparison: "the connections swept",
	}
	r := run.Results[sweepCost]
	if r == nil {
		g.Rows = append(g.Rows, missingRow("read capacity per sweep", sweepCost))
		return g
	}
	items, okI := r.Metric("items/sweep")
	for _, q := range []struct{ unit, name string }{
		{"RCU/sweep", "read capacity per sweep"},
		{"Query/sweep", "Query calls per sweep"},
		{"GetConnection/sweep", "GetConnection calls per sweep"},
	} {
		v, ok := r.Metric(q.unit)
		row := Row{Name: q.name, Ours: notMeasured, Comp: notMeasured, Ratio: "—"}
		if ok {
			row.Ours = fmtNum(v)
		}
		if okI {
			row.Comp = fmtNum(items) + " items"
		}
		if ok && okI {
			row.Ratio = fmtRatio(v, items)
			row.Measured = true
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}

func slowSenderGroup(run *Run) Group {
	g := Group{
		Title:      "Fan-out through a slow sender",
		Unit:       "one GROUP message to 1,000 members, every post taking 10 ms, per fan-out bound",
		Comparison: "the ideal, 1,000 × 10 ms ÷ bound",
	}
	for _, b := range slowBounds {
		name := fmt.Sprintf("bound=%d", b)
		r := run.Results["BenchmarkGroupFanOutSlowSender/"+name]
		ms, ok := r.Metric("ms/msg")
		if !ok {
			g.Rows = append(g.Rows, missingRow(name, "BenchmarkGroupFanOutSlowSender/"+name))
			continue
		}
		row := Row{Name: name, Ours: fmtSeconds(ms / 1e3), Comp: notMeasured, Ratio: "—"}
		if ideal, ok := r.Metric("ideal-ms/msg"); ok {
			row.Comp = fmtSeconds(ideal / 1e3)
			row.Ratio = fmtRatio(ms, ideal)
			row.Measured = true
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}

// fanOutPlot draws fan-out time against recipients, a line per mode.
func fanOutPlot(run *Run) Plot {
	p := Plot{
		Title:  "Fan-out time against recipients",
		XLabel: "recipients", YLabel: "seconds to the last delivery",
		LogX: true, LogY: true,
		XFormat: func(v float64) string { return fmtNum(v) },
		YFormat: axisNum,
	}
	for i, mode := range fanOutModes {
		s := Series{Label: mode, Color: palette[i]}
		extrapolated := false
		for _, n := range fanOutCounts {
			r := run.Results[fanOutName(mode, n)]
			v, ok := r.Metric("s/msg")
			if !ok || v <= 0 {
				continue
			}
			x, _ := r.Metric("extrapolated")
			extrapolated = extrapolated || x > 0
			s.Points = append(s.Points, Point{X: float64(n), Y: v, Hollow: x > 0})
		}
		if extrapolated {
			s.Label += " (hollow: extrapolated)"
		}
		p.Series = append(p.Series, s)
	}
	for _, n := range fanOutCounts {
		p.XTicks = append(p.XTicks, float64(n))
	}
	return p
}

// costPlot draws what a design adds to the floor, per million deliveries,
// against table size: ours in each mode and the Scan baseline, with the
// floor itself for scale.
func costPlot(run *Run, m Model) Plot {
	p := Plot{
		Title:  "Cost per million deliveries against table size (GLOBAL to all)",
		XLabel: "connections in the table", YLabel: "dollars per million deliveries: DynamoDB + Lambda, and the floor",
		LogX: true, LogY: true,
		XFormat: func(v float64) string { return fmtNum(v) },
		YFormat: func(v float64) string { return "$" + axisNum(v) },
	}
	var floor, scan Series
	floor = Series{Label: "floor: API Gateway (every design)", Color: palette[3], Dashed: true}
	scan = Series{Label: "Scan baseline", Color: palette[2]}
	for i, mode := range oursModes {
		s := Series{Label: "ours (" + mode + ")", Color: palette[i]}
		for _, conns := range costPlotConns {
			u, _, missing := oursUsage(run, mode, conns)
			if missing != "" {
				continue
			}
			c := m.Cost(u)
			s.Points = append(s.Points, Point{X: float64(conns), Y: c.PerMillion(c.DynamoDB + c.Lambda)})
		}
		p.Series = append(p.Series, s)
	}
	for _, conns := range costPlotConns {
		u, _, missing := m.scanUsage(run, conns)
		if missing == "" {
			c := m.Cost(u)
			scan.Points = append(scan.Points, Point{X: float64(conns), Y: c.PerMillion(c.DynamoDB + c.Lambda)})
		}
		if du, ok := dynamoUsage(run, "ours", conns); ok {
			c := m.Cost(du)
			floor.Points = append(floor.Points, Point{X: float64(conns), Y: c.PerMillion(c.Floor())})
		} else if du, ok := dynamoUsage(run, "scan", conns); ok {
			c := m.Cost(du)
			floor.Points = append(floor.Points, Point{X: float64(conns), Y: c.PerMillion(c.Floor())})
		}
	}
	p.Series = append(p.Series, scan, floor)
	for _, n := range costPlotConns {
		p.XTicks = append(p.XTicks, float64(n))
	}
	return p
}

// axisNum formats an axis value: 0.001, 0.5, 3, 100, 10k, 1M.
func axisNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZeros(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 1:
		return trimZeros(fmt.Sprintf("%.2f", v))
	case v == 0:
		return "0"
	default:
		return trimZeros(fmt.Sprintf("%.*f", decimalsFor(a)-2, v))
	}
}
