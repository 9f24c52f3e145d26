// Package authorizer decides whether a WebSocket handshake may connect: it
// finds the credentials in the handshake (a service token and a group),
// checks the token as IDENTIFY does, and gives the connection its identity
// (a fresh service id, the group, the token's id). It is the logic of the
// $connect Lambda REQUEST authorizer; internal/handler wraps it in API
// Gateway's event types. It knows nothing of AWS.
//
// The token comes in the Authorization header as "Bearer <token>", or, for
// clients that cannot set headers (browsers), as the WebSocket subprotocol
// "bearer.<token>" offered beside "mastersocket". The group comes in the
// X-Mastersocket-Group header or the group query parameter.
//
// API Gateway does not cache the results of WebSocket authorizers, so the
// Authorizer keeps the token lookups of its warm container for CacheTTL, in
// a cache of at most CacheSize tokens: a reconnect storm reads each token
// once per container and TTL instead of once per handshake. The price is
// the revocation delay: a deleted token keeps opening connections on a warm
// container for up to CacheTTL. Expiry is exact: it is checked on every
// handshake, cached or not. Unknown tokens are cached too, apart and in a
// tenth of the room, so that a client retrying with a revoked token reads
// once per CacheTTL while a flood of guesses (one read each) cannot push
// the real tokens out.
package authorizer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/lru"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/telemetry"
	"github.com/mastersocket/mastersocket/internal/token"
)

// Where the credentials travel.
const (
	// HeaderAuthorization carries "Bearer <token>".
	HeaderAuthorization = "Authorization"
	// HeaderGroup carries the group the connection joins.
	HeaderGroup = "X-Mastersocket-Group"
	// QueryGroup is the query parameter that may carry the group instead.
	QueryGroup = "group"
	// HeaderSubprotocol is the WebSocket subprotocol header, where a
	// browser may put the token.
	HeaderSubprotocol = "Sec-WebSocket-Protocol"
	// Subprotocol is the subprotocol a client offers beside its token; the
	// $connect function selects it, since a browser refuses a handshake
	// whose answer selects none of the subprotocols it offered.
	Subprotocol = "mastersocket"
	// SubprotocolTokenPrefix starts the subprotocol that carries a token:
	// "bearer.mst_...".
	SubprotocolTokenPrefix = "bearer."
)

// Defaults of Config.
const (
	DefaultCacheTTL  = 30 * time.Second
	DefaultCacheSize = 10000
)

// Config tunes an Authorizer. The zero value of each field means its
// default.
type Config struct {
	// CacheTTL is how long a token lookup is reused, which is also how long
	// a deleted token may still open connections on a warm container.
	// Default 30 s; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the tokens cached. Default 10000; negative disables
	// the cache.
	CacheSize int
	// NewID returns a fresh service id. Default: a random UUID v4.
	NewID func() string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Tokens is where the authorizer looks tokens up: Token returns the stored
// token whose hash is h, or router.ErrNotFound.
type Tokens interface {
	Token(ctx context.Context, h token.Hash) (token.Token, error)
}

// Handshake is what the authorizer reads of a handshake request.
type Handshake struct {
	// Headers maps header names, in any case, to their values.
	Headers map[string][]string
	// Query maps query parameters to their values.
	Query map[string][]string
}

// Identity is what an accepted handshake gives its connection.
type Identity struct {
	// ServiceID is the connection's fresh service id (what DIRECT targets).
	ServiceID string
	Group     string
	// TokenID is the short id of the token (token.Hash.ID), for logs.
	TokenID string
}

// Refusal is a handshake refused for its credentials: Unauthorized (no
// token, or one that is unknown, expired or malformed: HTTP 401) or
// forbidden (a valid token, but a group it does not allow or no usable
// group: HTTP 403). Reason is for the operator's logs; it never names the
// token. Outcome names the refusal in the telemetry (a telemetry.Outcome
// constant: no_token, invalid_token, expired_token, bad_group,
// group_not_allowed).
type Refusal struct {
	Unauthorized bool
	Reason       string
	Outcome      string
}

func (r *Refusal) Error() string {
	if r.Unauthorized {
		return "unauthorized: " + r.Reason
	}
	return "forbidden: " + r.Reason
}

func unauthorized(outcome, format string, args ...any) error {
	return &Refusal{Unauthorized: true, Reason: fmt.Sprintf(format, args...), Outcome: outcome}
}

func forbidden(outcome, format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...), Outcome: outcome}
}

