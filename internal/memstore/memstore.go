// Package memstore is the registry of connections, services, groups and
// tokens held in memory: the embedded default of the local gateway and the
// store of fast tests. It follows the same contract as the DynamoDB store.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// DefaultPageSize is the number of members per page of GroupMembers and
// AllMembers.
const DefaultPageSize = 1000

// Store is an in-memory registry. The zero value is not usable; call New.
type Store struct {
	// PageSize is the number of members per page; zero means DefaultPageSize.
	PageSize int
	// Now returns the current time, to ignore expired entries; nil means
	// time.Now.
	Now func() time.Time

	mu       sync.RWMutex
	conns    map[string]router.Connection
	services map[string]string            // service id → connection id
	groups   map[string]map[string]string // group → connection id → service id
	tokens   map[token.Hash]token.Token
}

var _ router.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		conns:    make(map[string]router.Connection),
		services: make(map[string]string),
		groups:   make(map[string]map[string]string),
		tokens:   make(map[token.Hash]token.Token),
	}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) pageSize() int {
	if s.PageSize > 0 {
		return s.PageSize
	}
	return DefaultPageSize
}

// live returns a connection that is recorded and has not expired.
// The caller holds s.mu.
func (s *Store) live(connID string) (router.Connection, bool) {
	c, ok := s.conns[connID]
	if !ok || !s.now().Before(c.ExpiresAt) {
		return router.Connection{}, false
	}
	return c, true
}

// AddConnection records a new connection, anonymous or, with c.Identity,
// identified (see Identify).
func (s *Store) AddConnection(_ context.Context, c router.Connection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Identity == nil {
		s.conns[c.ID] = c
		return nil
	}
	if _, taken := s.services[c.Identity.ServiceID]; taken {
		return router.ErrAlreadyIdentified
	}
	id := *c.Identity
	c.Identity = nil
	s.conns[c.ID] = c
	s.identifyLocked(c, id)
	return nil
}

// Identify gives a recorded connection its identity, and makes it reachable
// by service id, group and GLOBAL at once.
func (s *Store) Identify(_ context.Context, c router.Connection) error {
	if c.Identity == nil {
		return errors.New("identify: no identity given")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.live(c.ID)
	if !ok {
		return router.ErrNotFound
	}
	if cur.Identity != nil {
		return router.ErrAlreadyIdentified
	}
	if _, taken := s.services[c.Identity.ServiceID]; taken {
		return router.ErrAlreadyIdentified
	}
	s.identifyLocked(cur, *c.Identity)
	return nil
}

// identifyLocked records connection c with identity id, and its service,
// group and GLOBAL mappings. The caller holds s.mu.
func (s *Store) identifyLocked(c router.Connection, id router.Identity) {
	c.Identity = &id
	s.conns[c.ID] = c
	s.services[id.ServiceID] = c.ID
	members := s.groups[id.Group]
	if members == nil {
		members = make(map[string]string)
		s.groups[id.Group] = members
	}
	members[c.ID] = id.ServiceID
}

// Connection returns a recorded connection, or router.ErrNotFound.
func (s *Store) Connection(_ context.Context, connID string) (router.Connection, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.live(connID)
	if !ok {
		return router.Connection{}, router.ErrNotFound
	}
	if c.Identity != nil {
		id := *c.Identity
		c.Identity = &id
	}
	return c, nil
}

// ServiceConnection returns the connection id of a service, or
// router.ErrNotFound.
func (s *Store) ServiceConnection(_ context.Context, serviceID string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	connID, ok := s.services[serviceID]
	if !ok {
		return "", router.ErrNotFound
	}
	if _, ok := s.live(connID); !ok {
		return "", router.ErrNotFound
	}
	return connID, nil
}

// GroupMembers calls fn with each page of the group's identified connections.
func (s *Store) GroupMembers(ctx context.Context, group string, fn func([]router.Member) error) error {
	s.mu.RLock()
	members := make([]router.Member, 0, len(s.groups[group]))
	for connID, serviceID := range s.groups[group] {
		if _, ok := s.live(connID); ok {
			members = append(members, router.Member{ConnectionID: connID, ServiceID: serviceID})
		}
	}
	s.mu.RUnlock()
	return pages(ctx, s.pageSize(), members, fn)
}

// AllMembers calls fn with each page of every identified connection.
func (s *Store) AllMembers(ctx context.Context, fn func([]router.Member) error) error {
	s.mu.RLock()
	members := make([]router.Member, 0, len(s.services))
	for serviceID, connID := range s.services {
		if _, ok := s.live(connID); ok {
			members = append(members, router.Member{ConnectionID: connID, ServiceID: serviceID})
		}
	}
	s.mu.RUnlock()
	return pages(ctx, s.pageSize(), members, fn)
}

// Connections calls fn with each page of every recorded connection of a
// gateway, identified or not, expired or not, in no particular order: what
// the sweeper checks against the gateway.
func (s *Store) Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error {
	s.mu.RLock()
	conns := make([]router.Connection, 0, len(s.conns))
	for _, c := range s.conns {
		if c.Gateway != gateway {
			continue
		}
		if c.Identity != nil {
			id := *c.Identity
			c.Identity = &id
		}
		conns = append(conns, c)
	}
	s.mu.RUnlock()
	return pages(ctx, s.pageSize(), conns, fn)
}

// pages calls fn with items in pages, outside the lock, so that fn may
// call back into the store; it stops when ctx ends.
func pages[T any](ctx context.Context, size int, members []T, fn func([]T) error) error {
	for len(members) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(size, len(members))
		if err := fn(members[:n:n]); err != nil {
			return err
		}
		members = members[n:]
	}
	return nil
}

