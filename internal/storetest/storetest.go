// Package storetest is the contract that every registry (the in-memory store,
// the DynamoDB store) must meet, as one suite of tests that each store's own
// tests run against it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// Store is a registry with the token administration that socketctl uses.
type Store interface {
	router.Store
	Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error
	PutToken(ctx context.Context, t token.Token) error
	ExtendToken(ctx context.Context, h token.Hash, expiresAt time.Time) error
	Tokens(ctx context.Context) ([]token.Token, error)
	DeleteToken(ctx context.Context, h token.Hash) error
}

// Run runs the contract against fresh stores made by open, one per subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"ConnectionLifecycle", testConnectionLifecycle},
		{"AConnectionAddedIdentifiedIsReachableAtOnce", testAddIdentified},
		{"AConnectionAddedIdentifiedCannotTakeAServiceID", testAddIdentifiedTaken},
		{"IdentifyTwice", testIdentifyTwice},
		{"IdentifyUnknownConnection", testIdentifyUnknown},
		{"IdentifyAfterRemove", testIdentifyAfterRemove},
		{"ConcurrentIdentify", testConcurrentIdentify},
		{"ConcurrentIdentifiesAndRemovalsInOneGroup", testConcurrentInOneGroup},
		{"RemoveIsIdempotent", testRemoveIdempotent},
		{"GroupsAreSeparate", testGroupsSeparate},
		{"GroupOf300", testGroupOf300},
		{"AllMembers", testAllMembers},
		{"CallbackErrorStops", testCallbackErrorStops},
		{"ExpiredIsGone", testExpired},
		{"Tokens", testTokens},
		{"ConnectionsListsEveryRecordedConnection", testConnections},
		{"ConnectionsComeInPages", testConnectionsPages},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// now is truncated to milliseconds, the precision stores keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// gateway is the gateway of the connections the suite records.
const gateway = "https://storetest.example/dev"

func newConn() router.Connection {
	at := now()
	return router.Connection{
		ID:          uuid.NewString()[:15] + "=",
		Gateway:     gateway,
		ConnectedAt: at,
		ExpiresAt:   at.Add(2*time.Hour + 10*time.Minute),
		SourceIP:    "192.0.2.7",
		UserAgent:   "storetest",
	}
}

func identified(c router.Connection, group string) router.Connection {
	c.Identity = &router.Identity{ServiceID: uuid.NewString(), Group: group, IdentifiedAt: now()}
	return c
}

func add(t *testing.T, s Store, c router.Connection) {
	t.Helper()
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatalf("AddConnection: %v", err)
	}
}

// join records and identifies a new connection in group.
func join(t *testing.T, s Store, group string) router.Connection {
	t.Helper()
	c := newConn()
	add(t, s, c)
	c = identified(c, group)
	if err := s.Identify(t.Context(), c); err != nil {
		t.Fatalf("Identify: %v", err)
	}
	return c
}

func collect(t *testing.T, list func(func([]router.Member) error) error) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	err := list(func(page []router.Member) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range page {
			if _, dup := got[m.ConnectionID]; dup {
				return fmt.Errorf("member %s listed twice", m.ConnectionID)
			}
			got[m.ConnectionID] = m.ServiceID
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing members: %v", err)
	}
	return got
}

// holds reports whether a listing of members (connection id → service id)
// holds c. A fan-out listing may leave service ids empty: the router needs
// only the connection ids.
func holds(members map[string]string, c router.Connection) bool {
	sid, ok := members[c.ID]
	return ok && (sid == "" || sid == c.Identity.ServiceID)
}

func group(t *testing.T, s Store, name string) map[string]string {
	t.Helper()
	return collect(t, func(fn func([]router.Member) error) error { return s.GroupMembers(t.Context(), name, fn) })
}

func all(t *testing.T, s Store) map[string]string {
	t.Helper()
	return collect(t, func(fn func([]router.Member) error) error { return s.AllMembers(t.Context(), fn) })
}

