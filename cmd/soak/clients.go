package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/protocol"
)

// Client behaviour.
const (
	dialTimeout    = 10 * time.Second
	writeTimeout   = 5 * time.Second
	readLimit      = 1 << 20
	senders        = 8   // goroutines writing the traffic
	directShare    = 0.1 // of the non-GLOBAL messages
	maxRamp        = 2 * time.Second
	progressPeriod = 15 * time.Second
)

// With connect auth, every subprotocolEvery-th slot offers its token as a
// browser does (the subprotocol bearer.<token>), the others in an
// Authorization header.
const subprotocolEvery = 4

// childSpec is what the gateway's process sends the clients' process, as
// one JSON line on its stdin (which then stays open: its end means abort).
type childSpec struct {
	URL    string `json:"url"`
	Token  string `json:"token"`
	Config Config `json:"config"`
}

// clientsMain is the clients' process: it reads its spec on stdin, runs
// the fleet and writes its report on stdout as JSON.
func clientsMain(stdin io.Reader, stdout, stderr io.Writer) int {
	in := bufio.NewReader(stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(stderr, "soak clients: read the spec: %v\n", err)
		return 1
	}
	var spec childSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		fmt.Fprintf(stderr, "soak clients: decode the spec: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, in) // the parent closes stdin when it gives up
		cancel()
	}()
	rep, err := runFleet(ctx, spec, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "soak clients: %v\n", err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		fmt.Fprintf(stderr, "soak clients: write the report: %v\n", err)
		return 1
	}
	return 0
}

// clientReport is what the clients saw and the judgement of it.
type clientReport struct {
	Verdict      verdict `json:"verdict"`
	Deliveries   int64   `json:"deliveries"`
	Misdelivered int64   `json:"misdelivered"`
	Unparsed     int64   `json:"unparsed"`
	// Latency percentiles of the EVENTs read on time (LateReads excluded).
	LatencyP50 time.Duration `json:"latencyP50"`
	LatencyP99 time.Duration `json:"latencyP99"`
	LatencyMax time.Duration `json:"latencyMax"`
	LateReads  int64         `json:"lateReads"`
	// EarlyEvents came on a connection before its IDENTIFY answer (off)
	// or its who-am-I answer (required).
	EarlyEvents    int64    `json:"earlyEvents"`
	Sent           [3]int64 `json:"sent"`
	SendFailed     int64    `json:"sendFailed"`
	NotSent        int64    `json:"notSent"`
	Pongs          int64    `json:"pongs"`
	TargetNotFound int64    `json:"targetNotFound"`

	Sessions       int64 `json:"sessions"`
	Reconnects     int64 `json:"reconnects"`
	ConnectFailed  int64 `json:"connectFailed"`
	IdentifyFailed int64 `json:"identifyFailed"`
	// ConnectError is the first dial or IDENTIFY failure.
	ConnectError   string `json:"connectError,omitempty"`
	Closes         int64  `json:"closes"`
	Drops          int64  `json:"drops"`
	Freezes        int64  `json:"freezes"`
	FreezesSwept   int64  `json:"freezesSwept"`
	FreezesCut     int64  `json:"freezesCut"`
	Anonymous      int64  `json:"anonymous"`
	AnonymousSwept int64  `json:"anonymousSwept"`
	FinalClean     int64  `json:"finalClean"`
	FinalAbrupt    int64  `json:"finalAbrupt"`
	Seen4008       int64  `json:"seen4008"`
	Seen4004       int64  `json:"seen4004"`

	// With connect auth (required). SubprotocolSessions are the sessions
	// whose handshake offered the token as the subprotocol bearer.<token>
	// (the others had it in an Authorization header). Anonymous counts
	// handshakes without credentials there: AnonymousRefused of them were
	// refused with 401, AnonymousOther counts the other outcomes by what
	// happened. HandshakeRefused counts the refused handshakes with
	// credentials, by HTTP status.
	SubprotocolSessions int64            `json:"subprotocolSessions"`
	AnonymousRefused    int64            `json:"anonymousRefused"`
	AnonymousOther      map[string]int64 `json:"anonymousOther,omitempty"`
	HandshakeRefused    map[string]int64 `json:"handshakeRefused,omitempty"`

	// Unexpected counts server closes of live connections, by how.
	Unexpected    map[string]int64 `json:"unexpected,omitempty"`
	ErrorCodes    map[string]int64 `json:"errorCodes,omitempty"`
	GatewayErrors map[string]int64 `json:"gatewayErrors,omitempty"`
}

