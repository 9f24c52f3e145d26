package dynamostore_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/storetest"
)

func TestContract(t *testing.T) {
	client := dynamotest.Client(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := dynamostore.New(client, dynamostore.Config{
			Table:    dynamotest.NewTable(t, client),
			PageSize: 2, // several pages of buckets (of about 60 members) for the group of 300
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// conflicting fails the first write of each kind with the error real
// DynamoDB gives a plain write racing a transaction (DynamoDB Local never
// does; the previous version's IDENTIFY is a transaction), then behaves.
type conflicting struct {
	dynamostore.API
	mu   sync.Mutex
	seen map[string]bool
}

func (c *conflicting) first(op string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[op] {
		return false
	}
	c.seen[op] = true
	return true
}

func conflict() error {
	return &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
}

func (c *conflicting) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if c.first("PutItem") {
		return nil, conflict()
	}
	return c.API.PutItem(ctx, in, o...)
}

func (c *conflicting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if c.first("UpdateItem") {
		return nil, conflict()
	}
	return c.API.UpdateItem(ctx, in, o...)
}

func (c *conflicting) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if c.first("DeleteItem") {
		return nil, conflict()
	}
	return c.API.DeleteItem(ctx, in, o...)
}

func TestWritesRetryTransactionConflicts(t *testing.T) {
	db := dynamotest.Client(t)
	api := &conflicting{API: db, seen: map[string]bool{}}
	table := dynamotest.NewTable(t, db)
	s, err := dynamostore.New(api, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := router.Connection{ID: "conflict=", ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatalf("AddConnection through a transaction conflict: %v", err)
	}
	c.Identity = &router.Identity{ServiceID: "svc-conflict", Group: "g", IdentifiedAt: now}
	if err := s.Identify(t.Context(), c); err != nil {
		t.Fatalf("Identify through transaction conflicts: %v", err)
	}
	if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
		t.Fatalf("RemoveConnection through transaction conflicts: %v", err)
	}
	// And one of the previous layout.
	old := putLegacy(t, db, table, "old-conflict=", "g", now)
	if err := s.RemoveConnection(t.Context(), old.ID); err != nil {
		t.Fatalf("RemoveConnection of a previous layout's connection through a transaction conflict: %v", err)
	}
	for _, op := range []string{"PutItem", "UpdateItem", "DeleteItem"} {
		if !api.seen[op] {
			t.Errorf("no %s was refused for a transaction", op)
		}
	}
	for _, gone := range []router.Connection{c, old} {
		if _, err := s.ServiceConnection(t.Context(), gone.Identity.ServiceID); !errors.Is(err, router.ErrNotFound) {
			t.Errorf("service of %s still reachable: %v", gone.ID, err)
		}
		if _, err := s.Connection(t.Context(), gone.ID); !errors.Is(err, router.ErrNotFound) {
			t.Errorf("connection %s still stored: %v", gone.ID, err)
		}
	}
	if m := members(t, s, "g"); len(m) != 0 {
		t.Errorf("group g still has %v", m)
	}
}

// members lists a group's connection ids (all of GLOBAL for ""), sorted.
func members(t *testing.T, s *dynamostore.Store, group string) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	fn := func(page []router.Member) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range page {
			ids = append(ids, m.ConnectionID)
		}
		return nil
	}
	var err error
	if group == "" {
		err = s.AllMembers(t.Context(), fn)
	} else {
		err = s.GroupMembers(t.Context(), group, fn)
	}
	if err != nil {
		t.Fatalf("listing %q: %v", group, err)
	}
	slices.Sort(ids)
	return ids
}

// buckets returns the bucket items of a partition, as they are stored.
func buckets(t *testing.T, db *dynamodb.Client, table, pk string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Query(t.Context(), &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :b)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}, ":b": &types.AttributeValueMemberS{Value: "B#"}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// size is an item's size as DynamoDB bills it, for the attribute types
// buckets have.
func size(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += (len(strings.Trim(v.Value, "0"))+1)/2 + 1
		case *types.AttributeValueMemberSS:
			for _, e := range v.Value {
				n += len(e)
			}
		}
	}
	return n
}

