package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"time"
)

// Defaults and limits of Options. A zero field of Options means its
// default; these constants say what the defaults are.
const (
	// DefaultMaxMessageBytes is the server's default message limit
	// (MaxMessageBytes in template.yaml).
	DefaultMaxMessageBytes = 32 << 10
	// MaxMessageBytesLimit is the largest message API Gateway takes.
	MaxMessageBytesLimit = 128 << 10
	// FrameBytes is API Gateway's frame limit: a message longer than this
	// is written as several frames of at most FrameBytes each.
	FrameBytes = 32 << 10

	DefaultHandlerConcurrency = 1
	DefaultMaxPending         = 4096
	DefaultPongTimeout        = 10 * time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second

	DefaultReconnectMin    = 200 * time.Millisecond
	DefaultReconnectMax    = 20 * time.Second
	DefaultReconnectFactor = 2
	DefaultReconnectJitter = 0.5

	// readLimit bounds one received message: the server delivers at most
	// 128 KiB (a message stamped with its source), so twice that is ample.
	readLimit = 256 << 10
)

// Options configure a Client. The zero value of each field means its
// default, given in the field's comment and as a Default constant. Options
// are read once, by Dial: changing them (or the Handlers map) afterwards has
// no effect.
type Options struct {
	// Token is the service token (socketctl token create). Required,
	// unless TokenFunc is set.
	Token string
	// TokenFunc, when set, is called for the token before every connection
	// (the first and each reconnect) instead of using Token: a way to
	// present a rotated token. Its error fails that attempt.
	TokenFunc func(ctx context.Context) (string, error)
	// Group is the group this service joins: 1 to 64 characters of
	// A-Z a-z 0-9 . _ : -. Required.
	Group string
	// IdentifyAfterConnect selects the seed-style mode, for a server
	// deployed with ConnectAuth=off: the handshake carries no credentials,
	// and the client sends IDENTIFY with the token and the group and waits
	// for its answer. Default false: the handshake carries them, as the
	// template's default ConnectAuth=required wants (Authorization: Bearer
	// and the group query parameter).
	IdentifyAfterConnect bool

	// HTTPClient performs the handshakes. Default: a client of the
	// client's own, on a clone of http.DefaultTransport whose idle
	// connections Close releases.
	HTTPClient *http.Client
	// HTTPHeader is added to every handshake (Authorization is set by the
	// client in the default mode).
	HTTPHeader http.Header

	// Handlers handle received EVENTs and REPLYs by event name. Default:
	// none.
	Handlers map[string]Handler
	// Default handles the messages whose event has no entry in Handlers
	// (a REPLY without an event among them). Default: such messages are
	// dropped.
	Default Handler
	// HandlerConcurrency is how many handlers may run at once. Default 1:
	// one at a time, in arrival order. With more, order is not kept.
	HandlerConcurrency int
	// MaxPending bounds the messages waiting for a handler, the answers
	// waiting for a Call's reader, and the OnError reports waiting for the
	// callback goroutine. Past it, messages are dropped and OnError receives
	// ErrSlowConsumer (an OnError report past it is dropped and logged).
	// OnConnect, OnDisconnect and OnClose are never dropped. Default 4096.
	MaxPending int

	// OnConnect is called for every identified connection, the first one
	// included, with its service id. Default: nothing.
	OnConnect func(c *Client, e ConnectEvent)
	// OnDisconnect is called when an identified connection ends. Default:
	// nothing.
	OnDisconnect func(c *Client, e DisconnectEvent)
	// OnError receives errors that no call waits for: an ERROR frame whose
	// id matches no call (say TARGET_NOT_FOUND after a plain Send), a
	// *GatewayError, ErrSlowConsumer, a *ReconnectError. Default: nothing.
	OnError func(c *Client, err error)
	// OnClose is called once, last, when the client stops: err is nil
	// after Close, and the terminal error otherwise (what Wait returns).
	// Default: nothing.
	OnClose func(c *Client, err error)

	// MaxMessageBytes is the server's message limit: a message over it is
	// refused with the *ServerError MESSAGE_TOO_BIG without being sent.
	// Default 32768 (DefaultMaxMessageBytes), at most 131072.
	MaxMessageBytes int
	// Backoff paces reconnects.
	Backoff Backoff
	// PongTimeout is how long a PING may wait for its PONG before the
	// connection is declared dead (ErrNoPong) and replaced. Default 10s.
	PongTimeout time.Duration
	// ConnectTimeout bounds each reconnect attempt: the handshake and the
	// IDENTIFY answer. Default 10s. (Dial's context bounds the first.)
	ConnectTimeout time.Duration
	// WriteTimeout bounds the writing of one message; a write that takes
	// longer ends the connection. Default 10s.
	WriteTimeout time.Duration
	// Logger receives connection events at Debug and Info level. Default:
	// nothing is logged.
	Logger *slog.Logger
}

