// Package sweep finds the connections that the registry knows and should
// not: gone from the gateway (a $disconnect that failed half-way or never
// came), silent for longer than the protocol allows, or still anonymous
// past the IDENTIFY deadline. It closes the live ones with the protocol's
// DISCONNECT (4008 PING_TIMEOUT, 4004 IDENTIFY_FAILED) and removes the
// items of all of them. It knows nothing of AWS: it declares the Registry
// and the Gateway it needs.
//
// A sweep costs one listing of the registry (for DynamoDB, one Query of
// the connections index per shard and page) and one status call per
// connection (GetConnection, whose lastActiveAt tells how long a
// connection has been silent), so that no message has to write anything.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// Registry is the part of the connection registry a sweep needs.
type Registry interface {
	// Connections calls fn with each page of every recorded connection of
	// a gateway (router.Connection.Gateway), identified or not; it may call
	// fn from several goroutines at once.
	Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error
	// Connection returns a recorded, live connection, read consistently,
	// or router.ErrNotFound.
	Connection(ctx context.Context, connID string) (router.Connection, error)
	// RemoveConnection forgets a connection and every mapping to it,
	// idempotently.
	RemoveConnection(ctx context.Context, connID string) error
}

// Status is what the gateway says of a live connection.
type Status struct {
	ConnectedAt time.Time
	// LastActiveAt is when the connection was last active.
	LastActiveAt time.Time
}

// Gateway is the part of the gateway a sweep needs: the status of a
// connection, and the means to tell it why it is closed and close it.
type Gateway interface {
	// Status returns a connection's status, or an error wrapping
	// router.ErrGone when the gateway no longer has it.
	Status(ctx context.Context, connID string) (Status, error)
	router.Sender
}

// Defaults of Config.
const (
	DefaultConcurrency = 16
	// DefaultHandshakeGrace is API Gateway's integration timeout (29 s),
	// the longest a $connect can run, and a second.
	DefaultHandshakeGrace = 30 * time.Second
)

// Config tunes a Sweeper. The zero value of each field means its default.
type Config struct {
	// Gateway names the gateway swept (its management endpoint, as its
	// routers record it with each connection): connections of other
	// gateways sharing the registry are never touched, since this gateway
	// would answer 410 for every one of them.
	Gateway string
	// PingInterval is the heartbeat interval announced to identified
	// connections: one silent for longer than twice this is closed with
	// PING_TIMEOUT. Default router.DefaultPingInterval (30s).
	PingInterval time.Duration
	// IdentifyTimeout is how long a connection may stay anonymous; one
	// that is older and still anonymous is closed with IDENTIFY_FAILED.
	// Default router.DefaultIdentifyTimeout (10s).
	IdentifyTimeout time.Duration
	// Concurrency bounds the connections checked at once (status calls in
	// flight). Default 16: 10,000 connections at 20 ms a call take about
	// 13 s, well under the account's @connections rate limit.
	Concurrency int
	// HandshakeGrace protects connections still in their handshake: until
	// $connect has returned, the gateway answers 410 for a connection that
	// $connect has already recorded. A connection the gateway does not
	// have is removed only once it was recorded at least this long ago;
	// younger ones are left for a later sweep. Default 30s
	// (DefaultHandshakeGrace).
	HandshakeGrace time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives one line per connection closed or removed, and
	// failures. Default slog.Default().
	Logger *slog.Logger
}

// Sweeper sweeps one registry against one gateway.
type Sweeper struct {
	reg Registry
	gw  Gateway
	cfg Config
}

