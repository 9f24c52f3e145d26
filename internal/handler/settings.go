package handler

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mastersocket/mastersocket/internal/authorizer"
	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
)

// Settings are the functions' settings. The mains read them from the
// environment with SettingsFromEnv; a zero field means its default.
type Settings struct {
	// Table is the DynamoDB table (TABLE_NAME); required on AWS.
	Table string
	// ManagementEndpoint is the @connections API endpoint with its stage
	// (MANAGEMENT_ENDPOINT). Default: https://{domainName}/{stage} of each
	// request.
	ManagementEndpoint string
	// MaxMessageBytes is the message size limit (MAX_MESSAGE_BYTES);
	// default 32768, at most 131072.
	MaxMessageBytes int
	// PingInterval is the heartbeat interval announced to clients
	// (PING_INTERVAL_MS); default 30000 ms.
	PingInterval time.Duration
	// FanOut bounds the deliveries in flight per message, and sizes the
	// HTTP idle pool to the management API (FANOUT_LIMIT); default 64.
	FanOut int
	// Shards is the number of GLOBAL partitions (SHARD_COUNT); default 4.
	Shards int
	// CacheSize bounds the identity caches of a warm container
	// (CACHE_SIZE); default 10000, negative disables them.
	CacheSize int
	// ItemTTL is how long after connecting the table may forget a
	// connection (ITEM_TTL_SECONDS); default 7800 (2 h 10 min), at least
	// 7200, API Gateway's connection lifetime.
	ItemTTL time.Duration
	// SendMaxAttempts is the number of attempts of one PostToConnection,
	// retrying 429 with backoff (SEND_MAX_ATTEMPTS); default 5.
	SendMaxAttempts int
	// DynamoDBMaxAttempts is the number of attempts of one DynamoDB call,
	// retrying throttling and transient errors with backoff
	// (DYNAMODB_MAX_ATTEMPTS); default 5. There is no client-wide retry
	// quota: every call gets its attempts.
	DynamoDBMaxAttempts int
	// IdentifyTimeout is how long after connecting a connection may stay
	// anonymous (IDENTIFY_TIMEOUT_SECONDS); default 10 s. Later, its
	// IDENTIFY and anything else it sends close it with IDENTIFY_FAILED,
	// and the sweeper closes it.
	IdentifyTimeout time.Duration
	// SweepConcurrency bounds the sweeper's GetConnection calls in flight
	// (SWEEP_CONCURRENCY); default 16.
	SweepConcurrency int
	// SweepHandshakeGrace is how long ago a connection the gateway does not
	// have must have been recorded for the sweeper, or a delivery that gets
	// 410, to remove it: younger ones may still be in their $connect
	// (SWEEP_HANDSHAKE_GRACE_MS); default 30000 ms.
	SweepHandshakeGrace time.Duration
	// AuthCacheTTL is how long the $connect authorizer reuses a token
	// lookup in its warm container (AUTH_CACHE_SECONDS, 0 to 3600, 0
	// turning the cache off); default 30 s. It is also how long a deleted
	// token may still open connections.
	AuthCacheTTL time.Duration
	// AuthCacheSize bounds the tokens the authorizer caches
	// (AUTH_CACHE_SIZE); default 10000.
	AuthCacheSize int
	// FanOutFunction is the function that delivers the batches of a big
	// GROUP or GLOBAL, invoked asynchronously (FANOUT_FUNCTION, a name or
	// ARN). Default "": every delivery is made by the message's own
	// invocation.
	FanOutFunction string
	// InlineFanOut is how many recipients of one message its invocation
	// posts to before handing the rest to FanOutFunction
	// (FANOUT_INLINE_MAX, 0 to 1000000, 0 handing on every recipient);
	// default 1000.
	InlineFanOut int
	// BatchSize bounds the recipients of one batch (FANOUT_BATCH_SIZE);
	// default 20000.
	BatchSize int
	// PostRate is the @connections calls per second that the batches of
	// one message share (FANOUT_POST_RATE); default 10000, the account's
	// default quota.
	PostRate int
	// LogLevel is debug, info, warn or error (LOG_LEVEL); default info.
	LogLevel slog.Level
	// MetricsOff turns off the metrics that each invocation writes to
	// standard output in CloudWatch's embedded metric format (METRICS=off;
	// default METRICS=emf, on).
	MetricsOff bool
	// MetricsNamespace is the CloudWatch namespace of the metrics
	// (METRICS_NAMESPACE); default Mastersocket. template.yaml sets
	// Mastersocket/<stack name>, so that two stacks never mix.
	MetricsNamespace string
}

