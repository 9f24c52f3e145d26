// Package router is the routing engine of mastersocket: it accepts
// connections, authenticates IDENTIFY, routes EVENT and REPLY to GLOBAL, GROUP
// and DIRECT targets, answers PING and cleans up on disconnect, following
// PROTOCOL.md. It knows nothing of AWS: it declares the Store and the Sender
// it needs, and the adapters (DynamoDB, memory, the @connections API, the
// local gateway) implement them.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/lru"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/telemetry"
	"github.com/mastersocket/mastersocket/internal/token"
)

// Limits and defaults of Config.
const (
	DefaultMaxMessageBytes = 32 << 10 // API Gateway's frame size
	MaxMessageBytesLimit   = 128 << 10
	DefaultPingInterval    = 30 * time.Second
	DefaultFanOut          = 64
	// DefaultItemTTL outlives API Gateway's 2 h connection lifetime by 10
	// minutes, so a missed $disconnect never leaves a mapping for ever.
	DefaultItemTTL         = 2*time.Hour + 10*time.Minute
	DefaultCacheSize       = 10000
	DefaultDeliveryTimeout = 25 * time.Second
	DefaultIdentifyTimeout = 10 * time.Second
	// DefaultHandshakeGrace outlasts the longest $connect (API Gateway's
	// 29 s integration timeout).
	DefaultHandshakeGrace = 30 * time.Second
	// DefaultInlineFanOut: a fan-out of up to 1,000 recipients stays in
	// the message's invocation. At 64 posts in flight and ~20 ms a post
	// that takes ~0.3 s, about what handing them on would add in latency
	// (an Invoke call, the async queue, maybe a cold start), and it costs
	// no invocation.
	DefaultInlineFanOut = 1000
	// DefaultBatchSize and DefaultBatchBytes bound a batch handed to
	// another invocation: Lambda takes up to 1 MB (1,048,576 bytes) per
	// asynchronous invocation. Fewer, bigger batches are cheaper: a batch
	// lasts as long as the message's fan-out whatever its size (they share
	// the account's post rate), so its GB-seconds, not its request charge
	// (one per 64 KB beyond the first 256 KB), make its cost.
	DefaultBatchSize  = 20000
	DefaultBatchBytes = 1000000
	// DefaultPostRate is API Gateway's default account quota of
	// @connections calls, which the batches of one message share.
	DefaultPostRate = 10000
	// DefaultMaxBatchAttempts bounds how often recipients are handed on.
	DefaultMaxBatchAttempts = 3
	// MaxDeliveryBytes is the largest frame the gateway delivers
	// (PostToConnection's limit): a message plus its source must fit.
	MaxDeliveryBytes = 128 << 10
)

