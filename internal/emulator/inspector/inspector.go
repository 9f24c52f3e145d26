// Package inspector is the local gateway's inspector page: served at
// http://ADDR/ on the gateway's own port, it shows the live connections
// (connection id, service id, group, connected since, last active), the
// groups with their members, a live log of the messages clients send and
// of every frame the gateway sends them (op, target, event, size, status),
// the errors (ERROR and DISCONNECT frames with their code, failed
// invocations), and has a form to send a frame as any connection or as
// the server.
//
// It watches a gateway through its Observer hook (gateway.Config.Observer)
// and reads what it sees as mastersocket's wire protocol: a connection's
// service id and group come from its $connect authorizer's context
// (serviceId, group) or from the IDENTIFY answer the gateway sends it, so
// that it works with every store and with functions run as binaries.
//
// Observe never blocks the gateway: the inspector keeps a bounded ring of
// recent entries, and pushes to each browser through a bounded buffer;
// what a slow browser cannot take is dropped, counted and shown.
package inspector

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/protocol"
)

// Defaults of Config.
const (
	DefaultLogSize    = 500
	DefaultErrorSize  = 100
	DefaultStreamSize = 256
	// MaxBodyShown is how much of a frame's body an entry keeps.
	MaxBodyShown = 2 << 10
	// MaxFieldShown is how much of a frame's event name, message id or
	// target, or of an invocation's error, an entry keeps: a client may send
	// long ones, and the ring holds hundreds of entries.
	MaxFieldShown = 256
)

// PathPrefix is the inspector's reserved path prefix on the gateway's port:
// its script, style sheet, live stream and form post live under it. The
// page itself is at "/".
const PathPrefix = "/_inspector/"

// Gateway is what the inspector needs of the gateway it watches.
type Gateway interface {
	// Addr is the address the gateway listens on.
	Addr() string
	// Inject hands a message to the routes as if the connection had sent it.
	Inject(ctx context.Context, connectionID string, msg []byte) error
	// ManagementEndpoint and ManagementTransport reach the @connections API.
	ManagementEndpoint() string
	ManagementTransport() http.RoundTripper
}

var _ Gateway = (*gateway.Gateway)(nil)

// Config describes an inspector. Zero fields mean their documented defaults.
type Config struct {
	// Redact is applied to every body the page shows; default
	// gateway.RedactSecrets. Give it the gateway's Config.Redact.
	Redact func(string) string
	// LogSize is how many recent log entries are kept; default 500.
	LogSize int
	// ErrorSize is how many recent errors are kept, apart from the log;
	// default 100.
	ErrorSize int
	// StreamSize bounds the entries waiting for one browser; past it they
	// are dropped and counted. Default 256.
	StreamSize int
}

// Inspector watches a gateway and serves the page. Create it with New, give
// it to gateway.Config.Observer (and its Handler to Home and to APIs under
// PathPrefix), then Attach the gateway.
type Inspector struct {
	cfg Config

	// run names this inspector among the runs of the gateway, so that a
	// page left open across a restart knows its log is of another run.
	run string

	mu      sync.Mutex
	gw      Gateway
	conns   map[string]*connState
	log     ring
	errs    ring
	seq     uint64 // of the last entry
	version uint64 // of the connections' state, bumped on every change
	subs    map[*subscriber]struct{}
	closed  bool
	done    chan struct{} // closed by Close or the gateway's shutdown

	last atomic.Pointer[decoded] // the last body decoded
}

// decoded is a body as Observe read it; its frame is read-only.
type decoded struct {
	body  string
	frame *protocol.Frame
	shown string
}

// connState is what the inspector knows of an open connection.
type connState struct {
	ID          string
	ServiceID   string
	Group       string
	SourceIP    string
	UserAgent   string
	ConnectedAt time.Time
	LastActive  time.Time // the last message from the client
}