// wantGone checks that nothing of c is reachable any more.
func wantGone(t *testing.T, s Store, c router.Connection) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Connection(ctx, c.ID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("Connection(%s): got %v, want ErrNotFound", c.ID, err)
	}
	if c.Identity == nil {
		return
	}
	if _, err := s.ServiceConnection(ctx, c.Identity.ServiceID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("ServiceConnection: got %v, want ErrNotFound", err)
	}
	if _, ok := group(t, s, c.Identity.Group)[c.ID]; ok {
		t.Errorf("%s is still a member of %s", c.ID, c.Identity.Group)
	}
	if _, ok := all(t, s)[c.ID]; ok {
		t.Errorf("%s is still listed by AllMembers", c.ID)
	}
}

func testConnectionLifecycle(t *testing.T, s Store) {
	ctx := t.Context()
	c := newConn()
	add(t, s, c)
	got, err := s.Connection(ctx, c.ID)
	if err != nil {
		t.Fatalf("Connection: %v", err)
	}
	if got.ID != c.ID || !got.ConnectedAt.Equal(c.ConnectedAt) || got.Identity != nil ||
		got.SourceIP != c.SourceIP || got.UserAgent != c.UserAgent {
		t.Fatalf("got %+v, want anonymous %+v", got, c)
	}

	c = identified(c, "bots")
	if err := s.Identify(ctx, c); err != nil {
		t.Fatalf("Identify: %v", err)
	}
	got, err = s.Connection(ctx, c.ID)
	if err != nil || got.Identity == nil {
		t.Fatalf("Connection after Identify: %+v, %v", got, err)
	}
	if got.Identity.ServiceID != c.Identity.ServiceID || got.Identity.Group != "bots" ||
		!got.Identity.IdentifiedAt.Equal(c.Identity.IdentifiedAt) {
		t.Errorf("got identity %+v, want %+v", *got.Identity, *c.Identity)
	}
	if to, err := s.ServiceConnection(ctx, c.Identity.ServiceID); err != nil || to != c.ID {
		t.Errorf("ServiceConnection: got %q, %v; want %q", to, err, c.ID)
	}
	if m := group(t, s, "bots"); !holds(m, c) || len(m) != 1 {
		t.Errorf("group bots: got %v", m)
	}
	if m := all(t, s); !holds(m, c) {
		t.Errorf("AllMembers lacks %s: %v", c.ID, m)
	}

	if err := s.RemoveConnection(ctx, c.ID); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}
	wantGone(t, s, c)
}

// testAddIdentified: a connection whose handshake was authenticated is
// recorded identified, and reachable by service id, group and GLOBAL, by
// AddConnection alone; it is listed with its gateway, and removed whole.
func testAddIdentified(t *testing.T, s Store) {
	ctx := t.Context()
	c := identified(newConn(), "edge")
	add(t, s, c)
	got, err := s.Connection(ctx, c.ID)
	if err != nil || got.Identity == nil {
		t.Fatalf("Connection: got %+v, %v; want it identified", got, err)
	}
	if *got.Identity != *c.Identity || !got.ConnectedAt.Equal(c.ConnectedAt) || got.SourceIP != c.SourceIP {
		t.Errorf("got %+v with identity %+v, want %+v with %+v", got, *got.Identity, c, *c.Identity)
	}
	if to, err := s.ServiceConnection(ctx, c.Identity.ServiceID); err != nil || to != c.ID {
		t.Errorf("ServiceConnection: got %q, %v; want %q", to, err, c.ID)
	}
	if m := group(t, s, "edge"); !holds(m, c) || len(m) != 1 {
		t.Errorf("group edge: got %v, want only %s", m, c.ID)
	}
	if m := all(t, s); !holds(m, c) {
		t.Errorf("AllMembers lacks %s: %v", c.ID, m)
	}
	listed := connections(t, s, func(m map[string]router.Connection) bool { _, ok := m[c.ID]; return ok })
	if l := listed[c.ID]; l.Identity == nil || l.Identity.ServiceID != c.Identity.ServiceID {
		t.Errorf("Connections lists %s as %+v, want it identified", c.ID, l)
	}
	if err := s.Identify(ctx, identified(c, "other")); !errors.Is(err, router.ErrAlreadyIdentified) {
		t.Errorf("Identify after an identified AddConnection: got %v, want ErrAlreadyIdentified", err)
	}
	if err := s.RemoveConnection(ctx, c.ID); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}
	wantGone(t, s, c)
}