// Config tunes a Router. The zero value of each field means its default.
type Config struct {
	// MaxMessageBytes is the largest message accepted; larger ones get
	// MESSAGE_TOO_BIG and are dropped. Default 32768, at most 131072.
	MaxMessageBytes int
	// PingInterval is the heartbeat interval announced to identified
	// clients. Default 30s.
	PingInterval time.Duration
	// FanOut bounds the deliveries (and clean-ups of gone recipients) in
	// flight for one GROUP or GLOBAL message. Default 64.
	FanOut int
	// ItemTTL is how long after connecting the registry may forget a
	// connection on its own. Default 2h10m.
	ItemTTL time.Duration
	// CacheSize bounds each of the two caches of identities that never
	// change: connection → sender identity, and service id → connection.
	// Default 10000; negative disables caching.
	CacheSize int
	// Logger receives faults and failed deliveries. Default slog.Default().
	Logger *slog.Logger
	// DeliveryTimeout bounds the deliveries of one message, so that a
	// fan-out ends inside API Gateway's 29 s integration timeout; deliveries
	// still running then count as failed. Default 25s.
	DeliveryTimeout time.Duration
	// Gateway names the gateway this router serves (its management
	// endpoint); Connect records it with each connection, so that the
	// gateway's sweeper finds its connections and no other's. Default "".
	Gateway string
	// IdentifyTimeout is how long after connecting a connection may stay
	// anonymous. After it, an IDENTIFY, an EVENT or a REPLY from an anonymous
	// connection closes it with IDENTIFY_FAILED (the sweeper closes those
	// that send nothing). Default 10s.
	IdentifyTimeout time.Duration
	// HandshakeGrace is how long after it was recorded a connection that
	// the gateway reports gone (410) is still not forgotten: the gateway
	// answers 410 until $connect has returned, and a connection identified
	// at the handshake is a member of its group from inside its $connect.
	// Such a connection is left to its $disconnect or the sweeper. Default
	// 30s.
	HandshakeGrace time.Duration
	// Dispatcher, if set, takes the recipients of a GROUP or GLOBAL
	// message beyond the first InlineFanOut, in batches that other
	// invocations deliver with DeliverBatch. Default nil: every delivery
	// is made by the message's invocation, within DeliveryTimeout.
	Dispatcher Dispatcher
	// InlineFanOut is how many recipients of one message its own
	// invocation posts to before it hands the rest to the Dispatcher.
	// Default 1000; negative: hand on every recipient.
	InlineFanOut int
	// BatchSize bounds the recipients of one batch; default 20000.
	BatchSize int
	// BatchBytes bounds the JSON of one batch, frame included; default
	// 1000000, within Lambda's 1 MB per asynchronous invocation.
	BatchBytes int
	// PostRate is the rate, in posts per second, that the batches of one
	// message share; default 10000 (the management API's account quota).
	// Throttled posts are retried, then handed on.
	PostRate float64
	// MaxBatchAttempts bounds how many times recipients are handed on (by
	// a message, then by batches that ran out of time or were throttled)
	// before they count as failed; default 3.
	MaxBatchAttempts int
	// NewID returns a fresh service id, and the id of an EVENT sent
	// without one. Default: a random UUID v4.
	NewID func() string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.MaxMessageBytes == 0:
		c.MaxMessageBytes = DefaultMaxMessageBytes
	case c.MaxMessageBytes < 0 || c.MaxMessageBytes > MaxMessageBytesLimit:
		return c, fmt.Errorf("max message bytes %d: want 1 to %d", c.MaxMessageBytes, MaxMessageBytesLimit)
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	} else if c.PingInterval < time.Millisecond {
		return c, fmt.Errorf("ping interval %v: want at least 1ms", c.PingInterval)
	}
	if c.FanOut == 0 {
		c.FanOut = DefaultFanOut
	} else if c.FanOut < 0 {
		return c, fmt.Errorf("fan-out %d: want at least 1", c.FanOut)
	}
	if c.ItemTTL == 0 {
		c.ItemTTL = DefaultItemTTL
	} else if c.ItemTTL < 0 {
		return c, fmt.Errorf("item TTL %v: want a positive duration", c.ItemTTL)
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	} else if c.DeliveryTimeout < 0 {
		return c, fmt.Errorf("delivery timeout %v: want a positive duration", c.DeliveryTimeout)
	}
	if c.IdentifyTimeout == 0 {
		c.IdentifyTimeout = DefaultIdentifyTimeout
	} else if c.IdentifyTimeout < 0 {
		return c, fmt.Errorf("identify timeout %v: want a positive duration", c.IdentifyTimeout)
	}
	if c.HandshakeGrace == 0 {
		c.HandshakeGrace = DefaultHandshakeGrace
	} else if c.HandshakeGrace < 0 {
		return c, fmt.Errorf("handshake grace %v: want a positive duration", c.HandshakeGrace)
	}
	switch {
	case c.InlineFanOut == 0:
		c.InlineFanOut = DefaultInlineFanOut
	case c.InlineFanOut < 0:
		c.InlineFanOut = 0
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	} else if c.BatchSize < 0 {
		return c, fmt.Errorf("batch size %d: want at least 1", c.BatchSize)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	} else if c.BatchBytes < 1024 || c.BatchBytes > 1<<20 {
		return c, fmt.Errorf("batch bytes %d: want 1024 to 1048576 (Lambda's limit)", c.BatchBytes)
	}
	if c.PostRate == 0 {
		c.PostRate = DefaultPostRate
	} else if c.PostRate < 0 {
		return c, fmt.Errorf("post rate %v: want a positive rate", c.PostRate)
	}
	if c.MaxBatchAttempts == 0 {
		c.MaxBatchAttempts = DefaultMaxBatchAttempts
	} else if c.MaxBatchAttempts < 0 {
		return c, fmt.Errorf("max batch attempts %d: want at least 1", c.MaxBatchAttempts)
	}
	if c.NewID == nil {
		c.NewID = uuid.NewString
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Router routes the messages of every connection of one gateway. It is safe
// for concurrent use, as the gateway invokes it concurrently.
type Router struct {
	store  Store
	sender Sender
	cfg    Config
	log    *slog.Logger

	identities *lru.Cache[string, Identity] // connection id → its identity
	services   *lru.Cache[string, string]   // service id → connection id
	workers    *workers                     // they make the posts of fan-outs
}

// New returns a Router over store and sender, or an error if cfg is invalid.
func New(store Store, sender Sender, cfg Config) (*Router, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	return &Router{
		store:      store,
		sender:     sender,
		cfg:        cfg,
		log:        cfg.Logger,
		identities: lru.New[string, Identity](cfg.CacheSize),
		services:   lru.New[string, string](cfg.CacheSize),
		workers:    newWorkers(workerIdle),
	}, nil
}

// Config returns the router's configuration with defaults filled in.
func (r *Router) Config() Config { return r.cfg }

// Connect records a new connection. The gateway must not let the connection
// send anything before Connect has returned. A connection whose handshake
// was authenticated (by the $connect authorizer) comes with its Identity and
// is recorded identified, reachable by service id, group and GLOBAL, in the
// same single write that IDENTIFY makes; otherwise it is anonymous until it
// identifies. An error means the identity is invalid or the registry is
// unreachable, and the connection should be refused.
func (r *Router) Connect(ctx context.Context, c Connection) error {
	c.Gateway = r.cfg.Gateway
	if c.ConnectedAt.IsZero() {
		c.ConnectedAt = r.cfg.Now()
	}
	c.ExpiresAt = c.ConnectedAt.Add(r.cfg.ItemTTL)
	if c.Identity != nil {
		id := *c.Identity
		if err := validIdentity(id); err != nil {
			return fmt.Errorf("connection %s: %w", c.ID, err)
		}
		if id.IdentifiedAt.IsZero() {
			id.IdentifiedAt = r.cfg.Now()
		}
		c.Identity = &id
	}
	if err := r.store.AddConnection(ctx, c); err != nil {
		return fmt.Errorf("record connection %s: %w", c.ID, err)
	}
	if c.Identity != nil {
		r.identities.Add(c.ID, *c.Identity)
		r.services.Add(c.Identity.ServiceID, c.ID)
	}
	return nil
}

// validIdentity checks an identity that the gateway vouches for: the
// service id is what DIRECT can target, the group a group name.
func validIdentity(id Identity) error {
	if n := len(id.ServiceID); n < 1 || n > protocol.MaxIdentifierLen {
		return fmt.Errorf("identity: service id of %d bytes, want 1 to %d", n, protocol.MaxIdentifierLen)
	}
	if !protocol.ValidGroup(id.Group) {
		return fmt.Errorf("identity: %q is not a group name", id.Group)
	}
	return nil
}

// Disconnect forgets a connection that has closed, with every mapping to it.
// It is idempotent.
func (r *Router) Disconnect(ctx context.Context, connID string) error {
	r.forgetCached(connID)
	if err := r.store.RemoveConnection(ctx, connID); err != nil {
		return fmt.Errorf("remove connection %s: %w", connID, err)
	}
	return nil
}

// Request is one message received on a connection.
type Request struct {
	ConnectionID string
	// ConnectedAt is when the connection was opened, as the gateway reports
	// it with every message.
	ConnectedAt time.Time
	// Identity is the connection's identity as the gateway vouches for it
	// with every message (the $connect authorizer's context), or nil. With
	// it, routing the message reads nothing to learn who sent it.
	Identity *Identity
	// Body is the message. Handle only reads it, and keeps no reference to
	// it once it has returned.
	Body []byte
}

// Handle processes one message. It returns the frame to send back to the
// sender itself (an IDENTIFY answer, a PONG or an ERROR), or nil when there
// is none; the gateway sends it as the route response. The frame is the
// caller's: Handle keeps no reference to it. Expected failures
// (bad input, unknown targets) are answered with an ERROR frame and a nil
// error; an error means a dependency (the registry, the gateway) failed.
//
// When ctx carries a telemetry.Record, Handle counts the message (by op and
// target), its IDENTIFY outcome, its deliveries and the ERROR it answers
// with, and sets the service and message ids its log lines carry.
func (r *Router) Handle(ctx context.Context, req Request) (reply []byte, err error) {
	var msgID string
	rec := telemetry.FromContext(ctx)
	defer func() {
		if p := recover(); p != nil {
			r.log.ErrorContext(ctx, "panic while handling a message", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			reply, err = protocol.ErrorFrame(&protocol.Error{
				Code: protocol.CodeUnknownError, Message: "internal error", ID: msgID}), nil
		}
		if code, ok := protocol.ErrorCodeOf(reply); ok {
			rec.ErrorSent(code.Reason())
		}
	}()
	if req.Identity != nil {
		rec.SetService(req.Identity.ServiceID)
	}

	if req.ConnectedAt.IsZero() {
		// API Gateway always sends connectedAt; without it, expiry would
		// be computed from the year 1.
		req.ConnectedAt = r.cfg.Now()
	}
	if len(req.Body) > r.cfg.MaxMessageBytes {
		rec.Message(telemetry.OpInvalid, telemetry.TargetNone, "")
		return errorFrame(protocol.CodeMessageTooBig, "",
			"message of %d bytes is over the limit of %d bytes", len(req.Body), r.cfg.MaxMessageBytes), nil
	}
	var m protocol.Message // on the stack: one message lives as long as Handle
	read, err := protocol.ParseInto(&m, req.Body)
	if read {
		msgID = m.ID
	}
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			return nil, err
		}
		if read && m.Op == protocol.OpIdentify {
			rec.Message(m.Op.String(), telemetry.TargetNone, msgID)
			pe.Code = protocol.CodeIdentifyFailed
			return r.identifyFailed(ctx, req, pe, telemetry.OutcomeMalformed)
		}
		rec.Message(telemetry.OpInvalid, telemetry.TargetNone, msgID)
		return protocol.ErrorFrame(pe), nil
	}
	if rec != nil {
		target := telemetry.TargetNone
		if m.Intent.Target != "" {
			target = string(m.Intent.Target)
		}
		rec.Message(m.Op.String(), target, m.ID)
	}

	switch m.Op {
	case protocol.OpPing:
		return protocol.PongFrame(m.ID), nil
	case protocol.OpPong:
		return nil, nil
	case protocol.OpIdentify:
		return r.identify(ctx, req, &m)
	case protocol.OpDisconnect:
		return nil, r.clientDisconnect(ctx, req.ConnectionID)
	default: // EVENT, REPLY
		return r.route(ctx, req, &m)
	}
}

