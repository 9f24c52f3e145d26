package dynamostore

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Defaults of ClientConfig.
const (
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 2 * time.Second
)

// ClientConfig tunes the DynamoDB client's retries. Zero fields mean their
// defaults.
type ClientConfig struct {
	// MaxAttempts is the number of attempts of one call, including the
	// first, for throttling and transient errors; default 5.
	MaxAttempts int
	// MaxBackoff caps the jittered backoff between attempts; default 2s.
	// (Throttling errors back off from 1s, other errors from 50ms.) With
	// the defaults a call gives up within about 7s, well inside API
	// Gateway's 29s.
	MaxBackoff time.Duration
	// HTTPClient, if set, carries the calls (tests inject faults with it).
	HTTPClient aws.HTTPClient
}

// Options returns the client options that c describes. Every call is
// retried up to MaxAttempts, whatever other calls have met: the SDK's
// default client-wide retry quota (500 tokens, 5 to 14 per retry) is
// removed, since after an outage or a throttling burst it would make calls
// fail at their first error (seen: "retry quota exceeded, 10 available, 14
// requested" on $disconnect), which is when retrying matters most. Attempts
// per call stay bounded by MaxAttempts.
func (c ClientConfig) Options() func(*dynamodb.Options) {
	attempts, backoff := c.MaxAttempts, c.MaxBackoff
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if backoff <= 0 {
		backoff = DefaultMaxBackoff
	}
	return func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = backoff
			so.RateLimiter = ratelimit.None
		})
		// A RetryMaxAttempts from the environment (AWS_MAX_ATTEMPTS) would
		// wrap the retryer and override MaxAttempts.
		o.RetryMaxAttempts = 0
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
	}
}

// NewClient returns a DynamoDB client from the default AWS configuration
// (environment, shared files, instance role), with the retries of cfg. With
// an endpoint, such as DynamoDB Local's http://127.0.0.1:8000 or
// LocalStack's http://127.0.0.1:4566, it talks to that endpoint instead, in
// region us-east-1 unless AWS_REGION says otherwise, and signs with the
// static credentials local/local unless AWS_ACCESS_KEY_ID is set: local
// engines accept any, and no credential lookup has to time out first.
// Response checksums are not validated against such an endpoint.
func NewClient(ctx context.Context, endpoint string, cfg ClientConfig) (*dynamodb.Client, error) {
	var opts []func(*config.LoadOptions) error
	if endpoint != "" {
		if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			opts = append(opts, config.WithRegion("us-east-1"))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return dynamodb.NewFromConfig(awsCfg, cfg.Options(), func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local sends CRC32 headers that do not match its
			// error bodies; the SDK would log a warning for each.
			o.DisableValidateResponseChecksum = true
		}
	}), nil
}