// testAddIdentifiedTaken: a service id belongs to one connection only.
func testAddIdentifiedTaken(t *testing.T, s Store) {
	first := identified(newConn(), "edge")
	add(t, s, first)
	second := newConn()
	second.Identity = &router.Identity{ServiceID: first.Identity.ServiceID, Group: "edge", IdentifiedAt: now()}
	if err := s.AddConnection(t.Context(), second); !errors.Is(err, router.ErrAlreadyIdentified) {
		t.Fatalf("AddConnection with a taken service id: got %v, want ErrAlreadyIdentified", err)
	}
	if to, err := s.ServiceConnection(t.Context(), first.Identity.ServiceID); err != nil || to != first.ID {
		t.Errorf("ServiceConnection: got %q, %v; want the first connection %q", to, err, first.ID)
	}
	if m := group(t, s, "edge"); len(m) != 1 {
		t.Errorf("group edge: got %v, want only the first connection", m)
	}
}

func testIdentifyTwice(t *testing.T, s Store) {
	c := join(t, s, "a")
	again := identified(c, "b")
	if err := s.Identify(t.Context(), again); !errors.Is(err, router.ErrAlreadyIdentified) {
		t.Fatalf("second Identify: got %v, want ErrAlreadyIdentified", err)
	}
	got, err := s.Connection(t.Context(), c.ID)
	if err != nil || got.Identity == nil || got.Identity.ServiceID != c.Identity.ServiceID {
		t.Fatalf("identity changed: %+v, %v", got, err)
	}
	if _, err := s.ServiceConnection(t.Context(), again.Identity.ServiceID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("the refused service id is reachable: %v", err)
	}
	if len(group(t, s, "b")) != 0 {
		t.Error("the refused group has members")
	}
}