// Entry is one line of the live log or of the errors view.
type Entry struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"-"`
	// Clock is Time as the page shows it, 15:04:05.000.
	Clock string `json:"time"`
	// Dir is "in" (from a client), "out" (to a client), or "conn" for a
	// connection opening or closing.
	Dir     string `json:"dir"`
	Conn    string `json:"conn"`
	Service string `json:"service"`
	Group   string `json:"group"`
	// Op is the op's name (EVENT, REPLY, IDENTIFY...), or what happened:
	// CONNECT, DISCONNECT, DELETE, INVOKE FAILED, or GATEWAY for the
	// gateway's own messages.
	Op string `json:"op"`
	// Target is GLOBAL, GROUP:name or DIRECT:id for EVENT and REPLY.
	Target string `json:"target"`
	Event  string `json:"event"`
	ID     string `json:"id"`
	Size   int    `json:"size"`
	// Via is how a frame went out: route response, @connections POST,
	// gateway; "inspector" for a message handed in from the page.
	Via string `json:"via"`
	// Status is delivered, gone 410, throttled 429, too large 413,
	// dropped (slow client), received, or an error's code and reason.
	Status string `json:"status"`
	// Error marks an entry of the errors view.
	Error bool   `json:"error"`
	Body  string `json:"body"`
}

// New returns an inspector that watches nothing yet.
func New(cfg Config) *Inspector {
	if cfg.Redact == nil {
		cfg.Redact = gateway.RedactSecrets
	}
	if cfg.LogSize <= 0 {
		cfg.LogSize = DefaultLogSize
	}
	if cfg.ErrorSize <= 0 {
		cfg.ErrorSize = DefaultErrorSize
	}
	if cfg.StreamSize <= 0 {
		cfg.StreamSize = DefaultStreamSize
	}
	return &Inspector{
		cfg:   cfg,
		run:   strconv.FormatInt(time.Now().UnixNano(), 36),
		conns: make(map[string]*connState),
		log:   ring{max: cfg.LogSize},
		errs:  ring{max: cfg.ErrorSize},
		subs:  make(map[*subscriber]struct{}),
		done:  make(chan struct{}),
	}
}

// Attach gives the inspector the gateway it watches, which its form sends
// through. Until then the page answers 503.
func (in *Inspector) Attach(gw Gateway) {
	in.mu.Lock()
	in.gw = gw
	in.mu.Unlock()
}

// Close ends the live streams to browsers; the page keeps answering. It is
// idempotent, and the gateway's shutdown does it too.
func (in *Inspector) Close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed {
		in.closed = true
		close(in.done)
	}
}

// ring keeps the last max entries.
type ring struct {
	max     int
	entries []Entry
	start   int // of the oldest, once full
}

func (r *ring) add(e Entry) {
	if len(r.entries) < r.max {
		r.entries = append(r.entries, e)
		return
	}
	r.entries[r.start] = e
	r.start = (r.start + 1) % r.max
}

// all returns the entries, oldest first.
func (r *ring) all() []Entry {
	out := make([]Entry, 0, len(r.entries))
	out = append(out, r.entries[r.start:]...)
	return append(out, r.entries[:r.start]...)
}

// Observe takes what the gateway reports. It never blocks: it holds the
// inspector's lock for as long as it takes to record an entry and hand it
// to each browser's buffer.
func (in *Inspector) Observe(o gateway.Observation) {
	if o.Kind == gateway.ObservedShutdown {
		in.Close()
		return
	}
	// Decode outside the lock, once for the many posts of one GROUP or
	// GLOBAL message, which carry the same frame.
	var f *protocol.Frame
	var body string
	if len(o.Body) > 0 {
		if d := in.last.Load(); d != nil && d.body == string(o.Body) {
			f, body = d.frame, d.shown
		} else {
			f, body = decodeFrame(o.Body), in.shown(o.Body)
			in.last.Store(&decoded{body: string(o.Body), frame: f, shown: body})
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.conns[o.ConnectionID]
	e := Entry{Time: o.Time, Conn: o.ConnectionID, Size: o.Size, Body: body}
	switch o.Kind {
	case gateway.ObservedOpen:
		c = &connState{ID: o.ConnectionID, SourceIP: o.SourceIP, UserAgent: o.UserAgent, ConnectedAt: o.ConnectedAt, LastActive: o.ConnectedAt}
		if sid, ok := o.Authorizer["serviceId"].(string); ok {
			c.ServiceID = sid
		}
		if g, ok := o.Authorizer["group"].(string); ok {
			c.Group = g
		}
		in.conns[c.ID] = c
		in.version++
		e.Dir, e.Op, e.Status = "conn", "CONNECT", "from "+o.SourceIP
	case gateway.ObservedClose:
		if c != nil {
			delete(in.conns, o.ConnectionID)
			in.version++
		}
		e.Dir, e.Op, e.Status = "conn", "DISCONNECT", strconv.Itoa(o.Code)
		if o.Reason != "" {
			e.Status += " " + o.Reason
		}
	case gateway.ObservedMessage:
		if c != nil {
			c.LastActive = o.Time
			in.version++
		}
		e.Dir, e.Status = "in", "received"
		if o.Route == "" {
			e.Status = "no route"
		}
		if o.Injected {
			e.Via = "inspector"
		}
		describe(&e, f)
	case gateway.ObservedSend:
		e.Dir, e.Via = "out", o.Via
		e.Status = sendStatus(o.Status)
		if o.Status == http.StatusTooManyRequests && o.Via != gateway.ViaPost {
			e.Status = "dropped: the client's queue is full" // and the gateway dropped the client
		}
		describe(&e, f)
		if f != nil && f.Op == protocol.OpIdentify && c != nil && o.Status == http.StatusOK {
			var d protocol.IdentifiedData
			if json.Unmarshal(f.Data, &d) == nil && d.ID != "" {
				c.ServiceID, c.Group = d.ID, d.Group
				in.version++
			}
		}
		if code, ok := errorCode(f); ok {
			e.Error = true
			e.Status = strconv.Itoa(int(code)) + " " + code.Reason()
		}
		if o.Via == gateway.ViaGateway {
			e.Op, e.Error = "GATEWAY", true
			e.Status = gatewayText(o.Body)
		}
	case gateway.ObservedDelete:
		e.Dir, e.Op, e.Via = "in", "DELETE", "@connections DELETE"
		e.Status = strconv.Itoa(o.Status)
	case gateway.ObservedInvokeError:
		e.Dir, e.Op, e.Error = "in", "INVOKE FAILED", true
		e.Via = o.Route + " → " + o.Function
		if o.Err != nil {
			e.Status = clip(in.cfg.Redact(o.Err.Error()), MaxFieldShown)
		}
	default:
		return
	}
	if c != nil {
		e.Service, e.Group = c.ServiceID, c.Group
	}
	in.add(e)
}

// add records an entry and hands it to every browser; in.mu is held.
func (in *Inspector) add(e Entry) {
	in.seq++
	e.Seq = in.seq
	e.Clock = e.Time.Format("15:04:05.000")
	in.log.add(e)
	if e.Error {
		in.errs.add(e)
	}
	for s := range in.subs {
		s.push(e)
	}
}

// shown returns a body as the page shows it: secrets redacted, at most
// MaxBodyShown bytes.
func (in *Inspector) shown(b []byte) string {
	if len(b) > 64<<10 { // not worth decoding to redact: cut first, redact the text
		b = b[:64<<10]
	}
	return clip(in.cfg.Redact(string(b)), MaxBodyShown)
}

// clip returns s cut to at most max bytes, on a character's start, and
// marked with "…" when it was cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// decodeFrame reads a frame's envelope, or nil when it is not a JSON object.
func decodeFrame(b []byte) *protocol.Frame {
	var f struct {
		protocol.Frame
		Op *protocol.Op `json:"op"`
	}
	if json.Unmarshal(b, &f) != nil || f.Op == nil {
		return nil
	}
	f.Frame.Op = *f.Op
	return &f.Frame
}

// describe fills an entry's op, target, event and message id from a frame,
// each cut to MaxFieldShown.
func describe(e *Entry, f *protocol.Frame) {
	switch {
	case f == nil && e.Body == "" && e.Size > 0:
		e.Op = "(not read)" // a POST refused for its size
		return
	case f == nil:
		e.Op = "(not a frame)"
		return
	}
	e.Op = f.Op.String()
	e.Event, e.ID = clip(f.Event, MaxFieldShown), clip(f.ID, MaxFieldShown)
	if f.Intent != nil {
		t := string(f.Intent.Target)
		if f.Intent.Target != protocol.TargetGlobal && f.Intent.Identifier != "" {
			t += ":" + f.Intent.Identifier
		}
		e.Target = clip(t, MaxFieldShown)
	}
}

// errorCode returns the code of an ERROR frame, or of a DISCONNECT frame
// the server sends before it closes a connection.
func errorCode(f *protocol.Frame) (protocol.Code, bool) {
	if f == nil || (f.Op != protocol.OpError && f.Op != protocol.OpDisconnect) {
		return 0, false
	}
	var d protocol.ErrorData
	if json.Unmarshal(f.Data, &d) != nil || d.Code == 0 {
		return 0, false
	}
	return d.Code, true
}

// sendStatus names the fate of a frame sent to a client.
func sendStatus(status int) string {
	switch status {
	case http.StatusOK:
		return "delivered"
	case http.StatusGone:
		return "gone 410"
	case http.StatusTooManyRequests:
		return "throttled 429"
	case http.StatusRequestEntityTooLarge:
		return "too large 413"
	}
	return strconv.Itoa(status)
}

// gatewayText returns the message of API Gateway's own error frame
// ("Forbidden", "Internal server error").
func gatewayText(b []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		return m.Message
	}
	return string(bytes.TrimSpace(b))
}

// ConnectionView is a row of the connections table.
type ConnectionView struct {
	ID          string `json:"id"`
	ServiceID   string `json:"serviceId"`
	Group       string `json:"group"`
	SourceIP    string `json:"sourceIp"`
	ConnectedAt string `json:"connectedAt"`
	LastActive  string `json:"lastActive"`
}

// GroupView is a row of the groups table.
type GroupView struct {
	Name    string       `json:"name"`
	Members []MemberView `json:"members"`
}

// MemberView is a member of a group.
type MemberView struct {
	ServiceID    string `json:"serviceId"`
	ConnectionID string `json:"connectionId"`
}

// State is what the page shows of the gateway at one moment.
type State struct {
	Connections []ConnectionView `json:"connections"`
	Groups      []GroupView      `json:"groups"`
	Log         []Entry          `json:"-"`
	Errors      []Entry          `json:"-"`
	// Run names the gateway's run; Seq is its last entry's number.
	Run string `json:"run"`
	Seq uint64 `json:"seq"`
}

// Snapshot returns the connections, oldest first, the groups by name, and
// the recent log and errors.
func (in *Inspector) Snapshot() State {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.stateLocked()
	st.Log, st.Errors = in.log.all(), in.errs.all()
	return st
}

// stateLocked returns the connections and groups; in.mu is held.
func (in *Inspector) stateLocked() State {
	const clock = "15:04:05"
	st := State{Run: in.run, Seq: in.seq, Connections: []ConnectionView{}, Groups: []GroupView{}}
	conns := make([]*connState, 0, len(in.conns))
	for _, c := range in.conns {
		conns = append(conns, c)
	}
	slices.SortFunc(conns, func(a, b *connState) int {
		if d := a.ConnectedAt.Compare(b.ConnectedAt); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	groups := map[string]*GroupView{}
	for _, c := range conns {
		st.Connections = append(st.Connections, ConnectionView{
			ID: c.ID, ServiceID: c.ServiceID, Group: c.Group, SourceIP: c.SourceIP,
			ConnectedAt: c.ConnectedAt.Format(clock), LastActive: c.LastActive.Format(clock),
		})
		if c.Group == "" {
			continue
		}
		g := groups[c.Group]
		if g == nil {
			g = &GroupView{Name: c.Group}
			groups[c.Group] = g
		}
		g.Members = append(g.Members, MemberView{ServiceID: c.ServiceID, ConnectionID: c.ID})
	}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		st.Groups = append(st.Groups, *groups[name])
	}
	return st
}
