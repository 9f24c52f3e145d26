package router

import (
	"context"
	"errors"
	"time"

	"github.com/mastersocket/mastersocket/internal/token"
)

// Errors that stores and senders return, and the router recognises.
var (
	// ErrNotFound: no such connection, service or token.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyIdentified: the connection has identified before.
	ErrAlreadyIdentified = errors.New("connection already identified")
	// ErrGone: the connection no longer exists at the gateway (HTTP 410).
	ErrGone = errors.New("connection gone")
	// ErrThrottled: the gateway refused a post for its rate (HTTP 429)
	// past the sender's retries; the frame was not delivered.
	ErrThrottled = errors.New("throttled")
)

// Connection is one WebSocket connection as the registry knows it.
type Connection struct {
	// ID is the gateway's connection id.
	ID          string
	ConnectedAt time.Time
	// ExpiresAt is when the registry may forget the connection and its
	// mappings on its own: the gateway closes every connection before then.
	ExpiresAt time.Time
	// Gateway names the gateway the connection belongs to (its management
	// endpoint, with the stage): the sweeper of a gateway lists only that
	// gateway's connections.
	Gateway   string
	SourceIP  string
	UserAgent string
	// Identity is nil until the connection has identified.
	Identity *Identity
}

// Identity is what a successful IDENTIFY gives a connection. It never
// changes afterwards, which is why the router may cache it.
type Identity struct {
	ServiceID    string
	Group        string
	IdentifiedAt time.Time
}

// Member is one identified connection of a GROUP or GLOBAL fan-out.
type Member struct {
	ConnectionID string
	// ServiceID may be empty: a store need not keep it with the
	// membership (the DynamoDB store does not, to read fewer bytes). A
	// gone member's cached route to its service is then dropped by the
	// next DIRECT's own 410.
	ServiceID string
}

// Store is the registry of connections, services, groups and tokens that the
// router needs. Implementations must be safe for concurrent use.
type Store interface {
	// AddConnection records a new connection: anonymous when c.Identity is
	// nil; otherwise identified, and reachable by service id, by group and
	// by GLOBAL, all at once, as Identify makes it (a handshake that the
	// gateway authenticated). It returns ErrAlreadyIdentified if the
	// identity's service id belongs to another connection.
	AddConnection(ctx context.Context, c Connection) error
	// Identify gives the recorded connection c.ID the identity c.Identity,
	// and makes it reachable by service id, by group and by GLOBAL, all at
	// once. It returns ErrAlreadyIdentified when the connection has an
	// identity already, and ErrNotFound when the connection is not recorded
	// (it has gone).
	Identify(ctx context.Context, c Connection) error
	// Connection returns a recorded connection, or ErrNotFound.
	Connection(ctx context.Context, connID string) (Connection, error)
	// ServiceConnection returns the connection id of a service, or ErrNotFound.
	ServiceConnection(ctx context.Context, serviceID string) (string, error)
	// GroupMembers calls fn with each page of the group's identified
	// connections, one page at a time, and stops at fn's first error.
	GroupMembers(ctx context.Context, group string, fn func([]Member) error) error
	// AllMembers calls fn with each page of every identified connection; it
	// may call fn from several goroutines at once.
	AllMembers(ctx context.Context, fn func([]Member) error) error
	// RemoveConnection forgets a connection and every mapping to it. It is
	// idempotent: removing an unknown connection is not an error.
	RemoveConnection(ctx context.Context, connID string) error
	// Token returns the stored token whose hash is h, or ErrNotFound.
	Token(ctx context.Context, h token.Hash) (token.Token, error)
}

// Sender reaches connections through the gateway.
type Sender interface {
	// Send delivers one frame to a connection; it returns ErrGone (wrapped
	// or not) when the connection no longer exists.
	Send(ctx context.Context, connID string, frame []byte) error
	// Close closes a connection; closing a gone connection is not an error.
	Close(ctx context.Context, connID string) error
}