func errorFrame(code protocol.Code, id, format string, args ...any) []byte {
	e := protocol.Errorf(code, format, args...)
	e.ID = id
	return protocol.ErrorFrame(e)
}

// identify handles a well-formed IDENTIFY envelope: with a token, it
// identifies an anonymous connection; without one, it answers an identified
// connection with its identity ("who am I").
func (r *Router) identify(ctx context.Context, req Request, m *protocol.Message) ([]byte, error) {
	if group, ok := protocol.WhoAmI(m.Data); ok {
		id, known, err := r.identity(ctx, req)
		if err != nil {
			return nil, err
		}
		if known {
			if group != "" && group != id.Group {
				return errorFrame(protocol.CodeAlreadyIdentified, m.ID,
					"this connection is identified in group %q, not %q", id.Group, group), nil
			}
			return protocol.IdentifiedFrame(m.ID, id.ServiceID, id.Group,
				int(r.cfg.PingInterval/time.Millisecond)), nil
		}
		// Anonymous: a missing token fails below like any bad IDENTIFY.
	}
	rec := telemetry.FromContext(ctx)
	if _, ok := r.identities.Get(req.ConnectionID); ok || req.Identity != nil {
		rec.Identify(telemetry.OutcomeAlreadyIdentified)
		return errorFrame(protocol.CodeAlreadyIdentified, m.ID, "this connection has already identified"), nil
	}
	if pe := r.pastIdentifyDeadline(req); pe != nil {
		pe.ID = m.ID
		return r.identifyFailed(ctx, req, pe, telemetry.OutcomeLate)
	}
	idf, err := protocol.ParseIdentify(m.Data)
	outcome := telemetry.OutcomeMalformed
	if err == nil {
		outcome, err = r.checkToken(ctx, idf)
	}
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			rec.Identify(telemetry.OutcomeError)
			return nil, err
		}
		pe.ID = m.ID
		return r.identifyFailed(ctx, req, pe, outcome)
	}

	now := r.cfg.Now()
	c := Connection{
		ID:          req.ConnectionID,
		ConnectedAt: req.ConnectedAt,
		ExpiresAt:   req.ConnectedAt.Add(r.cfg.ItemTTL),
		Identity:    &Identity{ServiceID: r.cfg.NewID(), Group: idf.Group, IdentifiedAt: now},
	}
	switch err := r.store.Identify(ctx, c); {
	case errors.Is(err, ErrAlreadyIdentified):
		rec.Identify(telemetry.OutcomeAlreadyIdentified)
		return errorFrame(protocol.CodeAlreadyIdentified, m.ID, "this connection has already identified"), nil
	case errors.Is(err, ErrNotFound):
		return r.identifyFailed(ctx, req, &protocol.Error{
			Code: protocol.CodeIdentifyFailed, Message: "connection is not registered", ID: m.ID}, telemetry.OutcomeNotRegistered)
	case err != nil:
		rec.Identify(telemetry.OutcomeError)
		return nil, fmt.Errorf("identify connection %s: %w", req.ConnectionID, err)
	}
	r.identities.Add(c.ID, *c.Identity)
	r.services.Add(c.Identity.ServiceID, c.ID)
	rec.Identify(telemetry.OutcomeOK)
	rec.SetService(c.Identity.ServiceID)
	return protocol.IdentifiedFrame(m.ID, c.Identity.ServiceID, c.Identity.Group,
		int(r.cfg.PingInterval/time.Millisecond)), nil
}