// counters are the fleet's running counts.
type counters struct {
	deliveries, misdelivered, unparsed, late, early atomic.Int64
	sent                                            [3]atomic.Int64
	sendFailed, notSent, pongs, targetNotFound      atomic.Int64
	sessions, reconnects                            atomic.Int64
	connectFailed, identifyFailed                   atomic.Int64
	closes, drops, freezes, freezesSwept            atomic.Int64
	freezesCut, anonymous, anonymousSwept           atomic.Int64
	anonymousRefused, subprotocolSessions           atomic.Int64
	finalClean, finalAbrupt, seen4008, seen4004     atomic.Int64

	mu               sync.Mutex
	connectError     string
	unexpected       map[string]int64
	errorCodes       map[string]int64
	gatewayErrors    map[string]int64
	anonymousOther   map[string]int64
	handshakeRefused map[string]int64
}

// firstError keeps the first connection failure, for the report.
func (c *counters) firstError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connectError == "" {
		c.connectError = err.Error()
	}
}

func (c *counters) add(m *map[string]int64, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[key]++
}

// fleet is every client of the soak.
type fleet struct {
	cfg    Config
	url    string
	token  string
	groups []string
	start  time.Time
	// quiet ends at Duration (no new message or fault); over at
	// Duration+Grace (every client closes) or when the soak is aborted.
	quiet context.Context
	over  context.Context
	tally tally
	live  liveSet
	n     counters
}

// since returns nanoseconds since the fleet started.
func (f *fleet) since() int64 { return int64(time.Since(f.start)) }

// runFleet runs the clients and judges what they saw.
func runFleet(ctx context.Context, spec childSpec, progress io.Writer) (clientReport, error) {
	cfg := spec.Config
	if err := cfg.validate(); err != nil {
		return clientReport{}, err
	}
	f := &fleet{cfg: cfg, url: spec.URL, token: spec.Token, start: time.Now()}
	for g := range cfg.Groups {
		f.groups = append(f.groups, fmt.Sprintf("g%03d", g))
	}
	quiet, cancelQuiet := context.WithDeadline(ctx, f.start.Add(cfg.Duration))
	defer cancelQuiet()
	over, cancelOver := context.WithDeadline(ctx, f.start.Add(cfg.Duration+cfg.Grace))
	defer cancelOver()
	f.quiet, f.over = quiet, over

	var wg sync.WaitGroup
	for i := range cfg.Connections {
		wg.Go(func() { f.slot(i) })
	}
	wg.Go(f.traffic)
	stopProgress := make(chan struct{})
	go f.report(progress, stopProgress)
	wg.Wait()
	close(stopProgress)
	if err := ctx.Err(); err != nil {
		return clientReport{}, fmt.Errorf("aborted: %w", err)
	}
	return f.judge(), nil
}

// report prints progress until stop is closed.
func (f *fleet) report(w io.Writer, stop <-chan struct{}) {
	t := time.NewTicker(progressPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var sent int64
		for i := range f.n.sent {
			sent += f.n.sent[i].Load()
		}
		fmt.Fprintf(w, "soak: %4.0fs  %d identified  %d sent  %d delivered  %d reconnects\n",
			time.Since(f.start).Seconds(), f.live.len(), sent, f.n.deliveries.Load(), f.n.reconnects.Load())
	}
}

// slot runs one connection after another for a client, until the end.
func (f *fleet) slot(i int) {
	rng := rand.New(rand.NewPCG(f.cfg.Seed, uint64(i)+1))
	group := int32(i % f.cfg.Groups)
	ramp := min(maxRamp, f.cfg.Duration/4)
	if !sleep(f.over, ramp*time.Duration(i)/time.Duration(f.cfg.Connections)) {
		return
	}
	identified := false
	for f.over.Err() == nil {
		s, err := f.connect(i, group)
		if err != nil {
			f.n.firstError(err)
			if !sleep(f.over, reconnectDelay(rng)) {
				return
			}
			continue
		}
		if identified {
			f.n.reconnects.Add(1)
		}
		identified = true
		f.hold(s, rng)
		if !sleep(f.over, reconnectDelay(rng)) {
			return
		}
		if f.quiet.Err() == nil && rng.Float64() < f.cfg.AnonymousShare {
			if f.cfg.authAtConnect() {
				f.anonymousHandshake(group)
			} else {
				f.anonymous()
			}
		}
	}
}

