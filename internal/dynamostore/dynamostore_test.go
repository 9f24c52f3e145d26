package dynamostore_test

import (
	"context"
	"errors"
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
			PageSize: 25, // several pages for the group of 300
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// conflicting fails the first write of each kind with the error real
// DynamoDB gives a plain write racing a transaction (DynamoDB Local never
// does), then behaves.
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

func (c *conflicting) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if c.first("DeleteItem") {
		return nil, conflict()
	}
	return c.API.DeleteItem(ctx, in, o...)
}

func (c *conflicting) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if c.first("BatchWriteItem") {
		return nil, conflict()
	}
	return c.API.BatchWriteItem(ctx, in, o...)
}

func TestRemoveRetriesTransactionConflicts(t *testing.T) {
	db := dynamotest.Client(t)
	api := &conflicting{API: db, seen: map[string]bool{}}
	s, err := dynamostore.New(api, dynamostore.Config{Table: dynamotest.NewTable(t, db)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := router.Connection{ID: "conflict=", ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.AddConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	c.Identity = &router.Identity{ServiceID: "svc-conflict", Group: "g", IdentifiedAt: now}
	if err := s.Identify(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveConnection(t.Context(), c.ID); err != nil {
		t.Fatalf("RemoveConnection through transaction conflicts: %v", err)
	}
	if !api.seen["DeleteItem"] || !api.seen["BatchWriteItem"] {
		t.Fatal("the conflicts were never raised")
	}
	if _, err := s.ServiceConnection(t.Context(), "svc-conflict"); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("service still reachable: %v", err)
	}
	if _, err := s.Connection(t.Context(), c.ID); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("connection still stored: %v", err)
	}
}
