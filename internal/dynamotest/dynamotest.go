// Package dynamotest connects tests to the DynamoDB engine at
// DYNAMODB_ENDPOINT (DynamoDB Local, started by `make test`, or LocalStack)
// and gives each test a fresh table.
//
// Without DYNAMODB_ENDPOINT the tests that need DynamoDB are skipped, except
// when CI=true: there they fail, so that CI never passes without them.
package dynamotest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
)

// Endpoint returns DYNAMODB_ENDPOINT, skipping the test when it is unset
// outside CI and failing it inside CI.
func Endpoint(t testing.TB) string {
	t.Helper()
	ep := os.Getenv("DYNAMODB_ENDPOINT")
	if ep == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("DYNAMODB_ENDPOINT is not set, and CI=true: tests that need DynamoDB must not be skipped (run `make test`)")
		}
		t.Skip("DYNAMODB_ENDPOINT is not set; `make test` starts DynamoDB Local and sets it")
	}
	return ep
}

// Client returns a client of the engine at DYNAMODB_ENDPOINT, after checking
// that the engine answers; an engine that does not answer fails the test.
func Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	ep := Endpoint(t)
	c, err := dynamostore.NewClient(context.Background(), ep, dynamostore.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)}); err != nil {
		t.Fatalf("DynamoDB at DYNAMODB_ENDPOINT=%s does not answer: %v", ep, err)
	}
	return c
}

var tables atomic.Int64

// NewTable creates a fresh table like template.yaml's and deletes it when
// the test ends. It returns the table's name.
func NewTable(t testing.TB, c *dynamodb.Client) string {
	t.Helper()
	name := fmt.Sprintf("mst-test-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, tables.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := dynamostore.EnsureTable(ctx, c, name); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("delete table %s: %v", name, err)
		}
	})
	return name
}