// reconnectDelay is the pause before a client connects again.
func reconnectDelay(rng *rand.Rand) time.Duration {
	return 50*time.Millisecond + time.Duration(rng.Int64N(int64(450*time.Millisecond)))
}

// sleep waits d, or less if ctx ends first: false then.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connect opens slot's connection in group, learns its identity and
// starts the session's reader and pinger. Off: it dials anonymously and
// IDENTIFYs with the token. Required: the handshake carries the token and
// the group, and a tokenless IDENTIFY ("who am I") returns the service id.
func (f *fleet) connect(slot int, group int32) (*session, error) {
	ctx, cancel := context.WithTimeout(f.over, dialTimeout)
	defer cancel()
	auth := f.cfg.authAtConnect()
	viaSubprotocol := auth && slot%subprotocolEvery == subprotocolEvery-1
	var c *websocket.Conn
	var err error
	if auth {
		c, err = f.dialAuth(ctx, group, viaSubprotocol)
	} else if c, _, err = websocket.Dial(ctx, f.url, nil); err != nil {
		err = fmt.Errorf("dial: %w", err)
	}
	if err != nil {
		f.n.connectFailed.Add(1)
		return nil, err
	}
	// With connect auth the connection is a member of its group from the
	// handshake: $connect recorded it before the 101 came.
	memberAt := f.since()
	c.SetReadLimit(readLimit)
	hello, what := `{"op":1,"id":"hello","data":{"token":`+strconv.Quote(f.token)+`,"group":"`+f.groups[group]+`"}}`, "IDENTIFY"
	if auth {
		hello, what = `{"op":1,"id":"who"}`, "who am I"
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		c.CloseNow()
		f.n.identifyFailed.Add(1)
		return nil, fmt.Errorf("write %s: %w", what, err)
	}
	id, early, err := f.awaitIdentified(ctx, c, what)
	if err == nil && auth && id.Group != f.groups[group] {
		err = fmt.Errorf("who am I: group %q, want %q", id.Group, f.groups[group])
	}
	if err != nil {
		c.CloseNow()
		f.n.identifyFailed.Add(1)
		return nil, err
	}
	if !auth {
		memberAt = f.since() // a member once the IDENTIFY answer is read
	}
	s := &session{
		f: f, conn: c, sid: id.ID, group: group, ping: time.Duration(id.Ping) * time.Millisecond,
		identifiedAt: memberAt, endAt: math.MaxInt64, done: make(chan struct{}),
	}
	f.tally.addSession(s)
	if viaSubprotocol {
		f.n.subprotocolSessions.Add(1)
	}
	f.n.early.Add(int64(len(early)))
	for _, b := range early {
		s.handle(b, false)
	}
	f.live.add(s)
	f.n.sessions.Add(1)
	go s.read()
	go s.pinger()
	return s, nil
}

// dialAuth opens a connection whose handshake carries the token and the
// group (in the query string): the token as an Authorization header, or,
// viaSubprotocol, offered as a browser does beside mastersocket, which the
// server must select. A refusal is counted by its HTTP status.
func (f *fleet) dialAuth(ctx context.Context, group int32, viaSubprotocol bool) (*websocket.Conn, error) {
	opts := &websocket.DialOptions{}
	if viaSubprotocol {
		opts.Subprotocols = []string{"mastersocket", "bearer." + f.token}
	} else {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + f.token}}
	}
	c, resp, err := websocket.Dial(ctx, f.url+"?group="+f.groups[group], opts)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			f.n.add(&f.n.handshakeRefused, fmt.Sprintf("HTTP %d", resp.StatusCode))
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	if p := c.Subprotocol(); viaSubprotocol && p != "mastersocket" {
		c.CloseNow()
		if strings.HasPrefix(p, "bearer.") {
			p = "bearer.<token>" // the report does not show the token
		}
		return nil, fmt.Errorf("dial: the server selected the subprotocol %q, want mastersocket (a browser fails the handshake)", p)
	}
	return c, nil
}

