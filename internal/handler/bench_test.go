package handler_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
)

// countingAPI wraps the DynamoDB client and counts the calls the store
// makes, by operation: "GetItem", "Query", and "Query index/NAME" for a
// Query of an index.
type countingAPI struct {
	dynamostore.API
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingAPI) count(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *countingAPI) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func (c *countingAPI) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.API.GetItem(ctx, in, o...)
}

func (c *countingAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.API.PutItem(ctx, in, o...)
}

func (c *countingAPI) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.count("DeleteItem")
	return c.API.DeleteItem(ctx, in, o...)
}

func (c *countingAPI) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.API.UpdateItem(ctx, in, o...)
}

func (c *countingAPI) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if in.IndexName != nil {
		c.count("Query index/" + *in.IndexName)
	} else {
		c.count("Query")
	}
	return c.API.Query(ctx, in, o...)
}

func (c *countingAPI) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems")
	return c.API.TransactWriteItems(ctx, in, o...)
}

func (c *countingAPI) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.count("BatchWriteItem")
	return c.API.BatchWriteItem(ctx, in, o...)
}

// BenchmarkDynamoDBCallsPerMessage counts the DynamoDB calls of each kind of
// message, handled by a warm container (one that has seen the sender and the
// DIRECT target before), and reports them per message.
func BenchmarkDynamoDBCallsPerMessage(b *testing.B) {
	db := dynamotest.Client(b)
	const shards, pageSize, groupSize = 4, 25, 60 // a GROUP of 60 takes 3 pages of 25
	api := &countingAPI{API: db, calls: map[string]int{}}
	store, err := dynamostore.New(api, dynamostore.Config{Table: dynamotest.NewTable(b, db), Shards: shards, PageSize: pageSize})
	if err != nil {
		b.Fatal(err)
	}
	putToken(b, store)
	m := newMgmtServer(b)
	h := newHandlers(b, store, m)
	members := make([]*client, groupSize)
	for i := range members {
		members[i] = connect(b, h)
		members[i].identify("crowd")
	}
	from, to := members[0], members[1]
	// Warm the container: it learns the sender's identity and the target.
	from.send(`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + to.serviceID + `"}}`)

	cases := []struct{ name, body, want string }{
		{"PING", `{"op":3}`, "none"},
		{"DIRECT", `{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"` + to.serviceID + `"}}`, "0 reads"},
		{"GROUP", `{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"crowd"}}`,
			fmt.Sprintf("1 Query per page: %d pages", (groupSize+pageSize-1)/pageSize)},
		{"GLOBAL", `{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`, fmt.Sprintf("1 Query per shard: %d", shards)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			api.take()
			for b.Loop() {
				from.send(tc.body)
			}
			report(b, api.take(), tc.want)
		})
	}
	b.Run("IDENTIFY", func(b *testing.B) {
		conns := make([]*client, b.N)
		for i := range conns {
			conns[i] = connect(b, h)
		}
		api.take()
		b.ResetTimer()
		for i := range b.N {
			conns[i].identify("late")
		}
		b.StopTimer()
		report(b, api.take(), "1 GetItem (token) + 1 TransactWriteItems")
	})
}

func report(b *testing.B, calls map[string]int, want string) {
	ops := make([]string, 0, len(calls))
	total := 0
	for op, n := range calls {
		ops = append(ops, op)
		total += n
		b.ReportMetric(float64(n)/float64(b.N), op+"/msg")
	}
	sort.Strings(ops)
	b.ReportMetric(float64(total)/float64(b.N), "calls/msg")
	var parts []string
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %.2f", op, float64(calls[op])/float64(b.N)))
	}
	if len(parts) == 0 {
		parts = []string{"no DynamoDB call"}
	}
	b.Logf("per message: %s (design: %s)", strings.Join(parts, ", "), want)
}
