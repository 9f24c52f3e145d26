package dynamostore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
)

// hooked lets a test step into the store's calls: a hook returns a
// non-nil error to fail a call (before it reaches DynamoDB), or nil to let
// it through.
type hooked struct {
	dynamostore.API
	put    func(ctx context.Context, in *dynamodb.PutItemInput) error
	update func(ctx context.Context, in *dynamodb.UpdateItemInput) error
	// get may answer a GetItem itself (out non-nil).
	get func(ctx context.Context, in *dynamodb.GetItemInput) (out *dynamodb.GetItemOutput)
}

func (h *hooked) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if h.get != nil {
		if out := h.get(ctx, in); out != nil {
			return out, nil
		}
	}
	return h.API.GetItem(ctx, in, o...)
}

func (h *hooked) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if h.put != nil {
		if err := h.put(ctx, in); err != nil {
			return nil, err
		}
	}
	return h.API.PutItem(ctx, in, o...)
}

func (h *hooked) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if h.update != nil {
		if err := h.update(ctx, in); err != nil {
			return nil, err
		}
	}
	return h.API.UpdateItem(ctx, in, o...)
}

// traced logs the store's calls and their outcome, for a failure of a
// test whose interleavings vary from run to run to show what happened to
// a connection: each line names the item's key and the values of the
// call, their last 12 characters.
type traced struct {
	dynamostore.API
	mu  sync.Mutex
	log []string
}

func idsOf(v map[string]types.AttributeValue) string {
	var out []string
	for k, x := range v {
		switch x := x.(type) {
		case *types.AttributeValueMemberS:
			out = append(out, k+"="+x.Value[max(0, len(x.Value)-12):])
		case *types.AttributeValueMemberSS:
			out = append(out, k+"="+x.Value[0][max(0, len(x.Value[0])-12):])
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func (t *traced) add(s string) { t.mu.Lock(); t.log = append(t.log, s); t.mu.Unlock() }

func (t *traced) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := t.API.UpdateItem(ctx, in, o...)
	t.add(fmt.Sprintf("Update %s %s %s -> %v", idsOf(in.Key), *in.UpdateExpression, idsOf(in.ExpressionAttributeValues), err))
	return out, err
}
func (t *traced) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := t.API.PutItem(ctx, in, o...)
	t.add(fmt.Sprintf("Put %s -> %v", idsOf(in.Item), err))
	return out, err
}
func (t *traced) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := t.API.DeleteItem(ctx, in, o...)
	t.add(fmt.Sprintf("Delete %s %s -> %v", idsOf(in.Key), idsOf(in.ExpressionAttributeValues), err))
	return out, err
}
func (t *traced) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := t.API.GetItem(ctx, in, o...)
	r := ""
	if out != nil {
		r = idsOf(out.Item)
	}
	t.add(fmt.Sprintf("Get %s consistent=%v -> %s %v", idsOf(in.Key), in.ConsistentRead != nil && *in.ConsistentRead, r, err))
	return out, err
}

