package dynamostore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
)

// A DynamoDB that throttles every request: each call must be retried up to
// MaxAttempts, however many calls were throttled before it. The SDK's
// default retry quota would stop retrying after a few dozen calls.
func TestEveryCallGetsItsRetriesAfterAThrottlingBurst(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}`))
	}))
	defer srv.Close()

	const attempts = 3
	client, err := dynamostore.NewClient(t.Context(), srv.URL, dynamostore.ClientConfig{MaxAttempts: attempts, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const calls = 200 // 400 throttled retries: far past the default quota of 500 tokens at 5 each
	for i := range calls {
		before := requests.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
		cancel()
		if err == nil {
			t.Fatal("GetItem succeeded against a DynamoDB that throttles everything")
		}
		if got := requests.Load() - before; got != attempts {
			t.Fatalf("call %d made %d attempts, want %d: %v", i+1, got, attempts, err)
		}
	}
}
