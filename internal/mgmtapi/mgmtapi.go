// Package mgmtapi is the sender on API Gateway's @connections management
// API: it implements router.Sender with PostToConnection and
// DeleteConnection, and sweep.Gateway with GetConnection as well, of
// github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi.
package mgmtapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
)

// Defaults of the zero fields of Config.
const (
	// DefaultMaxConns is the default HTTP idle pool size per host: one idle
	// connection for each goroutine of a full router fan-out.
	DefaultMaxConns = router.DefaultFanOut
	// DefaultMaxAttempts is the default number of attempts per call,
	// including the first.
	DefaultMaxAttempts = 5
	// DefaultMaxBackoff is the default cap of the backoff between attempts.
	DefaultMaxBackoff = time.Second
)

// Config tunes a Sender. Zero fields mean their documented defaults.
type Config struct {
	// Endpoint is the management endpoint, including the stage, e.g.
	// https://abc.execute-api.eu-west-1.amazonaws.com/prod or
	// http://127.0.0.1:3001/dev. Required.
	Endpoint string
	// MaxConns is the HTTP idle pool size per host; default DefaultMaxConns,
	// so that a full fan-out reuses connections. The number of open
	// connections per host is not limited.
	MaxConns int
	// MaxAttempts is the number of attempts per call including the first,
	// for 429 LimitExceededException and transient errors; default
	// DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the jittered exponential backoff between attempts;
	// default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// HTTPClient, if set, carries the calls instead of the pooled client
	// that MaxConns sizes (the local gateway passes an in-memory one).
	HTTPClient aws.HTTPClient
}

// Sender reaches WebSocket connections through API Gateway's @connections
// management API. It is safe for concurrent use.
type Sender struct {
	client *apigatewaymanagementapi.Client
	// poster is client with the retryer of Send: a client of its own
	// rather than an option of each call, which the SDK would apply to a
	// copy of the client's options on every call.
	poster *apigatewaymanagementapi.Client
}

var (
	_ router.Sender = (*Sender)(nil)
	_ sweep.Gateway = (*Sender)(nil)
)

// New returns a Sender that calls the management API at cfg.Endpoint with
// the credentials and region of awsCfg. The HTTP client, the retryer and the
// endpoint of awsCfg are replaced by those that cfg describes. With
// anonymous credentials (a local gateway) the calls are not signed, and go
// without the middleware that only AWS reads (removeAWSOnlyMiddleware);
// with any other credentials they are exactly the SDK's. New returns an
// error when cfg.Endpoint is empty or not an absolute http(s) URL, or when a
// field of cfg is negative.
func New(awsCfg aws.Config, cfg Config) (*Sender, error) {
	if err := validateEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("mgmtapi: %w", err)
	}
	if cfg.MaxConns < 0 || cfg.MaxAttempts < 0 || cfg.MaxBackoff < 0 {
		return nil, fmt.Errorf("mgmtapi: negative MaxConns (%d), MaxAttempts (%d) or MaxBackoff (%v)",
			cfg.MaxConns, cfg.MaxAttempts, cfg.MaxBackoff)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}

	var httpClient aws.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = cfg.MaxConns
		t.MaxIdleConnsPerHost = cfg.MaxConns
		// The SDK's default transport caps connections per host at 2048;
		// 0 means no limit.
		t.MaxConnsPerHost = 0
	})
	if cfg.HTTPClient != nil {
		httpClient = cfg.HTTPClient
	}
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = cfg.MaxBackoff
		// No client-wide retry quota: a big fan-out that meets many 429s
		// must keep retrying each call up to MaxAttempts.
		o.RateLimiter = ratelimit.None
	})

	// PostToConnection is not idempotent: after a 5xx or a connection reset
	// the frame may have been delivered, and delivery is at most once. So
	// Send retries only what certainly did not deliver: 429 (throttled, or
	// the client's buffer is full) and failures to connect.
	sendRetryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = cfg.MaxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = []retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.RetryableErrorCode{Codes: map[string]struct{}{"LimitExceededException": {}}},
			retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				var op *net.OpError
				if errors.As(err, &op) && op.Op == "dial" {
					return aws.TrueTernary
				}
				return aws.UnknownTernary
			}),
		}
	})

	// The endpoint never changes: it is resolved once, not on every call.
	endpoints := &endpointCache{next: apigatewaymanagementapi.NewDefaultEndpointResolverV2()}
	// Anonymous credentials are the SDK's own sign not to sign (it skips
	// SigV4 for them): such calls go to a local gateway, which checks no
	// signature, since AWS refuses them. Their clients leave out the
	// middleware that serves only AWS's side of a call.
	anonymous := aws.IsCredentialsProvider(awsCfg.Credentials, (*aws.AnonymousCredentials)(nil))
	newClient := func(retryer aws.Retryer) *apigatewaymanagementapi.Client {
		return apigatewaymanagementapi.NewFromConfig(awsCfg, func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.EndpointResolverV2 = endpoints
			o.HTTPClient = httpClient
			o.Retryer = retryer
			// A RetryMaxAttempts from awsCfg (AWS_MAX_ATTEMPTS) would wrap
			// the retryer and override cfg.MaxAttempts.
			o.RetryMaxAttempts = 0
			if anonymous {
				o.APIOptions = append(o.APIOptions, removeAWSOnlyMiddleware)
			}
		})
	}
	return &Sender{client: newClient(retryer), poster: newClient(sendRetryer)}, nil
}