// pastIdentifyDeadline returns the IDENTIFY_FAILED error of a connection
// that has been connected longer than IdentifyTimeout, or nil.
func (r *Router) pastIdentifyDeadline(req Request) *protocol.Error {
	age := r.cfg.Now().Sub(req.ConnectedAt)
	if age <= r.cfg.IdentifyTimeout {
		return nil
	}
	return protocol.Errorf(protocol.CodeIdentifyFailed, "a connection must IDENTIFY within %v of connecting; this one is %v old",
		r.cfg.IdentifyTimeout, age.Round(time.Second))
}

// checkToken returns an IDENTIFY_FAILED *protocol.Error, with the
// telemetry outcome that names it, unless the token exists, has not
// expired and allows the group.
func (r *Router) checkToken(ctx context.Context, idf protocol.Identify) (outcome string, err error) {
	h := token.HashOf(idf.Token)
	t, err := r.store.Token(ctx, h)
	if errors.Is(err, ErrNotFound) || (err == nil && !t.Matches(h)) {
		return telemetry.OutcomeInvalidToken, protocol.Errorf(protocol.CodeIdentifyFailed, "invalid token")
	}
	if err != nil {
		return telemetry.OutcomeError, fmt.Errorf("look up token: %w", err)
	}
	if t.Expired(r.cfg.Now()) {
		return telemetry.OutcomeExpiredToken, protocol.Errorf(protocol.CodeIdentifyFailed, "token has expired")
	}
	if !t.Allows(idf.Group) {
		return telemetry.OutcomeGroupNotAllowed, protocol.Errorf(protocol.CodeIdentifyFailed, "token does not allow group %q", idf.Group)
	}
	return telemetry.OutcomeOK, nil
}

