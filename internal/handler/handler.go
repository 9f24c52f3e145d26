// Package handler is the AWS Lambda side of mastersocket: the handlers of the
// $connect, $disconnect and $default routes of an API Gateway WebSocket API,
// which turn API Gateway events into calls of the router, the $connect
// authorizer, the handler of the sweeper's schedule, and the settings they
// read from the environment. The functions/ mains only wire it up, and
// the local gateway invokes the same handlers.
package handler

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"sync"
	"time"
	"unsafe"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mastersocket/mastersocket/internal/asyncinvoke"
	"github.com/mastersocket/mastersocket/internal/authorizer"
	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// Store is the registry the handlers run on: what the router needs, and
// the listing of every connection that the sweeper needs.
type Store interface {
	router.Store
	Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error
}

// Sender reaches connections through the gateway's management API: what
// the router needs, and the connection status that the sweeper needs.
type Sender interface {
	router.Sender
	Status(ctx context.Context, connID string) (sweep.Status, error)
}

var (
	_ Store  = (*dynamostore.Store)(nil)
	_ Sender = (*mgmtapi.Sender)(nil)
)

// Backend is what the handlers run on.
type Backend struct {
	Store Store
	// NewSender returns the sender for a management endpoint (with stage);
	// it is called once per endpoint.
	NewSender func(endpoint string) (Sender, error)
	Settings  Settings
	// Dispatcher hands the batches of a big GROUP or GLOBAL to the fan-out
	// function; nil: every delivery is made inline.
	Dispatcher router.Dispatcher
	// Logger defaults to slog.Default(). Every line an invocation logs
	// carries its ids (see telemetry.LogHandler).
	Logger *slog.Logger
	// Metrics receives each invocation's metrics; nil: none are written.
	Metrics *telemetry.Emitter
}

// Handlers holds the three route handlers, the authorizer and the sweeper, and the warm
// state they share: one router, with its identity caches, and one sender
// per management endpoint.
type Handlers struct {
	b    Backend
	log  *slog.Logger
	auth *authorizer.Authorizer

	mu      sync.Mutex
	routers map[string]*router.Router
	senders map[string]Sender
	// byGateway holds the routers of events' domain and stage, when no
	// endpoint is set, so that a message does not build its endpoint.
	byGateway map[gatewayKey]*router.Router
}

// gatewayKey names a gateway as an event does: its domain and stage.
type gatewayKey struct{ domain, stage string }

// New returns the handlers over b, or an error if b's settings are invalid.
func New(b Backend) (*Handlers, error) {
	if b.Store == nil || b.NewSender == nil {
		return nil, errors.New("handler: a store and a sender factory are required")
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	b.Logger = slog.New(telemetry.LogHandler(b.Logger.Handler()))
	h := &Handlers{b: b, log: b.Logger, routers: make(map[string]*router.Router), senders: make(map[string]Sender)}
	if _, err := router.New(b.Store, nil, b.Settings.RouterConfig(b.Logger)); err != nil {
		return nil, err
	}
	auth, err := authorizer.New(b.Store, b.Settings.AuthorizerConfig())
	if err != nil {
		return nil, err
	}
	h.auth = auth
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
	var metrics *telemetry.Emitter
	if !s.MetricsOff {
		// Lambda sends standard output to the function's log group,
		// where CloudWatch reads the metrics of EMF lines.
		metrics = telemetry.NewEmitter(os.Stdout, s.MetricsNamespace)
	}
	var dispatcher router.Dispatcher
	if s.FanOutFunction != "" {
		if dispatcher, err = asyncinvoke.New(awsCfg, asyncinvoke.Config{Function: s.FanOutFunction}); err != nil {
			return nil, err
		}
	}
	return New(Backend{
		Dispatcher: dispatcher,
		Store:      store,
		NewSender: func(endpoint string) (Sender, error) {
			return mgmtapi.New(awsCfg, s.SenderConfig(endpoint))
		},
		Settings: s,
		Logger:   log,
		Metrics:  metrics,
	})
}

// begin starts the telemetry record of an invocation: its metrics, and the
// ids its log lines carry. It returns ctx carrying the record.
func begin(ctx context.Context, stage, requestID, connID string) (context.Context, *telemetry.Record) {
	rec := telemetry.NewRecord(stage, requestID, connID)
	return telemetry.NewContext(ctx, rec), rec
}

// emit writes the metrics of an invocation's record. A write that fails
// is logged: it never fails the invocation.
func (h *Handlers) emit(ctx context.Context, rec *telemetry.Record) {
	if err := h.b.Metrics.Emit(rec); err != nil {
		h.log.WarnContext(ctx, "writing metrics failed", "err", err)
	}
}

// stageOf returns the stage of a management endpoint
// (https://DOMAIN/STAGE): the last segment of its path.
func stageOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return path.Base(path.Clean("/" + u.Path))
}