// A bucket holds about 1 KB of connection ids: members that find theirs
// full go to the next level, and each is listed once and removed from the
// bucket it is in.
func TestAFullBucketSendsMembersToTheNextLevel(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	s, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	// Ids of 200 bytes: 4 fit a bucket.
	now := time.Now().Truncate(time.Hour).Add(time.Minute) // one window for all
	var want []router.Connection
	for i := range 40 {
		c := router.Connection{ID: fmt.Sprintf("%0200d", i), ConnectedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
		c.Identity = &router.Identity{ServiceID: fmt.Sprintf("svc-%d", i), Group: "wide", IdentifiedAt: now}
		if i%2 == 0 {
			if err := s.AddConnection(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		} else {
			// Half of them through containers of their own, which start
			// from level 0.
			cold, err := dynamostore.New(db, dynamostore.Config{Table: table})
			if err != nil {
				t.Fatal(err)
			}
			anon := c
			anon.Identity = nil
			if err := cold.AddConnection(t.Context(), anon); err != nil {
				t.Fatal(err)
			}
			if err := cold.Identify(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, c)
	}
	var ids []string
	for _, c := range want {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	for _, group := range []string{"wide", ""} {
		if got := members(t, s, group); !slices.Equal(got, ids) {
			t.Errorf("members of %q: got %d, want the %d connections", group, len(got), len(ids))
		}
	}
	for _, pk := range []string{"GROUP#wide", "ALL#0"} {
		items := buckets(t, db, table, pk)
		if len(items) < 10 {
			t.Errorf("%s: %d buckets for 40 members of which 4 fit a bucket", pk, len(items))
		}
		for _, item := range items {
			if n := size(item); n > 1024 {
				t.Errorf("%s: a bucket of %d bytes, over 1 KB", pk, n)
			}
		}
	}
	for _, c := range want[:30] {
		if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, group := range []string{"wide", ""} {
		if got := members(t, s, group); !slices.Equal(got, ids[30:]) {
			t.Errorf("members of %q after 30 removals: got %d, want %d", group, len(got), len(ids[30:]))
		}
	}
}

// A member is listed until the end of its expiry window at most: a query
// skips the buckets of windows that have ended.
func TestMembersOfEndedWindowsAreNotRead(t *testing.T) {
	db := dynamotest.Client(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := dynamostore.New(db, dynamostore.Config{Table: dynamotest.NewTable(t, db), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	c := router.Connection{ID: "short-lived=", ConnectedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(5 * time.Minute)}
	c.Identity = &router.Identity{ServiceID: "svc-short", Group: "brief", IdentifiedAt: now}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s, "brief"); !slices.Equal(got, []string{c.ID}) {
		t.Fatalf("before its expiry: got %v, want [%s]", got, c.ID)
	}
	mu.Lock()
	now = now.Add(16 * time.Minute) // past the end of its window
	mu.Unlock()
	for _, group := range []string{"brief", ""} {
		if got := members(t, s, group); len(got) != 0 {
			t.Errorf("members of %q after the window: got %v, want none", group, got)
		}
	}
}

// putLegacy writes a connection identified by the previous version, in its
// layout: a member item per GROUP#<group> and ALL#<shard>, each with
// serviceId and group.
func putLegacy(t *testing.T, db *dynamodb.Client, table, connID, group string, at time.Time) router.Connection {
	t.Helper()
	c := router.Connection{ID: connID, ConnectedAt: at, ExpiresAt: at.Add(2*time.Hour + 10*time.Minute)}
	c.Identity = &router.Identity{ServiceID: "svc-" + connID, Group: group, IdentifiedAt: at}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v int64) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
	exp := n(c.ExpiresAt.Unix())
	shard := legacyShard(connID)
	items := []map[string]types.AttributeValue{
		{"pk": s("CONN#" + connID), "sk": s("META"), "connectedAt": n(at.UnixMilli()), "connShard": s("CONNS#0000000000000000#0"),
			"expiresAt": exp, "serviceId": s(c.Identity.ServiceID), "group": s(group), "shard": n(int64(shard)), "identifiedAt": n(at.UnixMilli())},
		{"pk": s("SVC#" + c.Identity.ServiceID), "sk": s("META"), "connId": s(connID), "group": s(group), "expiresAt": exp},
		{"pk": s("GROUP#" + group), "sk": s("CONN#" + connID), "serviceId": s(c.Identity.ServiceID), "group": s(group), "expiresAt": exp},
		{"pk": s(fmt.Sprintf("ALL#%d", shard)), "sk": s("CONN#" + connID), "serviceId": s(c.Identity.ServiceID), "group": s(group), "expiresAt": exp},
	}
	for _, item := range items {
		if _, err := db.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// legacyShard is the previous version's GLOBAL shard of a connection (of
// 4).
func legacyShard(connID string) int {
	h := fnv.New32a()
	h.Write([]byte(connID))
	return int(h.Sum32() % 4)
}

// During a deploy, and for up to 2 h 10 min after it, the table holds
// connections identified by the previous version: they are listed with
// the new ones, reachable, and removed whole.
func TestConnectionsOfThePreviousLayoutAreListedAndRemoved(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := dynamostore.New(db, dynamostore.Config{Table: table, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	// One connection of the previous layout in each of its 4 shards.
	var old []router.Connection
	for i, shards := 0, map[int]bool{}; len(shards) < 4; i++ {
		id := fmt.Sprintf("old-%d=", i)
		if shards[legacyShard(id)] {
			continue
		}
		shards[legacyShard(id)] = true
		old = append(old, putLegacy(t, db, table, id, "mixed", now.Add(-time.Hour)))
	}
	nc := router.Connection{ID: "new=", ConnectedAt: now, ExpiresAt: now.Add(2*time.Hour + 10*time.Minute)}
	if err := s.AddConnection(t.Context(), nc); err != nil {
		t.Fatal(err)
	}
	nc.Identity = &router.Identity{ServiceID: "svc-new", Group: "mixed", IdentifiedAt: now}
	if err := s.Identify(t.Context(), nc); err != nil {
		t.Fatal(err)
	}
	all := []string{nc.ID}
	for _, c := range old {
		all = append(all, c.ID)
		if to, err := s.ServiceConnection(t.Context(), c.Identity.ServiceID); err != nil || to != c.ID {
			t.Errorf("ServiceConnection of %s: got %q, %v", c.ID, to, err)
		}
		if got, err := s.Connection(t.Context(), c.ID); err != nil || got.Identity == nil || got.Identity.Group != "mixed" {
			t.Errorf("Connection %s: got %+v, %v", c.ID, got, err)
		}
	}
	slices.Sort(all)
	for _, group := range []string{"mixed", ""} {
		if got := members(t, s, group); !slices.Equal(got, all) {
			t.Errorf("members of %q: got %v, want %v", group, got, all)
		}
	}
	for _, c := range old {
		if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
			t.Fatal(err)
		}
		out, err := db.Query(t.Context(), &dynamodb.QueryInput{
			TableName: aws.String(table), IndexName: nil,
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("ALL#%d", legacyShard(c.ID))}},
			ConsistentRead:            aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			if sk := item["sk"].(*types.AttributeValueMemberS).Value; sk == "CONN#"+c.ID {
				t.Errorf("the GLOBAL item of %s is left", c.ID)
			}
		}
	}
	for _, group := range []string{"mixed", ""} {
		if got := members(t, s, group); !slices.Equal(got, []string{nc.ID}) {
			t.Errorf("members of %q after the removals: got %v, want [%s]", group, got, nc.ID)
		}
	}
	// That GLOBAL found ALL#1 to ALL#3 empty: they are read again 10
	// minutes later, and then list what a container of the previous
	// version may have written meanwhile.
	late := putLegacy(t, db, table, "late-old-2=", "mixed", now)
	if legacyShard(late.ID) == 0 {
		t.Fatal("pick an id of another shard than 0")
	}
	if got := members(t, s, ""); slices.Contains(got, late.ID) {
		t.Errorf("ALL#%d was read again at once", legacyShard(late.ID))
	}
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	if got := members(t, s, ""); !slices.Contains(got, late.ID) {
		t.Errorf("ALL#%d was not read again 10 minutes later: got %v", legacyShard(late.ID), got)
	}
}

// BulkLoad writes what joining one at a time writes: the connections are
// listed, reachable and removable.
func TestBulkLoadWritesWhatJoinsWrite(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	s, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var conns []router.Connection
	var ids []string
	for i := range 300 {
		at := now.Add(-time.Duration(i) * time.Minute / 3)
		c := router.Connection{ID: fmt.Sprintf("bulk-%03d=", i), ConnectedAt: at, ExpiresAt: at.Add(2*time.Hour + 10*time.Minute)}
		c.Identity = &router.Identity{ServiceID: fmt.Sprintf("svc-bulk-%d", i), Group: "bulk", IdentifiedAt: at}
		conns = append(conns, c)
		ids = append(ids, c.ID)
	}
	if err := s.BulkLoad(t.Context(), conns); err != nil {
		t.Fatal(err)
	}
	for _, group := range []string{"bulk", ""} {
		if got := members(t, s, group); !slices.Equal(got, ids) {
			t.Errorf("members of %q: got %d, want %d", group, len(got), len(ids))
		}
	}
	if to, err := s.ServiceConnection(t.Context(), "svc-bulk-7"); err != nil || to != "bulk-007=" {
		t.Errorf("ServiceConnection: got %q, %v", to, err)
	}
	if err := s.RemoveConnection(t.Context(), "bulk-007="); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s, "bulk"); len(got) != 299 || slices.Contains(got, "bulk-007=") {
		t.Errorf("after removing bulk-007=: got %d members", len(got))
	}
}