func sOf(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

var errInjected = errors.New("injected failure")

// Two IDENTIFYs of one connection (a client that sends IDENTIFY twice)
// share their bucket entries: the connection id is one element of the
// set. One that fails while the other is between its buckets and its
// connection item must not take the other's entries with it: the winner
// would be identified, answered IDENTIFIED, and never receive a GROUP or
// GLOBAL message.
func TestAFailedIdentifyKeepsAConcurrentWinnersBuckets(t *testing.T) {
	t.Run("answered", func(t *testing.T) { testFailedIdentifyKeepsWinner(t, nil) })
	// The winner's write succeeds, but its answer is lost and the write
	// tried again (the SDK's retry of a timeout, here a transaction
	// conflict's).
	t.Run("answer lost, retried", func(t *testing.T) {
		testFailedIdentifyKeepsWinner(t, &types.TransactionConflictException{Message: aws.String("the answer of a write that was applied, lost")})
	})
	// The same, not retried: the winner's IDENTIFY has succeeded all the
	// same.
	t.Run("answer lost", func(t *testing.T) { testFailedIdentifyKeepsWinner(t, errInjected) })
}

// testFailedIdentifyKeepsWinner: the winner's connection write, when
// applied, answers lost (nil: it answers).
func testFailedIdentifyKeepsWinner(t *testing.T, lost error) {
	db := dynamotest.Client(t)
	reached, release := make(chan struct{}), make(chan struct{})
	api := &hooked{API: db}
	api.put = func(_ context.Context, in *dynamodb.PutItemInput) error {
		if sOf(in.Item["pk"]) == "SVC#svc-loser" {
			return errInjected // a transient failure, past the SDK's retries
		}
		return nil
	}
	api.update = func(ctx context.Context, in *dynamodb.UpdateItemInput) error {
		if strings.HasPrefix(sOf(in.Key["pk"]), "CONN#") && sOf(in.ExpressionAttributeValues[":s"]) == "svc-winner" && reached != nil {
			close(reached)
			reached = nil
			<-release
			if lost != nil {
				if _, err := db.UpdateItem(ctx, in); err != nil {
					return err
				}
				return lost
			}
		}
		return nil
	}
	s, err := dynamostore.New(api, dynamostore.Config{Table: dynamotest.NewTable(t, db)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := router.Connection{ID: "twice=", ConnectedAt: now, ExpiresAt: now.Add(2*time.Hour + 10*time.Minute)}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	winner, loser := c, c
	winner.Identity = &router.Identity{ServiceID: "svc-winner", Group: "g", IdentifiedAt: now}
	loser.Identity = &router.Identity{ServiceID: "svc-loser", Group: "g", IdentifiedAt: now}
	won := make(chan error, 1)
	wait := reached
	go func() { won <- s.Identify(context.WithoutCancel(t.Context()), winner) }()
	<-wait // the winner is in its buckets and about to write its connection item
	if err := s.Identify(t.Context(), loser); !errors.Is(err, errInjected) {
		t.Fatalf("the loser: got %v, want the injected failure", err)
	}
	close(release)
	if err := <-won; err != nil {
		t.Fatalf("the winner: %v", err)
	}
	for _, group := range []string{"g", ""} {
		if got := members(t, s, group); !slices.Equal(got, []string{c.ID}) {
			t.Errorf("members of %q: got %v, want the identified [%s]", group, got, c.ID)
		}
	}
	if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	for _, group := range []string{"g", ""} {
		if got := members(t, s, group); len(got) != 0 {
			t.Errorf("members of %q after the removal: got %v, want none", group, got)
		}
	}
}

// The same, the other way round: the loser fails after the winner has
// written its connection item, but had read it anonymous.
func TestAFailedIdentifyThatSawTheConnectionAnonymousKeepsTheWinnersBuckets(t *testing.T) {
	db := dynamotest.Client(t)
	var s *dynamostore.Store
	api := &hooked{API: db}
	var once sync.Once
	winnerDone := make(chan error, 1)
	var winner router.Connection
	api.put = func(ctx context.Context, in *dynamodb.PutItemInput) error {
		if sOf(in.Item["pk"]) != "SVC#svc-loser" {
			return nil
		}
		return errInjected
	}
	// The loser's undo reads the connection item (anonymous), then leaves
	// the buckets: the winner's IDENTIFY runs whole just before the first
	// of the loser's leaves.
	api.update = func(ctx context.Context, in *dynamodb.UpdateItemInput) error {
		if strings.HasPrefix(sOf(in.Key["pk"]), "CONN#") || in.UpdateExpression == nil || !strings.HasPrefix(*in.UpdateExpression, "DELETE") {
			return nil
		}
		once.Do(func() { winnerDone <- s.Identify(context.WithoutCancel(ctx), winner) })
		return nil
	}
	var err error
	s, err = dynamostore.New(api, dynamostore.Config{Table: dynamotest.NewTable(t, db)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := router.Connection{ID: "twice=", ConnectedAt: now, ExpiresAt: now.Add(2*time.Hour + 10*time.Minute)}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	winner, loser := c, c
	winner.Identity = &router.Identity{ServiceID: "svc-winner", Group: "g", IdentifiedAt: now}
	loser.Identity = &router.Identity{ServiceID: "svc-loser", Group: "g", IdentifiedAt: now}
	if err := s.Identify(t.Context(), loser); !errors.Is(err, errInjected) {
		t.Fatalf("the loser: got %v, want the injected failure", err)
	}
	select {
	case err := <-winnerDone:
		if err != nil {
			t.Fatalf("the winner: %v", err)
		}
	default:
		t.Fatal("the loser's undo left no bucket")
	}
	for _, group := range []string{"g", ""} {
		if got := members(t, s, group); !slices.Equal(got, []string{c.ID}) {
			t.Errorf("members of %q: got %v, want the identified [%s]", group, got, c.ID)
		}
	}
}

// When one of an IDENTIFY's two bucket writes fails, the other's entry
// must be undone too, or the connection, anonymous, is listed (and
// receives GLOBAL messages) until the end of its window, whatever becomes
// of it: when that write was applied but answered with an error (a
// timeout), and when it was still in flight (a write cancelled in flight
// may be applied all the same, later).
func TestAHalfJoinIsUndone(t *testing.T) {
	t.Run("answer lost", func(t *testing.T) {
		testHalfJoinIsUndone(t, func(db dynamostore.API, ctx context.Context, in *dynamodb.UpdateItemInput) error {
			if _, err := db.UpdateItem(ctx, in); err != nil {
				return err
			}
			return errInjected
		})
	})
	t.Run("in flight", func(t *testing.T) {
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		testHalfJoinIsUndone(t, func(db dynamostore.API, ctx context.Context, in *dynamodb.UpdateItemInput) error {
			select {
			case <-time.After(100 * time.Millisecond):
				return nil
			case <-ctx.Done():
				// Cancelled: DynamoDB applies the write a moment later.
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(200 * time.Millisecond)
					db.UpdateItem(context.WithoutCancel(ctx), in)
				}()
				return ctx.Err()
			}
		})
		wg.Wait()
	})
}

func testHalfJoinIsUndone(t *testing.T, all func(db dynamostore.API, ctx context.Context, in *dynamodb.UpdateItemInput) error) {
	db := dynamotest.Client(t)
	api := &hooked{API: db}
	api.update = func(ctx context.Context, in *dynamodb.UpdateItemInput) error {
		if in.UpdateExpression == nil || !strings.HasPrefix(*in.UpdateExpression, "ADD m") {
			return nil
		}
		switch sOf(in.Key["pk"]) {
		case "GROUP#g":
			return errInjected
		case "ALL#0":
			return all(db, ctx, in) // nil: the write goes through
		}
		return nil
	}
	s, err := dynamostore.New(api, dynamostore.Config{Table: dynamotest.NewTable(t, db)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := router.Connection{ID: "half=", ConnectedAt: now, ExpiresAt: now.Add(2*time.Hour + 10*time.Minute)}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	c.Identity = &router.Identity{ServiceID: "svc-half", Group: "g", IdentifiedAt: now}
	if err := s.Identify(t.Context(), c); !errors.Is(err, errInjected) {
		t.Fatalf("Identify: got %v, want the injected failure", err)
	}
	time.Sleep(300 * time.Millisecond) // for a write applied late
	for _, group := range []string{"g", ""} {
		if got := members(t, s, group); len(got) != 0 {
			t.Errorf("members of %q: got %v, want none: the connection is anonymous", group, got)
		}
	}
}

// Many IDENTIFYs (some twice on one connection, some failing half-way)
// and removals ($disconnect, the sweeper, a 410) race in one group, from
// several containers, with buckets that hold 4 members so that levels
// fill as they race. After: every identified live connection is listed
// exactly once in its group and in GLOBAL, and nothing else is listed.
func TestRacingIdentifiesAndRemovalsKeepTheBucketsExact(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	var rmu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	flaky := func() bool { rmu.Lock(); defer rmu.Unlock(); return rnd.IntN(10) == 0 }
	tr := &traced{API: db}
	api := &hooked{API: tr}
	// One write of an IDENTIFY in 10 fails, before or after it reaches
	// DynamoDB: a timeout's two cases. (The writes that undo and remove do
	// not: what they fail to undo is left to TTL, by design.)
	api.update = func(ctx context.Context, in *dynamodb.UpdateItemInput) error {
		x := *in.UpdateExpression
		joining := strings.HasPrefix(x, "ADD m") && strings.Contains(x, "SET expiresAt")
		if !joining && !strings.HasPrefix(x, "SET #s") || !flaky() {
			return nil
		}
		if flaky() {
			if _, err := tr.UpdateItem(context.WithoutCancel(ctx), in); err != nil {
				return err
			}
		}
		return errInjected
	}
	api.put = func(ctx context.Context, in *dynamodb.PutItemInput) error {
		if !strings.HasPrefix(sOf(in.Item["pk"]), "SVC#") || !flaky() {
			return nil
		}
		return errInjected
	}
	var containers []*dynamostore.Store
	for range 4 {
		s, err := dynamostore.New(api, dynamostore.Config{Table: table, PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		containers = append(containers, s)
	}
	pick := func() *dynamostore.Store {
		rmu.Lock()
		defer rmu.Unlock()
		return containers[rnd.IntN(len(containers))]
	}
	// Ids of 200 bytes: 4 fit a bucket. One expiry, so one window, for all.
	now := time.Now()
	const n = 60
	conns := make([]router.Connection, n)
	for i := range conns {
		conns[i] = router.Connection{ID: fmt.Sprintf("%0199d=", i), ConnectedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
		if err := pick().AddConnection(t.Context(), conns[i]); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.WithoutCancel(t.Context())
	outcomes := map[string]int{}
	outcome := func(err error) {
		rmu.Lock()
		defer rmu.Unlock()
		switch {
		case err == nil:
			outcomes["identified"]++
		case errors.Is(err, errInjected):
			outcomes["injected failure"]++
		case errors.Is(err, router.ErrAlreadyIdentified):
			outcomes["already identified"]++
		case errors.Is(err, router.ErrNotFound):
			outcomes["not found"]++
		default:
			t.Errorf("Identify: %v", err)
		}
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		tries := 1 + i%2 // every other connection identifies twice
		for k := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := c
				id.Identity = &router.Identity{ServiceID: fmt.Sprintf("svc-%d-%d", i, k), Group: "race", IdentifiedAt: now}
				err := pick().Identify(ctx, id) // any outcome
				outcome(err)
			}()
		}
		if i%3 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i%7) * time.Millisecond)
				if err := pick().RemoveConnection(ctx, c.ID); err != nil {
					t.Errorf("RemoveConnection: %v", err)
				}
			}()
		}
	}
	wg.Wait()

	clean, err := dynamostore.New(db, dynamostore.Config{Table: table, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range conns {
		got, err := clean.Connection(t.Context(), c.ID)
		switch {
		case errors.Is(err, router.ErrNotFound):
		case err != nil:
			t.Fatal(err)
		case got.Identity != nil:
			want = append(want, c.ID)
		}
	}
	slices.Sort(want)
	t.Logf("%d of %d connections identified and live; IDENTIFY outcomes %v", len(want), n, outcomes)
	for _, group := range []string{"race", ""} {
		got := members(t, clean, group)
		if !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("members of %q: %d listed, want %d; identified but not listed: %d, listed but not identified: %d",
				group, len(got), len(want), len(missing), len(extra))
			for _, x := range append(missing, extra...) {
				for _, l := range tr.log {
					if strings.Contains(l, x[len(x)-12:]) {
						t.Log(l)
					}
				}
			}
		}
	}
}

// diff returns what want has that got has not, and what got has that
// want has not (both sorted).
func diff(want, got []string) (missing, extra []string) {
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

// A removal that reads a connection eventually consistently may see it
// identified after another removal has deleted it, and its service id
// taken by another connection since: it must not delete that
// connection's service item.
func TestARemovalThatReadsStaleLeavesTheNextOwnersService(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	var stale map[string]types.AttributeValue
	api := &hooked{API: db}
	api.get = func(_ context.Context, in *dynamodb.GetItemInput) *dynamodb.GetItemOutput {
		if stale != nil && (in.ConsistentRead == nil || !*in.ConsistentRead) && sOf(in.Key["pk"]) == "CONN#first=" {
			return &dynamodb.GetItemOutput{Item: stale} // a replica that has not seen the removal
		}
		return nil
	}
	s, err := dynamostore.New(api, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first := router.Connection{ID: "first=", ConnectedAt: now, ExpiresAt: now.Add(2*time.Hour + 10*time.Minute)}
	first.Identity = &router.Identity{ServiceID: "svc-reused", Group: "g", IdentifiedAt: now}
	if err := s.AddConnection(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	out, err := db.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: &table, Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "CONN#first="}, "sk": &types.AttributeValueMemberS{Value: "META"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveConnection(t.Context(), first.ID); err != nil { // $disconnect
		t.Fatal(err)
	}
	second := first
	second.ID = "second="
	if err := s.AddConnection(t.Context(), second); err != nil {
		t.Fatalf("the service id, free again: %v", err)
	}
	stale = out.Item
	if err := s.RemoveConnection(t.Context(), first.ID); err != nil { // a 410, late
		t.Fatal(err)
	}
	if to, err := s.ServiceConnection(t.Context(), "svc-reused"); err != nil || to != second.ID {
		t.Errorf("ServiceConnection: got %q, %v; want the second connection", to, err)
	}
	if got := members(t, s, "g"); !slices.Equal(got, []string{second.ID}) {
		t.Errorf("members of g: got %v", got)
	}
}