// routerFor returns the router of the request's management endpoint.
func (h *Handlers) routerFor(rc events.APIGatewayWebsocketProxyRequestContext) (*router.Router, error) {
	if endpoint := h.b.Settings.ManagementEndpoint; endpoint != "" {
		return h.routerForEndpoint(endpoint)
	}
	key := gatewayKey{rc.DomainName, rc.Stage}
	h.mu.Lock()
	r, ok := h.byGateway[key]
	h.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := h.routerForEndpoint("https://" + rc.DomainName + "/" + rc.Stage)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.byGateway == nil {
		h.byGateway = make(map[gatewayKey]*router.Router)
	}
	h.byGateway[key] = r
	h.mu.Unlock()
	return r, nil
}

// routerForEndpoint returns the router of a management endpoint, made once.
func (h *Handlers) routerForEndpoint(endpoint string) (*router.Router, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.routers[endpoint]; ok {
		return r, nil
	}
	sender, err := h.senderLocked(endpoint)
	if err != nil {
		return nil, err
	}
	cfg := h.b.Settings.RouterConfig(h.log)
	cfg.Gateway = endpoint
	cfg.Dispatcher = h.b.Dispatcher
	r, err := router.New(h.b.Store, sender, cfg)
	if err != nil {
		return nil, err
	}
	h.routers[endpoint] = r
	return r, nil
}

// senderLocked returns the sender of a management endpoint, made once.
// The caller holds h.mu.
func (h *Handlers) senderLocked(endpoint string) (Sender, error) {
	if snd, ok := h.senders[endpoint]; ok {
		return snd, nil
	}
	snd, err := h.b.NewSender(endpoint)
	if err != nil {
		return nil, fmt.Errorf("sender for %s: %w", endpoint, err)
	}
	h.senders[endpoint] = snd
	return snd, nil
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

// Connect handles $connect: it records the connection, identified already
// when the $connect authorizer vouched for it (see Authorize), anonymous
// otherwise. It selects the "mastersocket" subprotocol when the client
// offered it. A broken store returns an error, which makes API Gateway
// refuse the handshake.
func (h *Handlers) Connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	ctx, rec := begin(ctx, rc.Stage, rc.RequestID, rc.ConnectionID)
	defer h.emit(ctx, rec)
	id, err := vouchedIdentity(rc)
	if id != nil {
		rec.SetService(id.ServiceID)
	}
	var r *router.Router
	if err == nil {
		r, err = h.routerFor(rc)
	}
	if err == nil {
		err = r.Connect(ctx, router.Connection{
			ID:          rc.ConnectionID,
			ConnectedAt: connectedAt(rc),
			SourceIP:    rc.Identity.SourceIP,
			UserAgent:   rc.Identity.UserAgent,
			Identity:    id,
		})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "$connect failed", "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	rec.Add(telemetry.ConnectionsOpened, 1)
	if id != nil {
		h.log.DebugContext(ctx, "$connect", "sourceIp", rc.Identity.SourceIP, "group", id.Group)
	} else {
		h.log.DebugContext(ctx, "$connect", "sourceIp", rc.Identity.SourceIP)
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Headers: subprotocol(ev)}, nil
}

// Disconnect handles $disconnect: it forgets the connection and every
// mapping to it.
func (h *Handlers) Disconnect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	ctx, rec := begin(ctx, rc.Stage, rc.RequestID, rc.ConnectionID)
	defer h.emit(ctx, rec)
	if id, err := vouchedIdentity(rc); err == nil && id != nil {
		rec.SetService(id.ServiceID)
	}
	r, err := h.routerFor(rc)
	if err == nil {
		err = r.Disconnect(ctx, rc.ConnectionID)
	}
	reason := ""
	if rc.DisconnectReason != nil {
		reason = *rc.DisconnectReason
	}
	if err != nil {
		h.log.ErrorContext(ctx, "$disconnect failed", "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	rec.Add(telemetry.ConnectionsClosed, 1)
	h.log.DebugContext(ctx, "$disconnect", "code", rc.DisconnectStatusCode, "reason", reason)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

// Message handles $default: one protocol message. The answer to the sender
// itself (IDENTIFY result, PONG, ERROR) is the response body, which the
// route response of template.yaml sends back on the connection.
func (h *Handlers) Message(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	ctx, rec := begin(ctx, rc.Stage, rc.RequestID, rc.ConnectionID)
	defer h.emit(ctx, rec)
	// The router only reads the body (see router.Request): it shares the
	// event's bytes instead of a copy, which for a message of 32 KB is as
	// much less to allocate and copy.
	body := unsafe.Slice(unsafe.StringData(ev.Body), len(ev.Body))
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			h.log.WarnContext(ctx, "body marked base64 is not base64; handling it as sent")
		} else {
			body = b
		}
	}
	id, err := vouchedIdentity(rc)
	var r *router.Router
	if err == nil {
		r, err = h.routerFor(rc)
	}
	var reply []byte
	if err == nil {
		reply, err = r.Handle(ctx, router.Request{ConnectionID: rc.ConnectionID, ConnectedAt: connectedAt(rc), Identity: id, Body: body})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "message failed", "err", err)
		return events.APIGatewayProxyResponse{}, err
	}
	// The reply is ours (see router.Router.Handle): the body shares its
	// bytes rather than copy them.
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: unsafe.String(unsafe.SliceData(reply), len(reply))}, nil
}