// awaitIdentified reads until the answer to the IDENTIFY (what names it)
// and returns it, with the frames read before it: EVENTs may come first,
// since the connection is a member as soon as the store has its identity
// (at once with connect auth), before its answer travels back as the
// route response.
func (f *fleet) awaitIdentified(ctx context.Context, c *websocket.Conn, what string) (protocol.IdentifiedData, [][]byte, error) {
	var early [][]byte
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return protocol.IdentifiedData{}, nil, fmt.Errorf("read the %s answer: %w", what, err)
		}
		var fr inFrame
		if err := json.Unmarshal(b, &fr); err != nil {
			return protocol.IdentifiedData{}, nil, fmt.Errorf("%s answered %s: %w", what, b, err)
		}
		switch {
		case fr.Op != nil && *fr.Op == protocol.OpIdentify:
			var id protocol.IdentifiedData
			if json.Unmarshal(fr.Data, &id) != nil || id.ID == "" || id.Ping <= 0 {
				return protocol.IdentifiedData{}, nil, fmt.Errorf("%s answered %s", what, b)
			}
			return id, early, nil
		case fr.Op != nil && *fr.Op == protocol.OpEvent:
			early = append(early, b)
		default:
			if fr.Op != nil && *fr.Op == protocol.OpDisconnect && disconnectCode(fr.Data) == protocol.CodeIdentifyFailed {
				f.n.seen4004.Add(1)
			}
			return protocol.IdentifiedData{}, nil, fmt.Errorf("%s answered %s", what, b)
		}
	}
}

// hold keeps a session until its fault, the server closing it, or the end.
func (f *fleet) hold(s *session, rng *rand.Rand) {
	defer s.conn.CloseNow()
	var fault <-chan time.Time
	if f.cfg.Churn > 0 {
		wait := time.Duration(rng.ExpFloat64() * float64(time.Minute) / f.cfg.Churn)
		if dl, _ := f.quiet.Deadline(); time.Now().Add(wait).Before(dl) {
			t := time.NewTimer(wait)
			defer t.Stop()
			fault = t.C
		}
	}
	select {
	case <-s.done: // the server closed it; the reader counted how
	case <-fault:
		switch p := rng.Float64(); {
		case p < 0.4:
			if f.leave(s, true) {
				f.n.closes.Add(1)
			}
		case p < 0.8:
			if f.leave(s, false) {
				f.n.drops.Add(1)
			}
		default:
			f.freeze(s, rng)
		}
	case <-f.over.Done():
		clean := rng.IntN(2) == 0
		if f.leave(s, clean) {
			if clean {
				f.n.finalClean.Add(1)
			} else {
				f.n.finalAbrupt.Add(1)
			}
		}
	}
}

// leave closes a live session, with a close frame or abruptly (no close
// frame, just the TCP connection closed), and waits for its reader; false
// if the session was no longer live.
func (f *fleet) leave(s *session, clean bool) bool {
	if !s.stop(stateLeaving) {
		<-s.done
		return false
	}
	if clean {
		go s.conn.Close(websocket.StatusNormalClosure, "soak")
	} else {
		s.conn.CloseNow()
	}
	select {
	case <-s.done:
	case <-time.After(2 * dialTimeout):
		s.conn.CloseNow()
		<-s.done
	}
	return true
}

// freeze stops reading and writing on a live session, its TCP connection
// open, for longer than the sweeper takes to find it silent: twice the
// ping interval, two sweep intervals and up to 3 s more. Then it reads on
// (what came meanwhile, DISCONNECT 4008, the close) until the connection
// ends.
func (f *fleet) freeze(s *session, rng *rand.Rand) {
	if !s.stop(stateFrozen) {
		return
	}
	f.n.freezes.Add(1)
	d := 2*s.ping + 2*f.cfg.SweepEvery + time.Duration(rng.Int64N(int64(3*time.Second)))
	cut := !sleep(f.over, d)
	close(s.thaw)
	if cut {
		f.n.freezesCut.Add(1)
		s.conn.CloseNow()
		<-s.done
		return
	}
	select {
	case <-s.done:
	case <-time.After(2*f.cfg.SweepEvery + 5*time.Second):
		s.conn.CloseNow()
		<-s.done
	}
	if s.disconnect == protocol.CodePingTimeout {
		f.n.freezesSwept.Add(1)
	}
}

// anonymous connects without identifying and waits for the sweeper to
// close the connection (DISCONNECT 4004), or gives up.
func (f *fleet) anonymous() {
	f.n.anonymous.Add(1)
	limit := identifyTimeoutSeconds*time.Second + 2*f.cfg.SweepEvery + 5*time.Second
	ctx, cancel := context.WithTimeout(f.over, limit)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.url, nil)
	if err != nil {
		f.n.connectFailed.Add(1)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(readLimit)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var fr inFrame
		if json.Unmarshal(b, &fr) == nil && fr.Op != nil && *fr.Op == protocol.OpDisconnect &&
			disconnectCode(fr.Data) == protocol.CodeIdentifyFailed {
			f.n.seen4004.Add(1)
			f.n.anonymousSwept.Add(1)
		}
	}
}