// Backoff is the reconnect policy: the n-th attempt in a row waits
// min(Max, Min×Factor^(n−1)), less a random part of up to Jitter of it.
// The count starts over once a connection is identified.
type Backoff struct {
	// Min is the base delay, before the first attempt. Default 200ms.
	Min time.Duration
	// Max caps the delay. Default 20s.
	Max time.Duration
	// Factor multiplies the delay after each failed attempt. Default 2.
	Factor float64
	// Jitter is the fraction of each delay that is random: the delay is
	// drawn uniformly from [d×(1−Jitter), d]. Default 0.5; at most 1.
	Jitter float64
	// MaxAttempts is how many attempts in a row may fail before the client
	// gives up (Wait returns an error wrapping ErrReconnectLimit). Default
	// 0: no limit. Negative: never reconnect; a lost connection stops the
	// client.
	MaxAttempts int
}

// Handler handles one received message. ctx ends when the client stops. c
// is the client that received it: a handler may call Send, Request, Reply
// and Close on it, but not Wait.
type Handler func(ctx context.Context, c *Client, m *Message)

// ConnectEvent describes an identified connection.
type ConnectEvent struct {
	// ServiceID is this connection's service id; it is new on every
	// connection.
	ServiceID string
	Group     string
	// PingInterval is the heartbeat interval the server announced.
	PingInterval time.Duration
	// Reconnect is false for the connection Dial made, true afterwards.
	Reconnect bool
}

// DisconnectEvent describes the end of an identified connection.
type DisconnectEvent struct {
	// ServiceID is the service id the connection had.
	ServiceID string
	// Err is why the connection ended; nil after Close.
	Err error
	// Reconnecting is true when the client will try to connect again.
	Reconnecting bool
}

// withDefaults returns the options with defaults filled in, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Token == "" && o.TokenFunc == nil {
		return o, errors.New("client: Options.Token is required")
	}
	if !validGroup(o.Group) {
		return o, fmt.Errorf("client: Options.Group %q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", o.Group, maxGroupLen)
	}
	switch {
	case o.MaxMessageBytes == 0:
		o.MaxMessageBytes = DefaultMaxMessageBytes
	case o.MaxMessageBytes < 0 || o.MaxMessageBytes > MaxMessageBytesLimit:
		return o, fmt.Errorf("client: Options.MaxMessageBytes %d: want 1 to %d", o.MaxMessageBytes, MaxMessageBytesLimit)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"HandlerConcurrency", &o.HandlerConcurrency, DefaultHandlerConcurrency},
		{"MaxPending", &o.MaxPending, DefaultMaxPending},
	} {
		if *f.v < 0 {
			return o, fmt.Errorf("client: Options.%s %d: want a positive number", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PongTimeout", &o.PongTimeout, DefaultPongTimeout},
		{"ConnectTimeout", &o.ConnectTimeout, DefaultConnectTimeout},
		{"WriteTimeout", &o.WriteTimeout, DefaultWriteTimeout},
		{"Backoff.Min", &o.Backoff.Min, DefaultReconnectMin},
		{"Backoff.Max", &o.Backoff.Max, DefaultReconnectMax},
	} {
		if *f.v < 0 {
			return o, fmt.Errorf("client: Options.%s %v: want a positive duration", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if o.Backoff.Max < o.Backoff.Min {
		o.Backoff.Max = o.Backoff.Min
	}
	switch {
	case o.Backoff.Factor == 0:
		o.Backoff.Factor = DefaultReconnectFactor
	case o.Backoff.Factor < 1:
		return o, fmt.Errorf("client: Options.Backoff.Factor %v: want at least 1", o.Backoff.Factor)
	}
	switch {
	case o.Backoff.Jitter == 0:
		o.Backoff.Jitter = DefaultReconnectJitter
	case o.Backoff.Jitter < 0 || o.Backoff.Jitter > 1:
		return o, fmt.Errorf("client: Options.Backoff.Jitter %v: want 0 to 1", o.Backoff.Jitter)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Handlers = maps.Clone(o.Handlers)
	o.HTTPHeader = o.HTTPHeader.Clone()
	return o, nil
}

// delay returns how long to wait before the attempt-th attempt in a row
// (1 for the first).
func (b Backoff) delay(attempt int) time.Duration {
	d := float64(b.Min)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	d = min(d, float64(b.Max))
	return time.Duration(d * (1 - b.Jitter*rand.Float64()))
}
