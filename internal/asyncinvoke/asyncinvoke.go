// Package asyncinvoke hands fan-out batches to another Lambda invocation:
// it implements router.Dispatcher with an asynchronous Invoke
// (InvocationType Event) of the fan-out function, through
// github.com/aws/aws-sdk-go-v2/service/lambda.
//
// Why asynchronous invocation and not SQS: a batch starts at once (no
// poller, no batching window), Lambda queues it and retries throttled
// invocations for up to six hours on its own, a failed one lands in the
// function's on-failure destination, and nothing else needs deploying or
// paying for. The price is a 1 MB payload limit, which the router's batch
// bound (256 KiB by default) keeps well inside.
package asyncinvoke

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mastersocket/mastersocket/internal/router"
)

// MaxPayloadBytes is Lambda's limit on the payload of an asynchronous
// invocation (1 MB).
const MaxPayloadBytes = 1 << 20

// Config describes a Dispatcher. Zero fields mean their defaults.
type Config struct {
	// Function is the fan-out function's name or ARN. Required.
	Function string
	// MaxAttempts is the number of attempts of one Invoke, retrying
	// throttling (429 TooManyRequestsException) and transient errors;
	// default 5.
	MaxAttempts int
	// HTTPClient, if set, carries the calls (the local gateway passes an
	// in-memory one).
	HTTPClient aws.HTTPClient
	// Endpoint, if set, replaces Lambda's endpoint (the local gateway's).
	Endpoint string
}

// Dispatcher invokes the fan-out function asynchronously with each batch.
// It is safe for concurrent use.
type Dispatcher struct {
	client   *lambda.Client
	function string
}

var _ router.Dispatcher = (*Dispatcher)(nil)

// New returns a Dispatcher that invokes cfg.Function with the credentials
// and region of awsCfg, or an error if the function is not named.
func New(awsCfg aws.Config, cfg Config) (*Dispatcher, error) {
	if cfg.Function == "" {
		return nil, errors.New("asyncinvoke: no fan-out function")
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("asyncinvoke: negative MaxAttempts %d", cfg.MaxAttempts)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	client := lambda.NewFromConfig(awsCfg, func(o *lambda.Options) {
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = cfg.MaxAttempts
			// No client-wide retry quota: every batch gets its attempts.
			so.RateLimiter = ratelimit.None
		})
		o.RetryMaxAttempts = 0
	})
	return &Dispatcher{client: client, function: cfg.Function}, nil
}

// Dispatch invokes the fan-out function with b, asynchronously: it returns
// once Lambda has queued the invocation (202). A payload over
// MaxPayloadBytes is refused before the call.
func (d *Dispatcher) Dispatch(ctx context.Context, b router.Batch) error {
	payload, err := b.Encode()
	if err != nil {
		return err
	}
	if len(payload) > MaxPayloadBytes {
		return fmt.Errorf("asyncinvoke: batch of %d bytes is over Lambda's %d", len(payload), MaxPayloadBytes)
	}
	out, err := d.client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(d.function),
		InvocationType: types.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("invoke %s: %w", d.function, err)
	}
	if out.StatusCode != http.StatusAccepted {
		return fmt.Errorf("invoke %s: status %d, want 202", d.function, out.StatusCode)
	}
	return nil
}