// anonymousHandshake opens a connection in group without credentials,
// which connect auth must refuse with 401; any other outcome is counted by
// what happened, and fails the soak.
func (f *fleet) anonymousHandshake(group int32) {
	f.n.anonymous.Add(1)
	ctx, cancel := context.WithTimeout(f.over, dialTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, f.url+"?group="+f.groups[group], nil)
	switch {
	case err == nil:
		c.CloseNow()
		f.n.add(&f.n.anonymousOther, "accepted")
	case resp != nil && resp.StatusCode == http.StatusUnauthorized:
		f.n.anonymousRefused.Add(1)
	case resp != nil:
		f.n.add(&f.n.anonymousOther, fmt.Sprintf("HTTP %d", resp.StatusCode))
	default:
		f.n.add(&f.n.anonymousOther, "no HTTP answer: "+err.Error())
	}
}

// traffic sends messages at the configured rates until quiet.
func (f *fleet) traffic() {
	jobs := make(chan uint8, 4096)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(f.cfg.Seed, 1<<32+uint64(w)))
			for k := range jobs {
				if !f.sendOne(k, rng) {
					f.n.notSent.Add(1)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(f.cfg.Seed, 1<<33))
	queue := func(k uint8) {
		select {
		case jobs <- k:
		default: // the senders are behind
			f.n.notSent.Add(1)
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var events, globals int64
	for {
		select {
		case <-f.quiet.Done():
			close(jobs)
			wg.Wait()
			return
		case <-t.C:
		}
		el := time.Since(f.start).Seconds()
		for ; events < int64(el*(f.cfg.Rate-f.cfg.GlobalRate)); events++ {
			if rng.Float64() < directShare {
				queue(kindDirect)
			} else {
				queue(kindGroup)
			}
		}
		for ; globals < int64(el*f.cfg.GlobalRate); globals++ {
			queue(kindGlobal)
		}
	}
}

// sendOne sends one message of kind k from a random live session; false
// if there was no sender (or target) to send it.
func (f *fleet) sendOne(k uint8, rng *rand.Rand) bool {
	s := f.live.pick(rng, nil)
	if s == nil {
		return false
	}
	switch k {
	case kindGroup:
		g := rng.IntN(len(f.groups))
		return s.send(k, int32(g), `{"target":"GROUP","identifier":"`+f.groups[g]+`"}`)
	case kindDirect:
		r := f.live.pick(rng, s)
		if r == nil {
			return false
		}
		return s.send(k, r.idx, `{"target":"DIRECT","identifier":"`+r.sid+`"}`)
	default:
		return s.send(k, -1, `{"target":"GLOBAL"}`)
	}
}

// judge builds the report once every session has ended.
func (f *fleet) judge() clientReport {
	f.tally.mu.Lock()
	defer f.tally.mu.Unlock()
	spans := make([]span, len(f.tally.sessions))
	receipts := make([][]uint32, len(f.tally.sessions))
	var lat []uint32
	for i, s := range f.tally.sessions {
		slices.Sort(s.recv)
		receipts[i] = s.recv
		spans[i] = span{group: s.group, identifiedAt: s.identifiedAt, endAt: s.endAt}
		lat = append(lat, s.lat...)
	}
	slices.Sort(lat)
	us := func(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }
	r := clientReport{
		Verdict:      judge(spans, f.tally.msgs, receipts, f.cfg.Grace),
		Deliveries:   f.n.deliveries.Load(),
		Misdelivered: f.n.misdelivered.Load(),
		Unparsed:     f.n.unparsed.Load(),
		LatencyP50:   us(percentile(lat, 50)),
		LatencyP99:   us(percentile(lat, 99)),
		LatencyMax:   us(percentile(lat, 100)),
		LateReads:    f.n.late.Load(), EarlyEvents: f.n.early.Load(),
		SendFailed: f.n.sendFailed.Load(), NotSent: f.n.notSent.Load(),
		Pongs: f.n.pongs.Load(), TargetNotFound: f.n.targetNotFound.Load(),
		Sessions: f.n.sessions.Load(), SubprotocolSessions: f.n.subprotocolSessions.Load(), Reconnects: f.n.reconnects.Load(),
		ConnectFailed: f.n.connectFailed.Load(), IdentifyFailed: f.n.identifyFailed.Load(), ConnectError: f.n.connectError,
		Closes: f.n.closes.Load(), Drops: f.n.drops.Load(),
		Freezes: f.n.freezes.Load(), FreezesSwept: f.n.freezesSwept.Load(), FreezesCut: f.n.freezesCut.Load(),
		Anonymous: f.n.anonymous.Load(), AnonymousSwept: f.n.anonymousSwept.Load(),
		AnonymousRefused: f.n.anonymousRefused.Load(), AnonymousOther: f.n.anonymousOther, HandshakeRefused: f.n.handshakeRefused,
		FinalClean: f.n.finalClean.Load(), FinalAbrupt: f.n.finalAbrupt.Load(),
		Seen4008: f.n.seen4008.Load(), Seen4004: f.n.seen4004.Load(),
		Unexpected: f.n.unexpected, ErrorCodes: f.n.errorCodes, GatewayErrors: f.n.gatewayErrors,
	}
	for i := range r.Sent {
		r.Sent[i] = f.n.sent[i].Load()
	}
	return r
}

// liveSet holds the identified sessions that are up, to pick senders and
// DIRECT targets from.
type liveSet struct {
	mu   sync.Mutex
	list []*session
	pos  map[*session]int
}

func (l *liveSet) add(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pos == nil {
		l.pos = map[*session]int{}
	}
	l.pos[s] = len(l.list)
	l.list = append(l.list, s)
}

func (l *liveSet) remove(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.pos[s]
	if !ok {
		return
	}
	last := l.list[len(l.list)-1]
	l.list[i], l.pos[last] = last, i
	l.list = l.list[:len(l.list)-1]
	delete(l.pos, s)
}

func (l *liveSet) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

// pick returns a random live session other than not, or nil.
func (l *liveSet) pick(rng *rand.Rand, not *session) *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 4 {
		if len(l.list) == 0 {
			return nil
		}
		if s := l.list[rng.IntN(len(l.list))]; s != not {
			return s
		}
	}
	return nil
}

// sessionState is where a session is in its life.
type sessionState int

const (
	stateLive    sessionState = iota
	stateFrozen               // neither reads nor writes, TCP connection open
	stateLeaving              // its client closes it
	stateGone                 // the server closed it
)

// session is one identified connection.
type session struct {
	f     *fleet
	conn  *websocket.Conn
	idx   int32
	sid   string
	group int32
	ping  time.Duration
	// identifiedAt is when it became a member (span.identifiedAt).
	identifiedAt int64
	done         chan struct{} // closed when the reader returns

	mu    sync.Mutex // orders writes and state changes
	state sessionState
	endAt int64
	thaw  chan struct{} // made by a freeze; the reader waits for it to close

	// Owned by the reader until done is closed.
	recv       []uint32 // seqs of the EVENTs read
	lat        []uint32 // latencies of those read on time, in microseconds
	disconnect protocol.Code
}

// stop ends a live session's usable life: its end is now, it leaves the
// live set and writes stop. False if it was not live.
func (s *session) stop(to sessionState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateLive {
		return false
	}
	s.state, s.endAt = to, s.f.since()
	if to == stateFrozen {
		s.thaw = make(chan struct{})
	}
	s.f.live.remove(s)
	return true
}

// write writes a frame while the session is live.
func (s *session) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, frame)
}