// identifyFailed answers a failed IDENTIFY: ALREADY_IDENTIFIED if the
// connection has identified before (a second IDENTIFY never costs a good
// connection its life), otherwise the fatal IDENTIFY_FAILED. outcome names
// the failure in the telemetry.
func (r *Router) identifyFailed(ctx context.Context, req Request, pe *protocol.Error, outcome string) ([]byte, error) {
	rec := telemetry.FromContext(ctx)
	_, known, err := r.identity(ctx, req)
	if err != nil {
		rec.Identify(telemetry.OutcomeError)
		return nil, err
	}
	if known {
		rec.Identify(telemetry.OutcomeAlreadyIdentified)
		return errorFrame(protocol.CodeAlreadyIdentified, pe.ID, "this connection has already identified"), nil
	}
	rec.Identify(outcome)
	return nil, r.closeWith(ctx, req.ConnectionID, pe)
}

// closeWith ends a connection for a fatal error: the DISCONNECT frame is
// posted first, so that it arrives, then the connection is closed.
func (r *Router) closeWith(ctx context.Context, connID string, pe *protocol.Error) error {
	if err := r.sender.Send(ctx, connID, protocol.ErrorFrame(pe)); err != nil && !errors.Is(err, ErrGone) {
		return fmt.Errorf("send DISCONNECT to %s: %w", connID, err)
	}
	telemetry.FromContext(ctx).ErrorSent(pe.Code.Reason())
	if err := r.sender.Close(ctx, connID); err != nil {
		return fmt.Errorf("close %s: %w", connID, err)
	}
	return nil
}

