package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
	"github.com/mastersocket/mastersocket/internal/token"
)

// registry is what socketctl needs of the table: the tokens, and the
// connections that connections, send and kick read and clean up.
type registry interface {
	PutToken(ctx context.Context, t token.Token) error
	Tokens(ctx context.Context) ([]token.Token, error)
	DeleteToken(ctx context.Context, h token.Hash) error

	// Connections calls fn with each page of the connections recorded by
	// one gateway (its management endpoint), maybe from several goroutines.
	Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error
	// Connection returns a live recorded connection, or router.ErrNotFound.
	Connection(ctx context.Context, connID string) (router.Connection, error)
	GroupMembers(ctx context.Context, group string, fn func([]router.Member) error) error
	// AllMembers may call fn from several goroutines at once.
	AllMembers(ctx context.Context, fn func([]router.Member) error) error
	ServiceConnection(ctx context.Context, serviceID string) (string, error)
	RemoveConnection(ctx context.Context, connID string) error
}

var _ registry = (*dynamostore.Store)(nil)

// gateway is what socketctl needs of the @connections management API.
type gateway interface {
	// Status returns when a connection connected and was last active, or
	// an error wrapping router.ErrGone.
	Status(ctx context.Context, connID string) (sweep.Status, error)
	router.Sender
}

var _ gateway = (*mgmtapi.Sender)(nil)

// openStore opens the DynamoDB registry of a table.
func openStore(ctx context.Context, table, endpoint string) (registry, error) {
	client, err := dynamostore.NewClient(ctx, endpoint, dynamostore.ClientConfig{})
	if err != nil {
		return nil, err
	}
	return dynamostore.New(client, dynamostore.Config{Table: table})
}

// openGateway returns the sender of a management endpoint. An http://
// endpoint is a local gateway, which checks no signature: its calls go
// unsigned. An AWS endpoint is called with the default AWS credentials,
// signed for the region its host names (https://ID.execute-api.REGION.amazonaws.com).
func openGateway(ctx context.Context, endpoint string) (gateway, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if u.Scheme == "http" {
		opts = append(opts, config.WithRegion("us-east-1"), config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	} else if region := apiRegion(u.Hostname()); region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	s, err := mgmtapi.New(awsCfg, mgmtapi.Config{Endpoint: endpoint})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// apiRegion returns the region of an API Gateway host
// (ID.execute-api.REGION.amazonaws.com), or "".
func apiRegion(host string) string {
	parts := strings.Split(host, ".")
	if len(parts) >= 4 && parts[1] == "execute-api" {
		return parts[2]
	}
	return ""
}

// store opens the store that --table and --endpoint name.
func (c *cli) store(ctx context.Context, fs *flag.FlagSet) (registry, error) {
	if c.table == "" {
		return nil, usageError(strings.TrimPrefix(fs.Name(), "socketctl ") + ": --table (or TABLE_NAME) is required; `sam list stack-outputs` shows TableName")
	}
	return c.open(ctx, c.table, c.endpoint)
}

// storeAndGateway checks --table and --management-endpoint, then opens the
// store and the gateway's management API. It returns the endpoint as the
// gateway records its connections.
func (c *cli) storeAndGateway(ctx context.Context, fs *flag.FlagSet) (registry, gateway, string, error) {
	ep, err := c.checkManagementEndpoint(fs)
	if err != nil {
		return nil, nil, "", err
	}
	store, err := c.store(ctx, fs)
	if err != nil {
		return nil, nil, "", err
	}
	gw, err := c.dial(ctx, ep)
	if err != nil {
		return nil, nil, "", fmt.Errorf("management API %s: %w", ep, err)
	}
	return store, namedGateway{gw, ep}, ep, nil
}

// namedGateway marks the errors of a gateway's calls with its endpoint, so
// that explain can name it.
type namedGateway struct {
	gateway
	endpoint string
}

func (g namedGateway) mark(err error) error {
	if err == nil {
		return nil
	}
	return gatewayError{err, g.endpoint}
}

func (g namedGateway) Status(ctx context.Context, connID string) (sweep.Status, error) {
	st, err := g.gateway.Status(ctx, connID)
	return st, g.mark(err)
}

func (g namedGateway) Send(ctx context.Context, connID string, frame []byte) error {
	return g.mark(g.gateway.Send(ctx, connID, frame))
}

func (g namedGateway) Close(ctx context.Context, connID string) error {
	return g.mark(g.gateway.Close(ctx, connID))
}