// pinger sends PING at the announced interval while the session is live.
func (s *session) pinger() {
	t := time.NewTicker(s.ping)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.state == stateLive {
			s.write([]byte(`{"op":3}`))
		}
		s.mu.Unlock()
	}
}

// send writes an EVENT of kind k with intent while the session is live,
// and records it; false if the session was not live or the write failed.
func (s *session) send(k uint8, target int32, intent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateLive {
		return false
	}
	now := s.f.since()
	seq := s.f.tally.addMessage(message{sentAt: now, sender: s.idx, target: target, kind: k})
	frame := make([]byte, 0, 128)
	frame = append(frame, `{"op":0,"id":"m`...)
	frame = strconv.AppendUint(frame, uint64(seq), 10)
	frame = append(frame, `","event":"SOAK","data":{"t":`...)
	frame = strconv.AppendInt(frame, now, 10)
	frame = append(frame, `},"intent":`...)
	frame = append(frame, intent...)
	frame = append(frame, '}')
	if err := s.write(frame); err != nil {
		s.f.tally.failMessage(seq)
		s.f.n.sendFailed.Add(1)
		return true // counted as failed, not as not sent
	}
	s.f.n.sent[k].Add(1)
	return true
}

// inFrame is a frame from the server: a protocol frame, or the gateway's
// own error ({"message": "Internal server error", ...}) which has no op.
type inFrame struct {
	ID      string           `json:"id"`
	Op      *protocol.Op     `json:"op"`
	Data    json.RawMessage  `json:"data"`
	Source  *protocol.Source `json:"source"`
	Message string           `json:"message"`
}