// RemoveConnection forgets a connection and its mappings; it is idempotent.
func (s *Store) RemoveConnection(_ context.Context, connID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[connID]
	if !ok {
		return nil
	}
	delete(s.conns, connID)
	if c.Identity == nil {
		return nil
	}
	if s.services[c.Identity.ServiceID] == connID {
		delete(s.services, c.Identity.ServiceID)
	}
	if members := s.groups[c.Identity.Group]; members != nil {
		delete(members, connID)
		if len(members) == 0 {
			delete(s.groups, c.Identity.Group)
		}
	}
	return nil
}

// Token returns the stored token whose hash is h, or router.ErrNotFound.
func (s *Store) Token(_ context.Context, h token.Hash) (token.Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tokens[h]
	if !ok {
		return token.Token{}, router.ErrNotFound
	}
	t.Groups = slices.Clone(t.Groups)
	return t, nil
}

// PutToken stores a new token; it returns token.ErrExists if its hash is
// stored already.
func (s *Store) PutToken(_ context.Context, t token.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[t.Hash]; ok {
		return token.ErrExists
	}
	t.Groups = slices.Clone(t.Groups)
	s.tokens[t.Hash] = t
	return nil
}

// Tokens returns every stored token, oldest first.
func (s *Store) Tokens(_ context.Context) ([]token.Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]token.Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		t.Groups = slices.Clone(t.Groups)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b token.Token) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Hash.String(), b.Hash.String()))
	})
	return out, nil
}

// ExtendToken sets a stored token's expiry; it returns router.ErrNotFound
// if there is no such token (it was revoked).
func (s *Store) ExtendToken(_ context.Context, h token.Hash, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[h]
	if !ok {
		return router.ErrNotFound
	}
	t.ExpiresAt = expiresAt
	s.tokens[h] = t
	return nil
}

// DeleteToken removes a token; it returns router.ErrNotFound if there is none.
func (s *Store) DeleteToken(_ context.Context, h token.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[h]; !ok {
		return router.ErrNotFound
	}
	delete(s.tokens, h)
	return nil
}