func testIdentifyUnknown(t *testing.T, s Store) {
	c := identified(newConn(), "g")
	if err := s.Identify(t.Context(), c); !errors.Is(err, router.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantGone(t, s, c)
}

func testIdentifyAfterRemove(t *testing.T, s Store) {
	c := newConn()
	add(t, s, c)
	if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	c = identified(c, "late")
	if err := s.Identify(t.Context(), c); !errors.Is(err, router.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantGone(t, s, c) // no orphaned mapping is left behind
}

func testConcurrentIdentify(t *testing.T, s Store) {
	const n = 8
	c := newConn()
	add(t, s, c)
	var (
		wg        sync.WaitGroup
		errs      = make([]error, n)
		attempts  = make([]router.Connection, n)
		successes []int
	)
	for i := range n {
		attempts[i] = identified(c, fmt.Sprintf("g%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Identify(context.WithoutCancel(t.Context()), attempts[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case err == nil:
			successes = append(successes, i)
		case !errors.Is(err, router.ErrAlreadyIdentified):
			t.Errorf("attempt %d: got %v, want nil or ErrAlreadyIdentified", i, err)
		}
	}
	if len(successes) != 1 {
		t.Fatalf("%d IDENTIFYs succeeded, want exactly 1", len(successes))
	}
	won := attempts[successes[0]]
	got, err := s.Connection(t.Context(), c.ID)
	if err != nil || got.Identity == nil || got.Identity.ServiceID != won.Identity.ServiceID {
		t.Fatalf("got %+v, %v; want the winner's identity", got, err)
	}
	for i, a := range attempts {
		_, err := s.ServiceConnection(t.Context(), a.Identity.ServiceID)
		if reachable := err == nil; reachable != (i == successes[0]) {
			t.Errorf("attempt %d: service reachable = %v", i, reachable)
		}
		if m := group(t, s, a.Identity.Group); len(m) != 0 && i != successes[0] {
			t.Errorf("losing attempt %d left group members %v", i, m)
		}
	}
	if m := all(t, s); len(m) != 1 {
		t.Errorf("AllMembers: got %d members, want 1", len(m))
	}
}

// testConcurrentInOneGroup: connections of one group identify (some twice
// at once, some at $connect) while some of them are removed ($disconnect,
// the sweeper, a 410), all at once. After: every identified live
// connection is listed exactly once in its group and by AllMembers, and
// reachable by its service id; nothing else is listed or reachable.
func testConcurrentInOneGroup(t *testing.T, s Store) {
	const n = 48
	ctx := context.WithoutCancel(t.Context())
	conns := make([]router.Connection, n)
	attempts := make([][]router.Connection, n)
	var wg sync.WaitGroup
	for i := range conns {
		c := newConn()
		conns[i] = c
		connect := i%4 == 3 // identified at $connect
		if !connect {
			add(t, s, c)
		}
		tries := 1 + i%2
		if connect {
			tries = 1
		}
		for range tries {
			a := identified(c, "crowd")
			attempts[i] = append(attempts[i], a)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if connect {
					err = s.AddConnection(ctx, a)
				} else {
					err = s.Identify(ctx, a)
				}
				if err != nil && !errors.Is(err, router.ErrAlreadyIdentified) && !errors.Is(err, router.ErrNotFound) {
					t.Errorf("identifying %s: %v", c.ID, err)
				}
			}()
		}
		if i%3 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.RemoveConnection(ctx, c.ID); err != nil {
					t.Errorf("RemoveConnection(%s): %v", c.ID, err)
				}
			}()
		}
	}
	wg.Wait()
	crowd, everyone := group(t, s, "crowd"), all(t, s)
	live := 0
	for i, c := range conns {
		got, err := s.Connection(t.Context(), c.ID)
		if err != nil && !errors.Is(err, router.ErrNotFound) {
			t.Fatal(err)
		}
		if got.Identity == nil {
			if _, ok := crowd[c.ID]; ok {
				t.Errorf("%s is listed in its group, but is not an identified connection (%v)", c.ID, err)
			}
			if _, ok := everyone[c.ID]; ok {
				t.Errorf("%s is listed by AllMembers, but is not an identified connection (%v)", c.ID, err)
			}
		} else {
			live++
			id := router.Connection{ID: c.ID, Identity: got.Identity}
			if !holds(crowd, id) {
				t.Errorf("%s is identified, but not listed in its group", c.ID)
			}
			if !holds(everyone, id) {
				t.Errorf("%s is identified, but not listed by AllMembers", c.ID)
			}
		}
		for _, a := range attempts[i] {
			to, err := s.ServiceConnection(t.Context(), a.Identity.ServiceID)
			mine := got.Identity != nil && got.Identity.ServiceID == a.Identity.ServiceID
			if mine && (err != nil || to != c.ID) {
				t.Errorf("the service of %s: got %q, %v", c.ID, to, err)
			}
			if !mine && !errors.Is(err, router.ErrNotFound) {
				t.Errorf("a service id %s did not get is reachable: %q, %v", c.ID, to, err)
			}
		}
	}
	if len(crowd) != live || len(everyone) != live {
		t.Errorf("%d connections identified and live; listed: %d in the group, %d by AllMembers", live, len(crowd), len(everyone))
	}
}

