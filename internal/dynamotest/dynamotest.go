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
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// Engine is a DynamoDB Local of a test's own, on disk, that the test can
// stop and start again (DynamoDB down, then back with its data).
type Engine struct {
	t      testing.TB
	dir    string
	shim   string
	dbPath string
	port   int
	cmd    *exec.Cmd
	// Endpoint is http://127.0.0.1:PORT; it stays the same across restarts.
	Endpoint string
}

// StartEngine starts a DynamoDB Local of the test's own from
// DYNAMODB_LOCAL_DIR (which `make test` sets), keeping its data in a folder
// of the test's; it is stopped when the test ends. Without
// DYNAMODB_LOCAL_DIR or java the test is skipped, and fails in CI.
func StartEngine(t testing.TB) *Engine {
	t.Helper()
	dir := os.Getenv("DYNAMODB_LOCAL_DIR")
	_, errJava := exec.LookPath("java")
	if dir == "" || errJava != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("DYNAMODB_LOCAL_DIR and java are needed, and CI=true: run `make test`")
		}
		t.Skip("DYNAMODB_LOCAL_DIR and java are needed; `make test` sets it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e := &Engine{t: t, dir: dir, shim: os.Getenv("DYNAMODB_LOCAL_SHIM"), dbPath: t.TempDir(), port: port,
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port)}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Start starts the engine (again) and waits until it answers.
func (e *Engine) Start() {
	e.t.Helper()
	if e.cmd != nil {
		return
	}
	cmd := exec.Command("java", "-Djava.net.preferIPv4Stack=true", "-Djava.library.path="+filepath.Join(e.dir, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(e.dir, "DynamoDBLocal.jar"), "-disableTelemetry", "-sharedDb", "-dbPath", e.dbPath, "-port", strconv.Itoa(e.port))
	cmd.Dir = e.dbPath
	cmd.Env = os.Environ()
	if e.shim != "" {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+e.shim)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start DynamoDB Local: %v", err)
	}
	e.cmd = cmd
	c, err := dynamostore.NewClient(context.Background(), e.Endpoint, dynamostore.ClientConfig{MaxAttempts: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("DynamoDB Local at %s did not answer: %v", e.Endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the engine, as a crash or an outage would; its data stays.
func (e *Engine) Stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	e.cmd.Wait()
	e.cmd = nil
}
