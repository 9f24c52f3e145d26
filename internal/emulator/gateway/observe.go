package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Observer is told what happens on a gateway: connections opening and
// closing, the messages clients send, every frame the gateway sends to a
// client, management DELETEs and failed invocations (Config.Observer). The
// gateway calls Observe on its own goroutines, concurrently, while it
// handles the traffic: Observe must return at once, never block, and not
// keep the Body it is given (copy what it keeps).
type Observer interface {
	Observe(Observation)
}

// ObservationKind says what an Observation reports.
type ObservationKind int

// The kinds of Observation.
const (
	// ObservedOpen: a connection's $connect succeeded and it is open:
	// ConnectionID, SourceIP, UserAgent, ConnectedAt, and Authorizer when
	// its $connect authorizer allowed it.
	ObservedOpen ObservationKind = iota + 1
	// ObservedClose: an open connection closed, with the Code and Reason
	// its $disconnect event reports.
	ObservedClose
	// ObservedMessage: a message from a client (Injected: handed in with
	// Inject), with the Route it was sent to ("" when no route took it),
	// and its Body.
	ObservedMessage
	// ObservedSend: a frame to a client, Via a route response, a
	// management API POST or the gateway's own error message, with its
	// Body and Status (see Observation.Status).
	ObservedSend
	// ObservedDelete: a management API DELETE of ConnectionID, with the
	// HTTP Status it was answered with (204, or 410).
	ObservedDelete
	// ObservedInvokeError: a route's Function failed (Err) for a message
	// of ConnectionID on Route, or for its $disconnect.
	ObservedInvokeError
	// ObservedShutdown: Close has started; no connection opens after it.
	ObservedShutdown
)

// How a frame reached a client (Observation.Via).
const (
	ViaRouteResponse = "route response"
	ViaPost          = "@connections POST"
	ViaGateway       = "gateway" // the gateway's own "Forbidden", "Internal server error"
)

// Observation is one thing that happened on a gateway; which fields are set
// depends on Kind.
type Observation struct {
	Kind         ObservationKind
	Time         time.Time
	ConnectionID string

	// ObservedOpen.
	SourceIP    string
	UserAgent   string
	ConnectedAt time.Time
	Authorizer  map[string]any // principalId and the authorizer's context; nil without an authorizer

	// ObservedClose.
	Code   int
	Reason string

	// ObservedMessage, ObservedSend and ObservedInvokeError.
	Route    string
	Function string
	Injected bool
	Via      string
	// Body is the message or frame. It belongs to the gateway: an
	// Observer reads it during Observe and copies what it keeps.
	Body []byte
	// Size is the frame's size in bytes: len(Body), or the declared size
	// of a POST refused as too large (whose Body is nil).
	Size int
	// Status is, for a POST and a DELETE, the HTTP status the management
	// API answered: 200 (queued for the client), 410 (gone), 429 (the
	// client's queue is full), 413 (too large). A route response and a
	// gateway message are reported in the same terms: 200 queued, 410 the
	// connection was gone, 429 its queue was full and the client was
	// dropped.
	Status int

	// ObservedInvokeError.
	Err error
}

// observe reports o to the observer, if there is one, with the time.
func (g *Gateway) observe(o Observation) {
	if g.cfg.Observer == nil {
		return
	}
	o.Time = time.Now()
	g.cfg.Observer.Observe(o)
}

// sendStatus is the Observation.Status of a frame that send queued (nil),
// or could not.
func sendStatus(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, errBusy):
		return 429
	default:
		return 410
	}
}

// ErrNoConnection is returned by Inject for a connection that is not open.
var ErrNoConnection = errors.New("no such open connection")

// Inject hands msg to the routes as if the open connection id had sent it:
// it counts as the client's activity, goes through route selection and
// the route's function, and the route response (or the gateway's error
// message) goes back to the connection. It waits for a free invocation
// slot and for the invocation to end, or for ctx. It fails with
// ErrNoConnection when the connection is not open, and refuses a message
// the gateway would not take from a client (over MaxMessageBytes, or not
// valid UTF-8) instead of closing the connection as it would.
func (g *Gateway) Inject(ctx context.Context, id string, msg []byte) error {
	c, ok := g.lookup(id)
	if !ok {
		return fmt.Errorf("connection %s: %w", id, ErrNoConnection)
	}
	if len(msg) > g.cfg.MaxMessageBytes {
		return fmt.Errorf("message of %d bytes: over the gateway's limit of %d (a client sending it would be closed with 1009)", len(msg), g.cfg.MaxMessageBytes)
	}
	if !utf8.Valid(msg) {
		return errors.New("message is not valid UTF-8 (a client sending it would be closed with 1007)")
	}
	select {
	case g.slots <- struct{}{}:
	case <-c.quit:
		return fmt.Errorf("connection %s: %w", id, ErrNoConnection)
	case <-ctx.Done():
		return fmt.Errorf("waiting for an invocation slot: %w", ctx.Err())
	}
	defer g.endInvocation()
	c.received()
	g.handleMessage(c, msg, true)
	return nil
}

// checkReserved refuses a stage whose paths an API of cfg.APIs (or the
// Home page) would take: the stage's WebSocket and @connections paths must
// reach the gateway.
func (c *Config) checkReserved() error {
	stagePath := "/" + c.Stage + "/"
	for prefix := range c.APIs {
		if prefix == "" || prefix == "/" {
			return fmt.Errorf("localgw: API prefix %q would take every path: give it a folder of its own", prefix)
		}
		if strings.HasPrefix(stagePath, prefix) {
			return fmt.Errorf("localgw: stage %q is reserved: its paths are served by the API at %s", c.Stage, prefix)
		}
	}
	return nil
}
