// Package telemetry holds what each invocation of the functions tells the
// people who run them: its metrics, written as one line of CloudWatch's
// embedded metric format (EMF) at the end of the invocation, and the ids
// that every log line of the invocation carries (the API Gateway request
// id, the connection id, the service id once known, the message id).
//
// An invocation's Record travels in its context: the handler starts it,
// the router adds to it (Add, SetMessage...) and the handler writes it
// out. Nothing here knows AWS beyond the shape of an EMF line, and a
// context without a Record records nothing, so the router runs the same
// with or without it.
package telemetry

// Metric identifies one metric of the Catalogue.
type Metric int

// The metrics, in the order of the Catalogue.
const (
	ConnectionsOpened Metric = iota
	ConnectionsClosed
	Identifies
	Messages
	Deliveries
	DeliveriesGone
	DeliveriesFailed
	DeliveriesThrottled
	DeliveriesQueued
	FanOutRecipients
	FanOutDuration
	ErrorsSent
	ConnectionsLive
	ConnectionsSwept
	numMetrics
)

// Dimension names. Values are bounded sets (see each Metric's Doc), so
// that the number of metrics, which CloudWatch bills, stays small.
const (
	// DimStage is the API Gateway stage.
	DimStage = "Stage"
	// DimOp is a message's op: EVENT, REPLY, IDENTIFY, PING, PONG,
	// DISCONNECT, or INVALID for a message that could not be read.
	DimOp = "Op"
	// DimTarget is an EVENT's target: GLOBAL, GROUP or DIRECT; DIRECT for
	// a REPLY; NONE for other ops; BATCH for the fan-out function.
	DimTarget = "Target"
	// DimOutcome is how an IDENTIFY or a handshake's authentication
	// ended: ok, or the reason it failed (see the Outcome constants).
	DimOutcome = "Outcome"
	// DimCode is the code of an ERROR frame (PROTOCOL.md's codes).
	DimCode = "Code"
)

// Units, as CloudWatch names them.
const (
	UnitCount        = "Count"
	UnitMilliseconds = "Milliseconds"
)

// Values of DimTarget that are not a protocol target.
const (
	TargetNone  = "NONE"
	TargetBatch = "BATCH"
)

// OpInvalid is the DimOp of a message that could not be read.
const OpInvalid = "INVALID"

// Outcomes of an IDENTIFY or of the $connect authorizer (DimOutcome).
const (
	OutcomeOK                = "ok"
	OutcomeInvalidToken      = "invalid_token"
	OutcomeExpiredToken      = "expired_token"
	OutcomeGroupNotAllowed   = "group_not_allowed"
	OutcomeLate              = "late"
	OutcomeMalformed         = "malformed"
	OutcomeNotRegistered     = "not_registered"
	OutcomeAlreadyIdentified = "already_identified"
	OutcomeNoToken           = "no_token"
	OutcomeBadGroup          = "bad_group"
	OutcomeError             = "error"
)

// Definition describes one metric as CloudWatch sees it.
type Definition struct {
	Name       string
	Unit       string
	Dimensions []string
	// Function names the functions that emit it.
	Functions []string
	// Doc says what one value counts.
	Doc string
}

// Catalogue is every metric the functions emit, indexed by Metric.
var Catalogue = [numMetrics]Definition{
	ConnectionsOpened: {"ConnectionsOpened", UnitCount, []string{DimStage}, []string{"connect"},
		"connections recorded by $connect"},
	ConnectionsClosed: {"ConnectionsClosed", UnitCount, []string{DimStage}, []string{"disconnect"},
		"connections forgotten by $disconnect"},
	Identifies: {"Identifies", UnitCount, []string{DimStage, DimOutcome}, []string{"message", "authorizer"},
		"IDENTIFY messages with a token, and handshakes the $connect authorizer decided, by outcome"},
	Messages: {"Messages", UnitCount, []string{DimStage, DimOp, DimTarget}, []string{"message"},
		"messages received on $default, by op and target"},
	Deliveries: {"Deliveries", UnitCount, []string{DimStage}, []string{"message", "fanout"},
		"frames posted to a recipient and accepted by the gateway"},
	DeliveriesGone: {"DeliveriesGone", UnitCount, []string{DimStage}, []string{"message", "fanout"},
		"posts to a recipient the gateway reported gone (410)"},
	DeliveriesFailed: {"DeliveriesFailed", UnitCount, []string{DimStage}, []string{"message", "fanout"},
		"recipients a frame could not be posted to (an error, a timeout, or throttled past every attempt)"},
	DeliveriesThrottled: {"DeliveriesThrottled", UnitCount, []string{DimStage}, []string{"message", "fanout"},
		"posts the management API throttled (429) past the sender's retries; they are handed on or fail"},
	DeliveriesQueued: {"DeliveriesQueued", UnitCount, []string{DimStage}, []string{"message", "fanout"},
		"recipients handed on to the fan-out function"},
	FanOutRecipients: {"FanOutRecipients", UnitCount, []string{DimStage, DimTarget}, []string{"message", "fanout"},
		"recipients of one GROUP or GLOBAL message, or of one batch (BATCH)"},
	FanOutDuration: {"FanOutDuration", UnitMilliseconds, []string{DimStage, DimTarget}, []string{"message", "fanout"},
		"time from a GROUP or GLOBAL message's first post (or a batch's) to its invocation's last"},
	ErrorsSent: {"ErrorsSent", UnitCount, []string{DimStage, DimCode}, []string{"message", "sweeper"},
		"ERROR frames sent to a connection, by code"},
	ConnectionsLive: {"ConnectionsLive", UnitCount, []string{DimStage}, []string{"sweeper"},
		"connections open and identified or within their IDENTIFY time after a whole sweep (one value per sweep)"},
	ConnectionsSwept: {"ConnectionsSwept", UnitCount, []string{DimStage}, []string{"sweeper"},
		"connections the sweeper closed (silent, or anonymous too long) or forgot (gone)"},
}

// Name returns the metric's CloudWatch name.
func (m Metric) Name() string { return Catalogue[m].Name }