func testRemoveIdempotent(t *testing.T, s Store) {
	ctx := t.Context()
	c := join(t, s, "g")
	for i := range 3 {
		if err := s.RemoveConnection(ctx, c.ID); err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
	if err := s.RemoveConnection(ctx, "never-seen="); err != nil {
		t.Fatalf("removing an unknown connection: %v", err)
	}
	anon := newConn()
	add(t, s, anon)
	if err := s.RemoveConnection(ctx, anon.ID); err != nil {
		t.Fatal(err)
	}
	wantGone(t, s, c)
	wantGone(t, s, anon)
}

func testGroupsSeparate(t *testing.T, s Store) {
	a := join(t, s, "alpha")
	b := join(t, s, "beta")
	anon := newConn()
	add(t, s, anon)
	if m := group(t, s, "alpha"); len(m) != 1 || !holds(m, a) {
		t.Errorf("alpha: got %v", m)
	}
	if m := group(t, s, "beta"); len(m) != 1 || !holds(m, b) {
		t.Errorf("beta: got %v", m)
	}
	if m := group(t, s, "gamma"); len(m) != 0 {
		t.Errorf("gamma: got %v", m)
	}
	if _, ok := all(t, s)[anon.ID]; ok {
		t.Error("an anonymous connection is listed by AllMembers")
	}
}

func testGroupOf300(t *testing.T, s Store) {
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for range 300 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c := newConn()
			err := s.AddConnection(t.Context(), c)
			if err == nil {
				c = identified(c, "big")
				err = s.Identify(t.Context(), c)
			}
			if err != nil {
				t.Errorf("joining big: %v", err)
				return
			}
			mu.Lock()
			want[c.ID] = c.Identity.ServiceID
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	join(t, s, "other")
	got := group(t, s, "big")
	if len(got) != 300 {
		t.Fatalf("got %d members, want 300", len(got))
	}
	for id, svc := range want {
		if sid, ok := got[id]; !ok || sid != "" && sid != svc {
			t.Fatalf("member %s: got service %q (listed %v), want %q or \"\"", id, sid, ok, svc)
		}
	}
	if n := len(all(t, s)); n != 301 {
		t.Errorf("AllMembers: got %d, want 301", n)
	}
}

func testAllMembers(t *testing.T, s Store) {
	var want []string
	for i := range 40 {
		want = append(want, join(t, s, fmt.Sprintf("g%d", i%5)).ID)
	}
	got := all(t, s)
	var ids []string
	for id := range got {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("got %d members %v, want %d %v", len(ids), ids, len(want), want)
	}
}

func testCallbackErrorStops(t *testing.T, s Store) {
	join(t, s, "g")
	join(t, s, "g")
	stop := errors.New("stop")
	if err := s.GroupMembers(t.Context(), "g", func([]router.Member) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("GroupMembers: got %v, want the callback's error", err)
	}
	if err := s.AllMembers(t.Context(), func([]router.Member) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("AllMembers: got %v, want the callback's error", err)
	}
}

func testExpired(t *testing.T, s Store) {
	c := newConn()
	c.ConnectedAt = c.ConnectedAt.Add(-3 * time.Hour)
	c.ExpiresAt = c.ConnectedAt.Add(2*time.Hour + 10*time.Minute) // 50 minutes ago
	add(t, s, c)
	if _, err := s.Connection(t.Context(), c.ID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("an expired connection: got %v, want ErrNotFound", err)
	}
	if err := s.Identify(t.Context(), identified(c, "old")); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("identifying an expired connection: got %v, want ErrNotFound", err)
	}
}

func testTokens(t *testing.T, s Store) {
	ctx := t.Context()
	_, h1, _ := token.Generate()
	_, h2, _ := token.Generate()
	t1 := token.Token{Hash: h1, Name: "bots", Groups: []string{"bots", "workers"}, CreatedAt: now().Add(-time.Minute)}
	t2 := token.Token{Hash: h2, Name: "admin", AllGroups: true, CreatedAt: now(), ExpiresAt: now().Add(time.Hour).Truncate(time.Second)}
	for _, tok := range []token.Token{t1, t2} {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken: %v", err)
		}
	}
	if err := s.PutToken(ctx, t1); !errors.Is(err, token.ErrExists) {
		t.Errorf("PutToken twice: got %v, want token.ErrExists", err)
	}
	got, err := s.Token(ctx, h1)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if got.Hash != h1 || got.Name != "bots" || !slices.Equal(got.Groups, t1.Groups) || got.AllGroups ||
		!got.CreatedAt.Equal(t1.CreatedAt) || !got.ExpiresAt.IsZero() {
		t.Errorf("got %+v, want %+v", got, t1)
	}
	got, err = s.Token(ctx, h2)
	if err != nil || !got.AllGroups || !got.ExpiresAt.Equal(t2.ExpiresAt) {
		t.Errorf("got %+v, %v; want %+v", got, err, t2)
	}
	list, err := s.Tokens(ctx)
	if err != nil || len(list) != 2 || list[0].Hash != h1 || list[1].Hash != h2 {
		t.Fatalf("Tokens: got %+v, %v; want t1 then t2", list, err)
	}
	later := now().Add(2 * time.Hour).Truncate(time.Second)
	if err := s.ExtendToken(ctx, h2, later); err != nil {
		t.Fatalf("ExtendToken: %v", err)
	}
	if got, err := s.Token(ctx, h2); err != nil || !got.ExpiresAt.Equal(later) || got.Name != "admin" || !got.AllGroups {
		t.Errorf("after ExtendToken: got %+v, %v; want t2 expiring at %v", got, err, later)
	}
	if err := s.ExtendToken(ctx, token.HashOf("never issued"), later); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("ExtendToken of an unknown token: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteToken(ctx, h1); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if _, err := s.Token(ctx, h1); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("Token after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteToken(ctx, h1); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("DeleteToken twice: got %v, want ErrNotFound", err)
	}
	if _, err := s.Token(ctx, token.HashOf("never issued")); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("unknown token: got %v, want ErrNotFound", err)
	}
}

