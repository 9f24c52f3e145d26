package authorizer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/authorizer"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// tokens is a token store that counts its reads.
type tokens struct {
	mu    sync.Mutex
	byKey map[token.Hash]token.Token
	reads atomic.Int64
	fail  error
	// gate, when set, holds every read until it is closed.
	gate chan struct{}
}

func newTokens(ts ...token.Token) *tokens {
	s := &tokens{byKey: map[token.Hash]token.Token{}}
	for _, t := range ts {
		s.byKey[t.Hash] = t
	}
	return s
}

func (s *tokens) Token(ctx context.Context, h token.Hash) (token.Token, error) {
	s.reads.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, err // as the SDK does
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return token.Token{}, s.fail
	}
	t, ok := s.byKey[h]
	if !ok {
		return token.Token{}, router.ErrNotFound
	}
	return t, nil
}

func (s *tokens) delete(h token.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, h)
}

const (
	allGroups = "mst_all-groups-token"
	botsOnly  = "mst_bots-only-token"
	expired   = "mst_expired-token"
)

var epoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func store() *tokens {
	return newTokens(
		token.Token{Hash: token.HashOf(allGroups), AllGroups: true},
		token.Token{Hash: token.HashOf(botsOnly), Groups: []string{"bots"}},
		token.Token{Hash: token.HashOf(expired), AllGroups: true, ExpiresAt: epoch.Add(-time.Second)},
	)
}

func newAuthorizer(t *testing.T, s authorizer.Tokens, cfg authorizer.Config) *authorizer.Authorizer {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return epoch }
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return "service-1" }
	}
	a, err := authorizer.New(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func hs(headers map[string][]string, query map[string][]string) authorizer.Handshake {
	return authorizer.Handshake{Headers: headers, Query: query}
}

func TestAuthorize(t *testing.T) {
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	q := func(group string) map[string][]string { return map[string][]string{"group": {group}} }
	tests := []struct {
		name string
		hs   authorizer.Handshake
		// want is the group of an accepted handshake; status is 401 or 403
		// for a refused one.
		want   string
		status int
		reads  int64
	}{
		{"a bearer token and a group header are accepted",
			hs(h("Authorization", "Bearer "+allGroups, "X-Mastersocket-Group", "bots"), nil), "bots", 0, 1},
		{"header names and the scheme are matched without regard to case",
			hs(h("authorization", "bearer "+allGroups, "x-mastersocket-group", "bots"), nil), "bots", 0, 1},
		{"the group may come in the query string",
			hs(h("Authorization", "Bearer "+botsOnly), q("bots")), "bots", 0, 1},
		{"a browser's subprotocol token is accepted",
			hs(h("Sec-WebSocket-Protocol", "mastersocket, bearer."+allGroups), q("web")), "web", 0, 1},
		{"the same token in both places is accepted",
			hs(h("Authorization", "Bearer "+allGroups, "Sec-WebSocket-Protocol", "mastersocket, bearer."+allGroups), q("web")), "web", 0, 1},
		{"no token is 401 without a read",
			hs(h("X-Mastersocket-Group", "bots"), nil), "", 401, 0},
		{"a Basic authorization is 401 without a read",
			hs(h("Authorization", "Basic dXNlcjpwdw==", "X-Mastersocket-Group", "bots"), nil), "", 401, 0},
		{"a bearer without a token is 401",
			hs(h("Authorization", "Bearer ", "X-Mastersocket-Group", "bots"), nil), "", 401, 0},
		{"two different tokens are 401",
			hs(h("Authorization", "Bearer "+allGroups, "Sec-WebSocket-Protocol", "mastersocket, bearer."+botsOnly), q("bots")), "", 401, 0},
		{"a token over the size limit is 401",
			hs(h("Authorization", "Bearer "+strings.Repeat("x", 513)), q("bots")), "", 401, 0},
		{"an unknown token is 401",
			hs(h("Authorization", "Bearer mst_nobody"), q("bots")), "", 401, 1},
		{"an expired token is 401",
			hs(h("Authorization", "Bearer "+expired), q("bots")), "", 401, 1},
		{"no group is 403 without a read",
			hs(h("Authorization", "Bearer "+allGroups), nil), "", 403, 0},
		{"a group that is not a group name is 403 without a read",
			hs(h("Authorization", "Bearer "+allGroups), q("no spaces")), "", 403, 0},
		{"two different groups are 403",
			hs(h("Authorization", "Bearer "+allGroups, "X-Mastersocket-Group", "a"), q("b")), "", 403, 0},
		{"a group the token does not allow is 403",
			hs(h("Authorization", "Bearer "+botsOnly), q("admins")), "", 403, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store()
			a := newAuthorizer(t, s, authorizer.Config{})
			id, err := a.Authorize(t.Context(), tt.hs)
			if got := s.reads.Load(); got != tt.reads {
				t.Errorf("got %d token reads, want %d", got, tt.reads)
			}
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("got %v, want the handshake accepted", err)
				}
				if id.Group != tt.want || id.ServiceID != "service-1" || id.TokenID == "" {
					t.Errorf("got identity %+v, want group %q, service-1 and a token id", id, tt.want)
				}
				return
			}
			var r *authorizer.Refusal
			if !errors.As(err, &r) {
				t.Fatalf("got %v (%+v), want a refusal %d", err, id, tt.status)
			}
			if got := map[bool]int{true: 401, false: 403}[r.Unauthorized]; got != tt.status {
				t.Errorf("got %d (%v), want %d", got, r, tt.status)
			}
			for _, tok := range []string{allGroups, botsOnly, expired} {
				if strings.Contains(r.Error(), tok) {
					t.Errorf("the refusal %q names the token", r.Error())
				}
			}
		})
	}
}