// Names of the environment variables that SettingsFromEnv reads.
const (
	EnvTable               = "TABLE_NAME"
	EnvManagementEndpoint  = "MANAGEMENT_ENDPOINT"
	EnvMaxMessageBytes     = "MAX_MESSAGE_BYTES"
	EnvPingIntervalMillis  = "PING_INTERVAL_MS"
	EnvFanOut              = "FANOUT_LIMIT"
	EnvShards              = "SHARD_COUNT"
	EnvCacheSize           = "CACHE_SIZE"
	EnvItemTTLSeconds      = "ITEM_TTL_SECONDS"
	EnvSendMaxAttempts     = "SEND_MAX_ATTEMPTS"
	EnvDynamoDBMaxAttempts = "DYNAMODB_MAX_ATTEMPTS"
	EnvIdentifyTimeout     = "IDENTIFY_TIMEOUT_SECONDS"
	EnvSweepConcurrency    = "SWEEP_CONCURRENCY"
	EnvSweepHandshakeGrace = "SWEEP_HANDSHAKE_GRACE_MS"
	EnvAuthCacheSeconds    = "AUTH_CACHE_SECONDS"
	EnvAuthCacheSize       = "AUTH_CACHE_SIZE"
	EnvLogLevel            = "LOG_LEVEL"
	EnvFanOutFunction      = "FANOUT_FUNCTION"
	EnvInlineFanOut        = "FANOUT_INLINE_MAX"
	EnvBatchSize           = "FANOUT_BATCH_SIZE"
	EnvPostRate            = "FANOUT_POST_RATE"
	EnvMetrics             = "METRICS"
	EnvMetricsNamespace    = "METRICS_NAMESPACE"
)

// SettingsFromEnv reads Settings through getenv (os.Getenv in the mains).
// Unset or empty variables keep their defaults; a malformed or out-of-range
// value is an error that names the variable.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Table:              strings.TrimSpace(getenv(EnvTable)),
		ManagementEndpoint: strings.TrimSpace(getenv(EnvManagementEndpoint)),
		FanOutFunction:     strings.TrimSpace(getenv(EnvFanOutFunction)),
	}
	var errs []error
	intVar := func(name string, min, max int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("%s=%q: want an integer from %d to %d", name, v, min, max))
			return 0
		}
		return n
	}
	s.MaxMessageBytes = intVar(EnvMaxMessageBytes, 1, router.MaxMessageBytesLimit)
	s.PingInterval = time.Duration(intVar(EnvPingIntervalMillis, 1, 24*3600*1000)) * time.Millisecond
	s.FanOut = intVar(EnvFanOut, 1, 10000)
	s.Shards = intVar(EnvShards, 1, 1000)
	s.CacheSize = intVar(EnvCacheSize, -1, 10_000_000)
	// Below API Gateway's 2 h connection lifetime, live connections would
	// expire while still open.
	s.ItemTTL = time.Duration(intVar(EnvItemTTLSeconds, 7200, 366*24*3600)) * time.Second
	s.SendMaxAttempts = intVar(EnvSendMaxAttempts, 1, 20)
	s.DynamoDBMaxAttempts = intVar(EnvDynamoDBMaxAttempts, 1, 20)
	s.IdentifyTimeout = time.Duration(intVar(EnvIdentifyTimeout, 1, 7200)) * time.Second
	s.SweepConcurrency = intVar(EnvSweepConcurrency, 1, 1000)
	s.SweepHandshakeGrace = time.Duration(intVar(EnvSweepHandshakeGrace, 1, 3600*1000)) * time.Millisecond
	if v := strings.TrimSpace(getenv(EnvAuthCacheSeconds)); v != "" {
		bad := len(errs)
		switch n := intVar(EnvAuthCacheSeconds, 0, 3600); {
		case n > 0:
			s.AuthCacheTTL = time.Duration(n) * time.Second
		case len(errs) == bad: // a valid 0 ("0", "00", "+0")
			s.AuthCacheTTL = -1 // off
		}
	}
	s.AuthCacheSize = intVar(EnvAuthCacheSize, 1, 10_000_000)
	if v := strings.TrimSpace(getenv(EnvInlineFanOut)); v != "" {
		bad := len(errs)
		switch n := intVar(EnvInlineFanOut, 0, 1_000_000); {
		case n > 0:
			s.InlineFanOut = n
		case len(errs) == bad:
			s.InlineFanOut = -1 // hand on every recipient
		}
	}
	s.BatchSize = intVar(EnvBatchSize, 1, 100_000)
	s.PostRate = intVar(EnvPostRate, 1, 1_000_000)
	if v := strings.TrimSpace(getenv(EnvLogLevel)); v != "" {
		if err := s.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLogLevel, v))
		}
	}
	switch v := strings.TrimSpace(getenv(EnvMetrics)); v {
	case "", "emf":
	case "off":
		s.MetricsOff = true
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want emf or off", EnvMetrics, v))
	}
	s.MetricsNamespace = strings.TrimSpace(getenv(EnvMetricsNamespace))
	if ns := s.MetricsNamespace; len(ns) > 255 || strings.HasPrefix(ns, "AWS/") {
		errs = append(errs, fmt.Errorf("%s=%q: want at most 255 characters, not starting with AWS/", EnvMetricsNamespace, ns))
	}
	return s, errors.Join(errs...)
}

