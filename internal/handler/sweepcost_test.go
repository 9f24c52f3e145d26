package handler_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
)

// capacityAPI asks DynamoDB for the capacity each Query consumes, and adds
// it up with the calls and the items read.
type capacityAPI struct {
	dynamostore.API
	queries, items atomic.Int64
	mu             sync.Mutex
	units          float64
}

func (c *capacityAPI) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.API.Query(ctx, in, o...)
	if err == nil {
		c.queries.Add(1)
		c.items.Add(int64(out.Count))
		if out.ConsumedCapacity != nil {
			c.mu.Lock()
			c.units += aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
			c.mu.Unlock()
		}
	}
	return out, err
}

// liveGateway says every connection is live and active: the steady state,
// in which a sweep only looks.
type liveGateway struct{ calls atomic.Int64 }

func (g *liveGateway) Status(context.Context, string) (sweep.Status, error) {
	g.calls.Add(1)
	now := time.Now()
	return sweep.Status{ConnectedAt: now.Add(-time.Minute), LastActiveAt: now}, nil
}
func (g *liveGateway) Send(context.Context, string, []byte) error { return nil }
func (g *liveGateway) Close(context.Context, string) error        { return nil }

// BenchmarkSweepCost measures what one sweep of 10,000 identified
// connections costs on DynamoDB Local: Query calls and the read capacity
// they consume (as DynamoDB reports it), items read, and GetConnection
// calls, per sweep.
func BenchmarkSweepCost(b *testing.B) {
	const n = 10000
	const gateway = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"
	db := dynamotest.Client(b)
	table := dynamotest.NewTable(b, db)
	store, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	// 10,000 connections as the functions record them: $connect, then IDENTIFY.
	var wg sync.WaitGroup
	var failed atomic.Int64
	ids := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				at := time.Now()
				c := router.Connection{ID: fmt.Sprintf("Sweep%010dQ=", i), ConnectedAt: at, ExpiresAt: at.Add(2*time.Hour + 10*time.Minute),
					SourceIP: "198.51.100.7", UserAgent: "Go-http-client/1.1", Gateway: gateway}
				if store.AddConnection(context.Background(), c) != nil {
					failed.Add(1)
					continue
				}
				c.Identity = &router.Identity{ServiceID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Group: fmt.Sprintf("group-%02d", i%20), IdentifiedAt: at}
				if store.Identify(context.Background(), c) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d connections could not be recorded", failed.Load())
	}

	api := &capacityAPI{API: db}
	swept, err := dynamostore.New(api, dynamostore.Config{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	gw := &liveGateway{}
	s, err := sweep.New(swept, gw, sweep.Config{Gateway: gateway, Concurrency: sweep.DefaultConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := s.Run(context.Background())
		if err != nil || r.Checked != n {
			b.Fatalf("sweep: %+v, %v; want %d checked", r, err, n)
		}
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(float64(api.queries.Load())/runs, "Query/sweep")
	b.ReportMetric(api.units/runs, "RCU/sweep")
	b.ReportMetric(float64(api.items.Load())/runs, "items/sweep")
	b.ReportMetric(float64(gw.calls.Load())/runs, "GetConnection/sweep")
	b.Logf("one sweep of %d connections: %.0f Query calls consuming %.1f read capacity units (eventually consistent, from the connections index), %.0f items, %.0f GetConnection calls",
		n, float64(api.queries.Load())/runs, api.units/runs, float64(api.items.Load())/runs, float64(gw.calls.Load())/runs)
}