func TestAReconnectStormReadsEachTokenOnce(t *testing.T) {
	s := store()
	s.gate = make(chan struct{})
	a := newAuthorizer(t, s, authorizer.Config{})
	req := hs(map[string][]string{"Authorization": {"Bearer " + botsOnly}}, map[string][]string{"group": {"bots"}})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			_, err := a.Authorize(context.Background(), req)
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond) // let them all reach the lookup
	close(s.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a handshake of the storm was refused: %v", err)
		}
	}
	if got := s.reads.Load(); got != 1 {
		t.Errorf("200 concurrent handshakes with one token read the table %d times, want 1", got)
	}
	if got := a.Reads(); got != 1 {
		t.Errorf("Reads() = %d, want 1", got)
	}
}

func TestARevokedTokenWorksUntilTheCacheExpires(t *testing.T) {
	s := store()
	now := epoch
	a := newAuthorizer(t, s, authorizer.Config{CacheTTL: 30 * time.Second, Now: func() time.Time { return now }})
	req := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	if _, err := a.Authorize(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	s.delete(token.HashOf(allGroups))
	now = now.Add(29 * time.Second)
	if _, err := a.Authorize(t.Context(), req); err != nil {
		t.Errorf("29 s after the lookup, a revoked token was refused (%v): the cache should still hold it", err)
	}
	now = now.Add(2 * time.Second)
	var r *authorizer.Refusal
	if _, err := a.Authorize(t.Context(), req); !errors.As(err, &r) || !r.Unauthorized {
		t.Errorf("31 s after the lookup, a revoked token got %v, want 401", err)
	}
	if got := s.reads.Load(); got != 2 {
		t.Errorf("got %d reads, want 2 (one per cache period)", got)
	}
}

func TestExpiryIsCheckedOnCachedTokens(t *testing.T) {
	tok := "mst_expires-soon"
	s := newTokens(token.Token{Hash: token.HashOf(tok), AllGroups: true, ExpiresAt: epoch.Add(5 * time.Second)})
	now := epoch
	a := newAuthorizer(t, s, authorizer.Config{Now: func() time.Time { return now }})
	req := hs(map[string][]string{"Authorization": {"Bearer " + tok}}, map[string][]string{"group": {"g"}})
	if _, err := a.Authorize(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Second)
	if _, err := a.Authorize(t.Context(), req); err == nil {
		t.Error("a cached token past its expiry was accepted")
	}
}

func TestUnknownTokensAreCachedToo(t *testing.T) {
	s := store()
	a := newAuthorizer(t, s, authorizer.Config{})
	req := hs(map[string][]string{"Authorization": {"Bearer mst_guess"}}, map[string][]string{"group": {"g"}})
	for range 5 {
		if _, err := a.Authorize(t.Context(), req); err == nil {
			t.Fatal("an unknown token was accepted")
		}
	}
	if got := s.reads.Load(); got != 1 {
		t.Errorf("5 handshakes with one unknown token read the table %d times, want 1", got)
	}
}

func TestTheCacheCanBeTurnedOff(t *testing.T) {
	s := store()
	a := newAuthorizer(t, s, authorizer.Config{CacheTTL: -1})
	req := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	for range 3 {
		if _, err := a.Authorize(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.reads.Load(); got != 3 {
		t.Errorf("got %d reads with the cache off, want 3", got)
	}
}

func TestTheCacheIsBounded(t *testing.T) {
	var ts []token.Token
	for _, p := range []string{"mst_a", "mst_b", "mst_c"} {
		ts = append(ts, token.Token{Hash: token.HashOf(p), AllGroups: true})
	}
	s := newTokens(ts...)
	a := newAuthorizer(t, s, authorizer.Config{CacheSize: 2})
	for _, p := range []string{"mst_a", "mst_b", "mst_c", "mst_a"} {
		req := hs(map[string][]string{"Authorization": {"Bearer " + p}}, map[string][]string{"group": {"g"}})
		if _, err := a.Authorize(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.reads.Load(); got != 4 {
		t.Errorf("got %d reads, want 4: with room for 2 tokens, mst_a was evicted by mst_c", got)
	}
}

func TestAStoreFailureIsAFaultNotARefusal(t *testing.T) {
	s := store()
	s.fail = errors.New("table unreachable")
	a := newAuthorizer(t, s, authorizer.Config{})
	req := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	_, err := a.Authorize(t.Context(), req)
	var r *authorizer.Refusal
	if err == nil || errors.As(err, &r) {
		t.Fatalf("got %v, want a fault (not a refusal)", err)
	}
	s.fail = nil
	if _, err := a.Authorize(t.Context(), req); err != nil {
		t.Errorf("a failed lookup was cached: %v", err)
	}
}

func TestAFloodOfGuessedTokensCannotPushTheRealOnesOut(t *testing.T) {
	s := store()
	a := newAuthorizer(t, s, authorizer.Config{CacheSize: 100})
	real := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	if _, err := a.Authorize(t.Context(), real); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		guess := hs(map[string][]string{"Authorization": {fmt.Sprintf("Bearer mst_guess-%d", i)}}, map[string][]string{"group": {"g"}})
		if _, err := a.Authorize(t.Context(), guess); err == nil {
			t.Fatal("a guess was accepted")
		}
	}
	before := s.reads.Load()
	if _, err := a.Authorize(t.Context(), real); err != nil {
		t.Fatal(err)
	}
	if s.reads.Load() != before {
		t.Error("after 1,000 guessed tokens the real one was read again: the guesses pushed it out of the cache")
	}
}

// panicky is a token store whose first read panics.
type panicky struct {
	*tokens
	once sync.Once
}

func (p *panicky) Token(ctx context.Context, h token.Hash) (token.Token, error) {
	p.once.Do(func() { panic("store bug") })
	return p.tokens.Token(ctx, h)
}

func TestAPanickingLookupDoesNotWedgeTheToken(t *testing.T) {
	a := newAuthorizer(t, &panicky{tokens: store()}, authorizer.Config{})
	req := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	func() {
		defer func() { recover() }() // as the Lambda runtime, or the emulator, recovers it
		a.Authorize(t.Context(), req)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := a.Authorize(ctx, req); err != nil {
		t.Fatalf("after a lookup panicked, the next handshake got %v", err)
	}
}

func TestAWaiterReadsAgainWhenItsLeaderGaveUp(t *testing.T) {
	s := store()
	s.gate = make(chan struct{})
	a := newAuthorizer(t, s, authorizer.Config{})
	req := hs(map[string][]string{"Authorization": {"Bearer " + allGroups}}, map[string][]string{"group": {"g"}})
	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leaderDone := make(chan error, 1)
	go func() { _, err := a.Authorize(leaderCtx, req); leaderDone <- err }()
	time.Sleep(20 * time.Millisecond)
	waiterDone := make(chan error, 1)
	go func() { _, err := a.Authorize(t.Context(), req); waiterDone <- err }()
	time.Sleep(20 * time.Millisecond)
	cancelLeader()
	close(s.gate) // the store answers the leader with its cancelled context
	<-leaderDone
	if err := <-waiterDone; err != nil {
		t.Errorf("a waiter got its leader's cancellation: %v", err)
	}
}