// RouterConfig returns the router configuration these settings describe.
func (s Settings) RouterConfig(log *slog.Logger) router.Config {
	return router.Config{
		MaxMessageBytes: s.MaxMessageBytes,
		PingInterval:    s.PingInterval,
		FanOut:          s.FanOut,
		ItemTTL:         s.ItemTTL,
		CacheSize:       s.CacheSize,
		IdentifyTimeout: s.IdentifyTimeout,
		HandshakeGrace:  s.SweepHandshakeGrace,
		InlineFanOut:    s.InlineFanOut,
		BatchSize:       s.BatchSize,
		PostRate:        float64(s.PostRate),
		Logger:          log,
	}
}

// AuthorizerConfig returns the $connect authorizer configuration these
// settings describe.
func (s Settings) AuthorizerConfig() authorizer.Config {
	return authorizer.Config{CacheTTL: s.AuthCacheTTL, CacheSize: s.AuthCacheSize}
}

// DynamoDBClientConfig returns the DynamoDB client configuration these
// settings describe.
func (s Settings) DynamoDBClientConfig() dynamostore.ClientConfig {
	return dynamostore.ClientConfig{MaxAttempts: s.DynamoDBMaxAttempts}
}

// SweepConfig returns the sweeper configuration these settings describe.
func (s Settings) SweepConfig(log *slog.Logger) sweep.Config {
	return sweep.Config{
		PingInterval:    s.PingInterval,
		IdentifyTimeout: s.IdentifyTimeout,
		Concurrency:     s.SweepConcurrency,
		HandshakeGrace:  s.SweepHandshakeGrace,
		Logger:          log,
	}
}

// StoreConfig returns the DynamoDB store configuration these settings
// describe.
func (s Settings) StoreConfig() dynamostore.Config {
	return dynamostore.Config{Table: s.Table, Shards: s.Shards}
}

// SenderConfig returns the management API sender configuration for an
// endpoint: its idle pool fits the fan-out bound.
func (s Settings) SenderConfig(endpoint string) mgmtapi.Config {
	fan := s.FanOut
	if fan == 0 {
		fan = router.DefaultFanOut
	}
	return mgmtapi.Config{Endpoint: endpoint, MaxConns: fan, MaxAttempts: s.SendMaxAttempts}
}