// Authorizer checks handshakes. It is safe for concurrent use.
type Authorizer struct {
	tokens Tokens
	cfg    Config
	// cache holds tokens found, missing the hashes of tokens that are not
	// stored: apart, so that a flood of guessed tokens cannot push the
	// real ones out.
	cache   *lru.Cache[token.Hash, lookup]
	missing *lru.Cache[token.Hash, lookup]

	mu       sync.Mutex
	inFlight map[token.Hash]*call
	reads    atomic.Int64
}

// lookup is a cached answer of Tokens: the token, or that there is none.
type lookup struct {
	tok   token.Token
	found bool
	at    time.Time
}

// call is a lookup in flight, which concurrent handshakes with the same
// token wait for instead of reading the table too.
type call struct {
	done chan struct{}
	res  lookup
	err  error
}

// missingSize is the size of the cache of unknown tokens: a tenth of the
// tokens', enough for a client retrying with a revoked token.
func missingSize(size int) int {
	if size < 1 {
		return size
	}
	return max(size/10, 1)
}

// New returns an Authorizer over tokens, or an error if cfg is invalid.
func New(tokens Tokens, cfg Config) (*Authorizer, error) {
	if tokens == nil {
		return nil, errors.New("authorizer: a token store is required")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.CacheTTL < 0 {
		cfg.CacheSize = -1
	}
	if cfg.NewID == nil {
		cfg.NewID = uuid.NewString
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authorizer{
		tokens:   tokens,
		cfg:      cfg,
		cache:    lru.New[token.Hash, lookup](cfg.CacheSize),
		missing:  lru.New[token.Hash, lookup](missingSize(cfg.CacheSize)),
		inFlight: make(map[token.Hash]*call),
	}, nil
}

// Reads returns the number of token lookups that reached the store.
func (a *Authorizer) Reads() int64 { return a.reads.Load() }

// Authorize checks a handshake and returns the identity of its connection.
// A handshake refused for its credentials gets a *Refusal; any other error
// means the store failed. Credentials and the group are checked before the
// store is read, so a handshake without them costs no read.
func (a *Authorizer) Authorize(ctx context.Context, hs Handshake) (Identity, error) {
	plain, err := credential(hs)
	if err != nil {
		return Identity{}, err
	}
	group, err := groupOf(hs)
	if err != nil {
		return Identity{}, err
	}
	h := token.HashOf(plain)
	res, err := a.lookup(ctx, h)
	if err != nil {
		return Identity{}, err
	}
	switch {
	case !res.found || !res.tok.Matches(h):
		return Identity{}, unauthorized(telemetry.OutcomeInvalidToken, "unknown token")
	case res.tok.Expired(a.cfg.Now()):
		return Identity{}, unauthorized(telemetry.OutcomeExpiredToken, "token %s has expired", h.ID())
	case !res.tok.Allows(group):
		return Identity{}, forbidden(telemetry.OutcomeGroupNotAllowed, "token %s does not allow group %q", h.ID(), group)
	}
	return Identity{ServiceID: a.cfg.NewID(), Group: group, TokenID: h.ID()}, nil
}

// lookup returns the stored token of hash h, from the cache when it is
// fresh, sharing one read among concurrent handshakes with the same token.
// A waiter whose leader's own context ended reads again itself.
func (a *Authorizer) lookup(ctx context.Context, h token.Hash) (lookup, error) {
	for {
		if res, ok := a.cached(h); ok {
			return res, nil
		}
		a.mu.Lock()
		c, waiting := a.inFlight[h]
		if !waiting {
			c = &call{done: make(chan struct{})}
			a.inFlight[h] = c
		}
		a.mu.Unlock()
		if !waiting {
			a.read(ctx, h, c)
			return c.res, c.err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		if c.err == nil || !isContextError(c.err) || ctx.Err() != nil {
			return c.res, c.err
		}
		// The leader's handshake gave up, not the store: try again.
	}
}

// read looks h up in the store for the call c, and ends c however the
// lookup ends (a panicking store included).
func (a *Authorizer) read(ctx context.Context, h token.Hash, c *call) {
	defer func() {
		a.mu.Lock()
		delete(a.inFlight, h)
		a.mu.Unlock()
		close(c.done)
	}()
	c.err = errors.New("token lookup did not finish")
	a.reads.Add(1)
	tok, err := a.tokens.Token(ctx, h)
	switch {
	case err == nil:
		c.res, c.err = lookup{tok: tok, found: true, at: a.cfg.Now()}, nil
		a.cache.Add(h, c.res)
	case errors.Is(err, router.ErrNotFound):
		c.res, c.err = lookup{at: a.cfg.Now()}, nil
		a.missing.Add(h, c.res)
	default:
		c.err = fmt.Errorf("look up token %s: %w", h.ID(), err)
	}
}

// cached returns a fresh cached lookup of h.
func (a *Authorizer) cached(h token.Hash) (lookup, bool) {
	res, ok := a.cache.Get(h)
	if !ok {
		res, ok = a.missing.Get(h)
	}
	return res, ok && a.cfg.Now().Sub(res.at) < a.cfg.CacheTTL
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// header returns the values of a header, its name matched without regard
// to case.
func header(hs Handshake, name string) []string {
	var out []string
	for k, vs := range hs.Headers {
		if strings.EqualFold(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}

// credential returns the token of a handshake: from Authorization, or from
// a "bearer." subprotocol; both may be given only if they agree.
func credential(hs Handshake) (string, error) {
	var fromHeader, fromProtocol string
	switch auths := header(hs, HeaderAuthorization); len(auths) {
	case 0:
	case 1:
		scheme, tok, _ := strings.Cut(strings.TrimSpace(auths[0]), " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", unauthorized(telemetry.OutcomeNoToken, "the Authorization header is not \"Bearer <token>\"")
		}
		fromHeader = tok
	default:
		return "", unauthorized(telemetry.OutcomeNoToken, "%d Authorization headers", len(auths))
	}
	for _, v := range header(hs, HeaderSubprotocol) {
		for _, p := range strings.Split(v, ",") {
			tok, ok := strings.CutPrefix(strings.TrimSpace(p), SubprotocolTokenPrefix)
			if !ok {
				continue
			}
			if fromProtocol != "" && tok != fromProtocol {
				return "", unauthorized(telemetry.OutcomeNoToken, "two different tokens offered as subprotocols")
			}
			fromProtocol = tok
		}
	}
	tok := fromHeader
	switch {
	case fromHeader == "" && fromProtocol == "":
		return "", unauthorized(telemetry.OutcomeNoToken, "no token: send \"Authorization: Bearer <token>\" or the subprotocol %s<token>", SubprotocolTokenPrefix)
	case fromHeader == "":
		tok = fromProtocol
	case fromProtocol != "" && fromProtocol != fromHeader:
		return "", unauthorized(telemetry.OutcomeNoToken, "the Authorization header and the subprotocol carry different tokens")
	}
	if len(tok) > protocol.MaxTokenLen {
		return "", unauthorized(telemetry.OutcomeNoToken, "token of %d bytes, over %d", len(tok), protocol.MaxTokenLen)
	}
	return tok, nil
}

// groupOf returns the group a handshake asks for: from X-Mastersocket-Group
// or the group query parameter; both may be given only if they agree.
func groupOf(hs Handshake) (string, error) {
	values := append(header(hs, HeaderGroup), hs.Query[QueryGroup]...)
	if len(values) == 0 {
		return "", forbidden(telemetry.OutcomeBadGroup, "no group: send the %s header or the %s query parameter", HeaderGroup, QueryGroup)
	}
	g := strings.TrimSpace(values[0])
	for _, v := range values[1:] {
		if strings.TrimSpace(v) != g {
			return "", forbidden(telemetry.OutcomeBadGroup, "the handshake names two groups")
		}
	}
	if !protocol.ValidGroup(g) {
		return "", forbidden(telemetry.OutcomeBadGroup, "%q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", g, protocol.MaxGroupLen)
	}
	return g, nil
}