// fanOutMargin is kept from the end of the fan-out function's Lambda
// timeout: posts stop then, and what is left is handed on in time.
const fanOutMargin = 5 * time.Second

// FanOut handles an asynchronous invocation of the fan-out function: a
// batch of a big GROUP or GLOBAL that a message's invocation handed on (see
// router.Dispatcher). It posts the batch's frame to each recipient, paced
// to the batch's rate, and hands on in a new batch those it could not post
// to in time or that were throttled. It returns an error only for a batch
// it cannot deliver at all (malformed, or for another gateway): with
// template.yaml's MaximumRetryAttempts 0, Lambda then sends the event to
// the on-failure destination without retrying, so no recipient ever gets a
// frame twice.
func (h *Handlers) FanOut(ctx context.Context, b router.Batch) (router.BatchReport, error) {
	endpoint := b.Gateway
	if ep := h.b.Settings.ManagementEndpoint; ep != "" {
		endpoint = ep // a batch for another gateway is refused below
	}
	if endpoint == "" {
		return router.BatchReport{}, errors.New("fan-out: the batch names no gateway")
	}
	ctx, rec := begin(ctx, stageOf(endpoint), "", "")
	defer h.emit(ctx, rec)
	rec.SetMessageID(b.ID)
	r, err := h.routerForEndpoint(endpoint)
	if err != nil {
		return router.BatchReport{}, err
	}
	ctx, cancel := beforeDeadline(ctx, fanOutMargin)
	defer cancel()
	start := time.Now()
	rep, err := r.DeliverBatch(ctx, b)
	if err != nil {
		h.log.ErrorContext(ctx, "fan-out batch refused", "recipients", len(b.To), "attempt", b.Attempt, "err", err)
		return rep, err
	}
	h.log.InfoContext(ctx, "fan-out batch", "recipients", len(b.To), "attempt", b.Attempt, "delivered", rep.Delivered,
		"gone", rep.Gone, "failed", rep.Failed, "handedOn", rep.HandedOn, "duration", time.Since(start).Round(time.Millisecond).String())
	return rep, nil
}

// beforeDeadline returns ctx ending margin before its deadline (the
// Lambda timeout), so that the work cut short still has time to report or
// hand on what it did not do; ctx as it is when it has no deadline.
func beforeDeadline(ctx context.Context, margin time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-margin))
	}
	return context.WithCancel(ctx)
}

// sweepMargin is kept from the end of the sweeper's Lambda timeout, so that
// a sweep cut short still reports what it did.
const sweepMargin = 2 * time.Second

// Sweep handles the sweeper's schedule (an EventBridge scheduled event,
// whose content does not matter): it closes the connections that have
// been silent for more than twice the ping interval (4008 PING_TIMEOUT)
// and those still anonymous after the IDENTIFY deadline (4004), and
// removes the items of every connection the gateway no longer has. It
// needs MANAGEMENT_ENDPOINT, since a scheduled event names no API. It
// returns the sweep's report; an error means the registry could not be
// listed or the time ran out, and the next sweep starts over.
func (h *Handlers) Sweep(ctx context.Context, _ events.EventBridgeEvent) (sweep.Report, error) {
	endpoint := h.b.Settings.ManagementEndpoint
	if endpoint == "" {
		return sweep.Report{}, fmt.Errorf("sweep: %s is required (a scheduled event names no API)", EnvManagementEndpoint)
	}
	h.mu.Lock()
	snd, err := h.senderLocked(endpoint)
	h.mu.Unlock()
	if err != nil {
		return sweep.Report{}, err
	}
	cfg := h.b.Settings.SweepConfig(h.log)
	cfg.Gateway = endpoint
	sw, err := sweep.New(h.b.Store, snd, cfg)
	if err != nil {
		return sweep.Report{}, err
	}
	ctx, rec := begin(ctx, stageOf(endpoint), "", "")
	defer h.emit(ctx, rec)
	ctx, cancel := beforeDeadline(ctx, sweepMargin)
	defer cancel()
	start := time.Now()
	r, err := sw.Run(ctx)
	rec.AddErrors(protocol.CodePingTimeout.Reason(), int(r.Silent))
	rec.AddErrors(protocol.CodeIdentifyFailed.Reason(), int(r.Anonymous))
	rec.Add(telemetry.ConnectionsSwept, float64(r.Gone+r.Silent+r.Anonymous))
	attrs := []any{"checked", r.Checked, "gone", r.Gone, "young", r.Young, "silent", r.Silent, "anonymous", r.Anonymous,
		"failed", r.Failed, "duration", time.Since(start).Round(time.Millisecond).String()}
	if err != nil {
		h.log.ErrorContext(ctx, "sweep failed", append(attrs, "err", err)...)
		return r, err
	}
	// Only a whole sweep counts every connection.
	rec.Add(telemetry.ConnectionsLive, float64(r.Checked-r.Gone-r.Silent-r.Anonymous))
	h.log.InfoContext(ctx, "sweep", attrs...)
	return r, nil
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
