package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// result is everything a soak found.
type result struct {
	Config          Config
	Clients         clientReport
	ConnectionsLeft int
	MembersLeft     int
	PeakMemory      uint64
	PeakMemorySrc   string
	PeakGoroutines  int
	FaultsInjected  int64
	Handshakes      handshakeTotals
	SweepsDuring    sweepTotals
	SweepsFinal     sweepTotals
	Problems        map[string]int64
	DisconnectFn    string
	Elapsed         time.Duration
}

// handshakeTotals are the gateway's counts of handshakes judged by the
// $connect authorizer (connect auth only).
type handshakeTotals struct {
	Allowed, Refused401, Refused403, Failed500 int64
}

// itemsLeft counts the store's items of gone connections: every
// connection item and every membership, after the final sweeps.
func (r *result) itemsLeft() int { return r.ConnectionsLeft + r.MembersLeft }

// failed reports whether the soak found a defect: a lost, duplicated or
// misdelivered delivery, items left, or (connect auth) a handshake judged
// wrongly.
func (r *result) failed() bool {
	v := r.Clients.Verdict
	return v.Lost != 0 || v.Duplicates != 0 || r.itemsLeft() != 0 || r.Clients.Misdelivered != 0 || r.authFailed()
}

// authFailed reports whether, with connect auth, a handshake without
// credentials was not refused with 401, or the authorizer refused one with
// the token (which allows every group and does not expire): 401, 403 or
// 500.
func (r *result) authFailed() bool {
	c := r.Clients
	if !r.Config.authAtConnect() {
		return false
	}
	wrong := c.AnonymousRefused != c.Anonymous || len(c.AnonymousOther) != 0
	for _, status := range []string{"HTTP 401", "HTTP 403", "HTTP 500"} {
		wrong = wrong || c.HandshakeRefused[status] != 0
	}
	return wrong
}