// New returns a Sweeper, or an error if cfg is invalid.
func New(reg Registry, gw Gateway, cfg Config) (*Sweeper, error) {
	switch {
	case cfg.PingInterval == 0:
		cfg.PingInterval = router.DefaultPingInterval
	case cfg.PingInterval < 0:
		return nil, fmt.Errorf("sweep: ping interval %v: want a positive duration", cfg.PingInterval)
	}
	switch {
	case cfg.IdentifyTimeout == 0:
		cfg.IdentifyTimeout = router.DefaultIdentifyTimeout
	case cfg.IdentifyTimeout < 0:
		return nil, fmt.Errorf("sweep: identify timeout %v: want a positive duration", cfg.IdentifyTimeout)
	}
	switch {
	case cfg.Concurrency == 0:
		cfg.Concurrency = DefaultConcurrency
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("sweep: concurrency %d: want at least 1", cfg.Concurrency)
	}
	switch {
	case cfg.HandshakeGrace == 0:
		cfg.HandshakeGrace = DefaultHandshakeGrace
	case cfg.HandshakeGrace < 0:
		return nil, fmt.Errorf("sweep: handshake grace %v: want a positive duration", cfg.HandshakeGrace)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{reg: reg, gw: gw, cfg: cfg}, nil
}

// Report counts what one sweep found and did.
type Report struct {
	// Checked is the number of connections listed and checked.
	Checked int64 `json:"checked"`
	// Gone connections were unknown to the gateway: their items were removed.
	Gone int64 `json:"gone"`
	// Young connections were unknown to the gateway but recorded less than
	// HandshakeGrace ago (maybe still in their handshake): left for a later
	// sweep.
	Young int64 `json:"young"`
	// Silent connections were closed with 4008 PING_TIMEOUT.
	Silent int64 `json:"silent"`
	// Anonymous connections were closed with 4004 IDENTIFY_FAILED.
	Anonymous int64 `json:"anonymous"`
	// Failed checks met an error (the registry or the gateway failing);
	// the next sweep tries them again.
	Failed int64 `json:"failed"`
}

type counters struct{ checked, gone, young, silent, anonymous, failed atomic.Int64 }

func (c *counters) report() Report {
	return Report{Checked: c.checked.Load(), Gone: c.gone.Load(), Young: c.young.Load(),
		Silent: c.silent.Load(), Anonymous: c.anonymous.Load(), Failed: c.failed.Load()}
}

// Run sweeps once: it lists every connection of the registry and checks
// each with the gateway, Concurrency at a time. It returns what it found,
// and an error when listing failed or when ctx ended before every
// connection was checked; failed checks are counted, not returned.
func (s *Sweeper) Run(ctx context.Context) (Report, error) {
	var (
		n     counters
		wg    sync.WaitGroup
		slots = make(chan struct{}, s.cfg.Concurrency)
	)
	err := s.reg.Connections(ctx, s.cfg.Gateway, func(page []router.Connection) error {
		for _, c := range page {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				n.checked.Add(1)
				if err := s.check(ctx, c, &n); err != nil {
					n.failed.Add(1)
					s.cfg.Logger.Warn("sweep: check failed", telemetry.LogConnectionID, c.ID, "err", err)
				}
			}()
		}
		return nil
	})
	wg.Wait()
	r := n.report()
	if err != nil {
		return r, fmt.Errorf("sweep: list connections: %w", err)
	}
	if err := ctx.Err(); err != nil { // listed in time, but not every check ran
		return r, fmt.Errorf("sweep: %d of the connections checked before the time ran out: %w", r.Checked-r.Failed, err)
	}
	return r, nil
}

// check decides the fate of one listed connection.
func (s *Sweeper) check(ctx context.Context, c router.Connection, n *counters) error {
	st, err := s.gw.Status(ctx, c.ID)
	now := s.cfg.Now()
	if errors.Is(err, router.ErrGone) {
		if now.Sub(c.ConnectedAt) < s.cfg.HandshakeGrace {
			n.young.Add(1) // perhaps its $connect has not returned yet
			return nil
		}
		if err := s.reg.RemoveConnection(ctx, c.ID); err != nil {
			return fmt.Errorf("remove gone connection: %w", err)
		}
		n.gone.Add(1)
		s.cfg.Logger.Info("sweep: removed a connection the gateway does not have", telemetry.LogConnectionID, c.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if c.Identity == nil {
		connectedAt := c.ConnectedAt
		if !st.ConnectedAt.IsZero() {
			connectedAt = st.ConnectedAt
		}
		age := now.Sub(connectedAt)
		if age <= s.cfg.IdentifyTimeout {
			return nil
		}
		// The listing may be stale: read the connection again before
		// closing it for not having identified.
		cur, err := s.reg.Connection(ctx, c.ID)
		if errors.Is(err, router.ErrNotFound) {
			return nil // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("read connection: %w", err)
		}
		if cur.Identity != nil {
			return nil
		}
		pe := protocol.Errorf(protocol.CodeIdentifyFailed, "a connection must IDENTIFY within %v of connecting; this one is %v old",
			s.cfg.IdentifyTimeout, age.Round(time.Second))
		if err := s.closeAndRemove(ctx, c.ID, pe); err != nil {
			return err
		}
		n.anonymous.Add(1)
		s.cfg.Logger.Info("sweep: closed a connection that did not identify", telemetry.LogConnectionID, c.ID, "age", age.Round(time.Millisecond).String())
		return nil
	}
	limit := 2 * s.cfg.PingInterval
	silent := now.Sub(st.LastActiveAt)
	if st.LastActiveAt.IsZero() || silent <= limit {
		return nil
	}
	pe := protocol.Errorf(protocol.CodePingTimeout, "nothing received for %v; PING at least every %v",
		silent.Round(time.Second), s.cfg.PingInterval)
	if err := s.closeAndRemove(ctx, c.ID, pe); err != nil {
		return err
	}
	n.silent.Add(1)
	s.cfg.Logger.Info("sweep: closed a silent connection", telemetry.LogConnectionID, c.ID, telemetry.LogServiceID, c.Identity.ServiceID,
		"silent", silent.Round(time.Millisecond).String())
	return nil
}

// closeAndRemove posts the DISCONNECT frame of pe (so that it arrives
// before the close), closes the connection and removes its items. The
// gateway's $disconnect removes them too; removal is idempotent.
func (s *Sweeper) closeAndRemove(ctx context.Context, connID string, pe *protocol.Error) error {
	if err := s.gw.Send(ctx, connID, protocol.ErrorFrame(pe)); err != nil && !errors.Is(err, router.ErrGone) {
		return fmt.Errorf("send DISCONNECT %d: %w", pe.Code, err)
	}
	if err := s.gw.Close(ctx, connID); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := s.reg.RemoveConnection(ctx, connID); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}