// connections lists s.Connections of the suite's gateway by id. Listing may be eventually
// consistent (a secondary index), so it retries for a few seconds until
// want(listing) holds, and returns the last listing.
func connections(t *testing.T, s Store, want func(map[string]router.Connection) bool) map[string]router.Connection {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var mu sync.Mutex
		got := map[string]router.Connection{}
		err := s.Connections(t.Context(), gateway, func(page []router.Connection) error {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range page {
				if _, dup := got[c.ID]; dup {
					return fmt.Errorf("connection %s listed twice", c.ID)
				}
				got[c.ID] = c
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Connections: %v", err)
		}
		if want(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testConnections(t *testing.T, s Store) {
	anon := newConn()
	add(t, s, anon)
	member := join(t, s, "g")
	old := newConn()
	old.ConnectedAt = old.ConnectedAt.Add(-3 * time.Hour)
	old.ExpiresAt = old.ConnectedAt.Add(2*time.Hour + 10*time.Minute)
	add(t, s, old)
	gone := join(t, s, "g")
	if err := s.RemoveConnection(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	// A connection of another gateway sharing the registry is not listed.
	other := newConn()
	other.Gateway = "http://127.0.0.1:3001/dev"
	add(t, s, other)

	// The expired one is listed until TTL deletes it (DynamoDB Local's TTL
	// may have done so already).
	got := connections(t, s, func(m map[string]router.Connection) bool {
		_, gotGone := m[gone.ID]
		_, gotAnon := m[anon.ID]
		_, gotMember := m[member.ID]
		return !gotGone && gotAnon && gotMember
	})
	if _, ok := got[other.ID]; ok {
		t.Errorf("a connection of another gateway is listed")
	}
	if _, ok := got[gone.ID]; ok || len(got) < 2 || len(got) > 3 {
		t.Fatalf("got %d connections %v, want the anonymous and the identified one, and the expired one unless TTL took it", len(got), got)
	}
	if c := got[anon.ID]; c.Identity != nil || !c.ConnectedAt.Equal(anon.ConnectedAt) {
		t.Errorf("anonymous connection listed as %+v, want connected at %v without identity", c, anon.ConnectedAt)
	}
	if c := got[member.ID]; c.Identity == nil || c.Identity.ServiceID != member.Identity.ServiceID || c.Identity.Group != "g" ||
		!c.ConnectedAt.Equal(member.ConnectedAt) || c.Gateway != gateway {
		t.Errorf("member listed as %+v, want %+v", c, member)
	}
	if c, ok := got[old.ID]; ok && c.ExpiresAt.Unix() != old.ExpiresAt.Unix() {
		t.Errorf("expired connection listed as %+v, want its expiry %v", c, old.ExpiresAt)
	} else if !ok && len(got) == 3 {
		t.Errorf("got %v: a third connection that is none of those recorded", got)
	}
}

func testConnectionsPages(t *testing.T, s Store) {
	const n = 60
	want := map[string]bool{}
	for range n {
		c := newConn()
		add(t, s, c)
		want[c.ID] = true
	}
	got := connections(t, s, func(m map[string]router.Connection) bool { return len(m) == n })
	for id := range want {
		if _, ok := got[id]; !ok {
			t.Fatalf("got %d connections, want all %d", len(got), n)
		}
	}
	stop := errors.New("stop")
	if err := s.Connections(t.Context(), gateway, func([]router.Connection) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Connections: got %v, want the callback's error", err)
	}
}