// print writes the figures, the checked ones first, one per line.
func (r *result) print(w io.Writer) {
	c, v := r.Clients, r.Clients.Verdict
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-28s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("deliveries", "%d", c.Deliveries)
	line("lost to live recipients", "%d", v.Lost)
	line("duplicates", "%d", v.Duplicates)
	line("items left", "%d", r.itemsLeft())
	line("latency p50", "%v", roundLatency(c.LatencyP50))
	line("latency p99", "%v", roundLatency(c.LatencyP99))
	line("gateway peak memory", "%.1f MiB", float64(r.PeakMemory)/(1<<20))
	line("gateway peak goroutines", "%d", r.PeakGoroutines)

	line("expected deliveries", "%d (pairs whose sender and recipient stayed up %v after the send)", v.Expected, r.Config.Grace)
	line("in-doubt pairs", "%d, %d of them received (a fault of either end within %v of the send)", v.InDoubt, v.InDoubtReceived, r.Config.Grace)
	line("misdelivered", "%d (wrong recipient or source)", c.Misdelivered)
	line("messages sent", "%d GROUP, %d DIRECT, %d GLOBAL; %d writes failed, %d not sent (no live sender or target)",
		c.Sent[kindGroup], c.Sent[kindDirect], c.Sent[kindGlobal], c.SendFailed, c.NotSent)
	line("latency max", "%v (%d EVENTs read after a freeze are left out of the percentiles)", roundLatency(c.LatencyMax), c.LateReads)
	auth := r.Config.authAtConnect()
	if auth {
		line("early EVENTs", "%d (read before their connection's who-am-I answer: a member from its handshake)", c.EarlyEvents)
		line("connections", "%d identified (%d with the Authorization header, %d with the bearer subprotocol); %d reconnects; %d dial and %d who-am-I failures",
			c.Sessions, c.Sessions-c.SubprotocolSessions, c.SubprotocolSessions, c.Reconnects, c.ConnectFailed, c.IdentifyFailed)
	} else {
		line("early EVENTs", "%d (read before their connection's IDENTIFY answer: a member before its answer arrives)", c.EarlyEvents)
		line("connections", "%d identified; %d reconnects; %d dial and %d IDENTIFY failures",
			c.Sessions, c.Reconnects, c.ConnectFailed, c.IdentifyFailed)
	}
	if c.ConnectError != "" {
		line("first connect failure", "%s", c.ConnectError)
	}
	if auth {
		line("client faults", "%d clean closes, %d abrupt drops, %d freezes (%d closed with 4008, %d cut by the end), %d anonymous handshakes (%d refused with 401)",
			c.Closes, c.Drops, c.Freezes, c.FreezesSwept, c.FreezesCut, c.Anonymous, c.AnonymousRefused)
		other := ""
		if len(c.AnonymousOther) != 0 {
			other = "; other outcomes (each a failure): " + counts(c.AnonymousOther)
		}
		line("anonymous handshakes refused with 401", "%d of %d%s", c.AnonymousRefused, c.Anonymous, other)
		line("token handshakes refused", "%s (401, 403 and 500 are failures)", counts(c.HandshakeRefused))
		h := r.Handshakes
		line("handshakes at the gateway", "%d allowed, %d refused with 401, %d with 403, %d failed with 500", h.Allowed, h.Refused401, h.Refused403, h.Failed500)
	} else {
		line("client faults", "%d clean closes, %d abrupt drops, %d freezes (%d closed with 4008, %d cut by the end), %d anonymous (%d closed with 4004)",
			c.Closes, c.Drops, c.Freezes, c.FreezesSwept, c.FreezesCut, c.Anonymous, c.AnonymousSwept)
	}
	line("final closes", "%d clean, %d abrupt", c.FinalClean, c.FinalAbrupt)
	line("4008 seen by clients", "%d", c.Seen4008)
	line("4004 seen by clients", "%d", c.Seen4004)
	line("unexpected server closes", "%s", counts(c.Unexpected))
	line("$disconnect faults injected", "%d (%s's store removal failed)", r.FaultsInjected, r.DisconnectFn)
	line("sweeps run", "%d during the run (%d gone removed, %d silent closed, %d anonymous closed, %d checks failed); %d final (%d gone removed)",
		r.SweepsDuring.Runs, r.SweepsDuring.Gone, r.SweepsDuring.Silent, r.SweepsDuring.Anonymous, r.SweepsDuring.Failed,
		r.SweepsFinal.Runs, r.SweepsFinal.Gone)
	line("store after the sweeps", "%d connection items, %d memberships", r.ConnectionsLeft, r.MembersLeft)
	line("ERROR frames", "%d TARGET_NOT_FOUND; other: %s", c.TargetNotFound, counts(c.ErrorCodes))
	line("gateway error frames", "%s", counts(c.GatewayErrors))
	line("gateway log problems", "%s (the injected faults log as $disconnect failed, and DISCONNECT with its error)", counts(r.Problems))
	line("PONGs", "%d", c.Pongs)
	line("unparsed frames", "%d", c.Unparsed)
	line("peak memory source", "%s", r.PeakMemorySrc)
	line("settings", "--connect-auth %s --connections %d --groups %d --rate %v --global-rate %v --churn %v --disconnect-faults %v --duration %v --grace %v --sweep-every %v --seed %d",
		r.Config.ConnectAuth, r.Config.Connections, r.Config.Groups, r.Config.Rate, r.Config.GlobalRate, r.Config.Churn, r.Config.DisconnectFaults,
		r.Config.Duration, r.Config.Grace, r.Config.SweepEvery, r.Config.Seed)
	line("run time", "%v", r.Elapsed.Round(100*time.Millisecond))
	for _, s := range v.LostSamples {
		line("lost", "%s", s)
	}
	if r.failed() {
		fmt.Fprintln(w, "FAIL")
	} else {
		fmt.Fprintln(w, "PASS")
	}
}

// counts formats a count by name, sorted by name; "none" when empty.
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}

// roundLatency keeps three significant figures or so.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