// clientDisconnect forgets the connection, then closes it.
func (r *Router) clientDisconnect(ctx context.Context, connID string) error {
	if err := r.Disconnect(ctx, connID); err != nil {
		return err
	}
	if err := r.sender.Close(ctx, connID); err != nil {
		return fmt.Errorf("close %s: %w", connID, err)
	}
	return nil
}

// identity returns the identity of the connection a request came on, and
// false if it has not identified: the one the gateway vouches for, else the
// cached or recorded one. Identities are cached, as they never change.
func (r *Router) identity(ctx context.Context, req Request) (Identity, bool, error) {
	if req.Identity != nil {
		return *req.Identity, true, nil
	}
	connID := req.ConnectionID
	if id, ok := r.identities.Get(connID); ok {
		telemetry.FromContext(ctx).SetService(id.ServiceID)
		return id, true, nil
	}
	c, err := r.store.Connection(ctx, connID)
	if errors.Is(err, ErrNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("look up connection %s: %w", connID, err)
	}
	if c.Identity == nil {
		return Identity{}, false, nil
	}
	r.identities.Add(connID, *c.Identity)
	telemetry.FromContext(ctx).SetService(c.Identity.ServiceID)
	return *c.Identity, true, nil
}

func (r *Router) forgetCached(connID string) {
	if id, ok := r.identities.Get(connID); ok {
		r.services.Remove(id.ServiceID)
	}
	r.identities.Remove(connID)
}

// forgetGone removes a connection the gateway reported gone, and the
// cached route to its service, unless the connection was recorded less
// than HandshakeGrace ago: it may be in its handshake still (see
// Config.HandshakeGrace).
func (r *Router) forgetGone(ctx context.Context, connID, serviceID string) {
	if c, err := r.store.Connection(ctx, connID); err == nil && r.cfg.Now().Sub(c.ConnectedAt) < r.cfg.HandshakeGrace {
		r.log.DebugContext(ctx, "a young connection is gone at the gateway: left to its $disconnect or the sweeper", "recipient", connID)
		return
	}
	if serviceID != "" {
		r.services.Remove(serviceID)
	}
	if err := r.Disconnect(ctx, connID); err != nil {
		r.log.WarnContext(ctx, "removing a gone connection failed", "recipient", connID, "err", err)
	}
}
