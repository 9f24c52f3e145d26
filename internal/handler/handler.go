// Package handler is the AWS Lambda side of mastersocket: the handlers of the
// $connect, $disconnect and $default routes of an API Gateway WebSocket API,
// which turn API Gateway events into calls of the router, and the settings
// they read from the environment. The functions/ mains only wire it up, and
// the local gateway invokes the same handlers.
package handler

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
)

// Backend is what the handlers run on.
type Backend struct {
	Store router.Store
	// NewSender returns the sender for a management endpoint (with stage);
	// it is called once per endpoint.
	NewSender func(endpoint string) (router.Sender, error)
	Settings  Settings
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Handlers holds the three route handlers and the warm state they share:
// one router, with its identity caches, per management endpoint.
type Handlers struct {
	b   Backend
	log *slog.Logger

	mu      sync.Mutex
	routers map[string]*router.Router
}

// New returns the handlers over b, or an error if b's settings are invalid.
func New(b Backend) (*Handlers, error) {
	if b.Store == nil || b.NewSender == nil {
		return nil, errors.New("handler: a store and a sender factory are required")
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	h := &Handlers{b: b, log: b.Logger, routers: make(map[string]*router.Router)}
	if _, err := router.New(b.Store, nil, b.Settings.RouterConfig(b.Logger)); err != nil {
		return nil, err
	}
	if ep := b.Settings.ManagementEndpoint; ep != "" {
		// A bad endpoint fails the cold start, not every invocation.
		if _, err := h.routerFor(events.APIGatewayWebsocketProxyRequestContext{}); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvManagementEndpoint, err)
		}
	}
	return h, nil
}

// FromEnv returns the handlers as they run on AWS Lambda: settings from
// getenv, the DynamoDB store and the @connections sender, with the default
// AWS configuration (AWS_ENDPOINT_URL_DYNAMODB and
// AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI are honoured).
func FromEnv(ctx context.Context, getenv func(string) string) (*Handlers, error) {
	s, err := SettingsFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if s.Table == "" {
		return nil, fmt.Errorf("settings: %s is required", EnvTable)
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	store, err := dynamostore.New(dynamodb.NewFromConfig(awsCfg, s.DynamoDBClientConfig().Options()), s.StoreConfig())
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: s.LogLevel}))
	return New(Backend{
		Store: store,
		NewSender: func(endpoint string) (router.Sender, error) {
			return mgmtapi.New(awsCfg, s.SenderConfig(endpoint))
		},
		Settings: s,
		Logger:   log,
	})
}

// routerFor returns the router of the request's management endpoint.
func (h *Handlers) routerFor(rc events.APIGatewayWebsocketProxyRequestContext) (*router.Router, error) {
	endpoint := h.b.Settings.ManagementEndpoint
	if endpoint == "" {
		endpoint = "https://" + rc.DomainName + "/" + rc.Stage
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.routers[endpoint]; ok {
		return r, nil
	}
	sender, err := h.b.NewSender(endpoint)
	if err != nil {
		return nil, fmt.Errorf("sender for %s: %w", endpoint, err)
	}
	r, err := router.New(h.b.Store, sender, h.b.Settings.RouterConfig(h.log))
	if err != nil {
		return nil, err
	}
	h.routers[endpoint] = r
	return r, nil
}

// connectedAt returns when the connection was opened, or the zero time when
// the event does not say (API Gateway always does): the router then takes
// the current time, rather than 1970, which would make the connection
// expired at birth.
func connectedAt(rc events.APIGatewayWebsocketProxyRequestContext) time.Time {
	if rc.ConnectedAt <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(rc.ConnectedAt).UTC()
}

// Connect handles $connect: it records the connection. A broken store
// returns an error, which makes API Gateway refuse the handshake.
func (h *Handlers) Connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	r, err := h.routerFor(rc)
	if err == nil {
		err = r.Connect(ctx, router.Connection{
			ID:          rc.ConnectionID,
			ConnectedAt: connectedAt(rc),
			SourceIP:    rc.Identity.SourceIP,
			UserAgent:   rc.Identity.UserAgent,
		})
	}
	if err != nil {
		h.log.Error("$connect failed", "connection", rc.ConnectionID, "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	h.log.Debug("$connect", "connection", rc.ConnectionID, "sourceIp", rc.Identity.SourceIP)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

// Disconnect handles $disconnect: it forgets the connection and every
// mapping to it.
func (h *Handlers) Disconnect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	r, err := h.routerFor(rc)
	if err == nil {
		err = r.Disconnect(ctx, rc.ConnectionID)
	}
	reason := ""
	if rc.DisconnectReason != nil {
		reason = *rc.DisconnectReason
	}
	if err != nil {
		h.log.Error("$disconnect failed", "connection", rc.ConnectionID, "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	h.log.Debug("$disconnect", "connection", rc.ConnectionID, "code", rc.DisconnectStatusCode, "reason", reason)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

// Message handles $default: one protocol message. The answer to the sender
// itself (IDENTIFY result, PONG, ERROR) is the response body, which the
// route response of template.yaml sends back on the connection.
func (h *Handlers) Message(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			h.log.Warn("body marked base64 is not base64; handling it as sent", "connection", rc.ConnectionID)
		} else {
			body = b
		}
	}
	r, err := h.routerFor(rc)
	var reply []byte
	if err == nil {
		reply, err = r.Handle(ctx, router.Request{ConnectionID: rc.ConnectionID, ConnectedAt: connectedAt(rc), Body: body})
	}
	if err != nil {
		h.log.Error("message failed", "connection", rc.ConnectionID, "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: string(reply)}, nil
}

// Start runs the handler that pick chooses as a Lambda function, configured
// from the environment with FromEnv; the mains of functions/ call it. It
// returns only when the configuration is unusable.
func Start(pick func(*Handlers) any) error {
	h, err := FromEnv(context.Background(), os.Getenv)
	if err != nil {
		return err
	}
	lambda.Start(pick(h))
	return nil
}