func disconnectCode(data json.RawMessage) protocol.Code {
	var d protocol.ErrorData
	if json.Unmarshal(data, &d) != nil {
		return 0
	}
	return d.Code
}

// read reads the session's frames until the connection ends, pausing
// while the session is frozen.
func (s *session) read() {
	defer close(s.done)
	late := false
	for {
		_, b, err := s.conn.Read(context.Background())
		if err != nil {
			s.ended(err)
			return
		}
		s.handle(b, late)
		s.mu.Lock()
		thaw := s.thaw
		s.mu.Unlock()
		if thaw != nil {
			<-thaw
			late = true // what was sent during the freeze: its latency is the freeze's
		}
	}
}

// handle counts one frame.
func (s *session) handle(b []byte, late bool) {
	n := &s.f.n
	var fr inFrame
	if json.Unmarshal(b, &fr) != nil {
		n.unparsed.Add(1)
		return
	}
	if fr.Op == nil {
		n.add(&n.gatewayErrors, fr.Message)
		return
	}
	switch *fr.Op {
	case protocol.OpEvent:
		s.event(&fr, late)
	case protocol.OpPong:
		n.pongs.Add(1)
	case protocol.OpError:
		switch code := disconnectCode(fr.Data); code {
		case protocol.CodeTargetNotFound:
			n.targetNotFound.Add(1)
		default:
			n.add(&n.errorCodes, fmt.Sprintf("%d %s", code, code.Reason()))
		}
	case protocol.OpDisconnect:
		s.disconnect = disconnectCode(fr.Data)
		switch s.disconnect {
		case protocol.CodePingTimeout:
			n.seen4008.Add(1)
		case protocol.CodeIdentifyFailed:
			n.seen4004.Add(1)
		}
	default:
		n.unparsed.Add(1)
	}
}

// event records one EVENT read, and checks that it was meant for this
// session and carries its sender's source.
func (s *session) event(fr *inFrame, late bool) {
	n := &s.f.n
	now := s.f.since()
	n.deliveries.Add(1)
	digits, ok := strings.CutPrefix(fr.ID, "m")
	seq, err := strconv.ParseUint(digits, 10, 32)
	var d struct {
		T int64 `json:"t"`
	}
	if !ok || err != nil || json.Unmarshal(fr.Data, &d) != nil {
		n.unparsed.Add(1)
		return
	}
	s.recv = append(s.recv, uint32(seq))
	if late {
		n.late.Add(1)
	} else {
		s.lat = append(s.lat, uint32(min(max(now-d.T, 0)/1000, math.MaxUint32)))
	}
	m, from, ok := s.f.tally.lookup(seq)
	meant := ok && m.sender != s.idx && fr.Source != nil && fr.Source.ID == from
	switch m.kind {
	case kindGroup:
		meant = meant && m.target == s.group
	case kindDirect:
		meant = meant && m.target == s.idx
	}
	if !meant {
		n.misdelivered.Add(1)
	}
}

// ended records how the connection ended: a server close of a live
// session is unexpected, and ends it.
func (s *session) ended(err error) {
	s.mu.Lock()
	was := s.state
	if was == stateLive {
		s.state, s.endAt = stateGone, s.f.since()
		s.f.live.remove(s)
	}
	s.mu.Unlock()
	if was != stateLive {
		return
	}
	how := "dropped without a close frame"
	if s.disconnect != 0 {
		how = fmt.Sprintf("DISCONNECT %d %s", s.disconnect, s.disconnect.Reason())
	} else if code := websocket.CloseStatus(err); code != -1 {
		how = fmt.Sprintf("close %d", code)
	}
	s.f.n.add(&s.f.n.unexpected, how)
}