func validateEndpoint(endpoint string) error {
	if endpoint == "" {
		return errors.New("empty endpoint")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("parse endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("endpoint %q: scheme is not http or https", endpoint)
	}
	if u.Host == "" {
		return fmt.Errorf("endpoint %q: no host", endpoint)
	}
	return nil
}

// Send delivers frame to the connection connID with PostToConnection,
// retrying 429 LimitExceededException and failures to connect, nothing else
// (delivery is at most once). It returns an error wrapping router.ErrGone
// when the connection no longer exists (410), and one wrapping
// router.ErrThrottled for a 429 that outlasts the retries.
func (s *Sender) Send(ctx context.Context, connID string, frame []byte) error {
	if frame == nil {
		frame = []byte{} // Data is required: nil would fail validation.
	}
	_, err := s.poster.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(connID),
		Data:         frame,
	})
	if err == nil {
		return nil
	}
	if isGone(err) {
		return fmt.Errorf("post to connection %s: %w: %w", connID, router.ErrGone, err)
	}
	var limited *types.LimitExceededException
	if errors.As(err, &limited) {
		// Refused past the retries: the frame was not delivered.
		return fmt.Errorf("post to connection %s: %w: %w", connID, router.ErrThrottled, err)
	}
	return fmt.Errorf("post to connection %s: %w", connID, err)
}

// Close closes the connection connID with DeleteConnection. Closing a
// connection that no longer exists (410) is not an error.
func (s *Sender) Close(ctx context.Context, connID string) error {
	_, err := s.client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{
		ConnectionId: aws.String(connID),
	})
	if err == nil || isGone(err) {
		return nil
	}
	return fmt.Errorf("delete connection %s: %w", connID, err)
}

// Status returns when the connection connID was opened and last active,
// with GetConnection (retried like any idempotent call). It returns an
// error wrapping router.ErrGone when the connection no longer exists (410).
func (s *Sender) Status(ctx context.Context, connID string) (sweep.Status, error) {
	out, err := s.client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{
		ConnectionId: aws.String(connID),
	})
	if err != nil {
		if isGone(err) {
			return sweep.Status{}, fmt.Errorf("get connection %s: %w: %w", connID, router.ErrGone, err)
		}
		return sweep.Status{}, fmt.Errorf("get connection %s: %w", connID, err)
	}
	st := sweep.Status{ConnectedAt: aws.ToTime(out.ConnectedAt), LastActiveAt: aws.ToTime(out.LastActiveAt)}
	if st.LastActiveAt.IsZero() {
		st.LastActiveAt = st.ConnectedAt
	}
	return st, nil
}

// isGone reports whether err says that the connection no longer exists: a
// GoneException, or an HTTP 410 whose error type the SDK did not recognise
// (an answer without the X-Amzn-ErrorType header).
func isGone(err error) bool {
	var gone *types.GoneException
	if errors.As(err, &gone) {
		return true
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusGone
}
