package telemetry

import (
	"context"
	"sync"
	"time"
)

// Record is what one invocation has counted, and the ids its log lines
// carry. Its methods are safe for concurrent use (a fan-out counts from
// many goroutines) and do nothing on a nil *Record, so code that records
// needs no check: FromContext returns nil when no one listens.
type Record struct {
	mu sync.Mutex

	// Dimension values.
	stage, op, target, outcome string
	// codes are the codes of the ERROR frames sent, in order, with their
	// counts: one invocation mostly sends one.
	codes []codeCount

	// Ids for the logs.
	requestID, connectionID, serviceID, messageID string

	values [numMetrics]float64
	set    [numMetrics]bool
}

type codeCount struct {
	code string
	n    int
}

// NewRecord returns the record of an invocation on stage, for the API
// Gateway request requestID on connection connectionID (either may be "").
func NewRecord(stage, requestID, connectionID string) *Record {
	return &Record{stage: stage, requestID: requestID, connectionID: connectionID}
}

type recordKey struct{}

// NewContext returns ctx carrying rec.
func NewContext(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// FromContext returns the Record ctx carries, or nil.
func FromContext(ctx context.Context) *Record {
	rec, _ := ctx.Value(recordKey{}).(*Record)
	return rec
}

// Add adds v to metric m.
func (r *Record) Add(m Metric, v float64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.values[m] += v
	r.set[m] = true
	r.mu.Unlock()
}

// SetStage sets the stage, for records that learn it late (a fan-out
// batch names its gateway).
func (r *Record) SetStage(stage string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stage = stage
	r.mu.Unlock()
}

// Message records one message received: its op, its target (TargetNone
// when it has none) and its id, which the rest of the invocation's log
// lines carry.
func (r *Record) Message(op, target, messageID string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.op, r.target, r.messageID = op, target, messageID
	r.values[Messages]++
	r.set[Messages] = true
	r.mu.Unlock()
}

// SetMessageID sets the message id the log lines carry (an EVENT sent
// without one gets one once it has been read).
func (r *Record) SetMessageID(id string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.messageID = id
	r.mu.Unlock()
}

// SetService sets the service id of the connection, once known.
func (r *Record) SetService(serviceID string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.serviceID = serviceID
	r.mu.Unlock()
}

// Identify records how an IDENTIFY or a handshake's authentication ended
// (an Outcome constant).
func (r *Record) Identify(outcome string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.outcome = outcome
	r.values[Identifies]++
	r.set[Identifies] = true
	r.mu.Unlock()
}

// ErrorSent records an ERROR (or DISCONNECT) frame sent with code, the
// code's name (INVALID_PAYLOAD...).
func (r *Record) ErrorSent(code string) { r.AddErrors(code, 1) }

// AddErrors records n ERROR (or DISCONNECT) frames sent with code.
func (r *Record) AddErrors(code string, n int) {
	if r == nil || n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.codes {
		if r.codes[i].code == code {
			r.codes[i].n += n
			return
		}
	}
	r.codes = append(r.codes, codeCount{code, n})
}

// Deliveries records what became of the posts of one message or batch:
// every delivery metric is set, zeros included, so that a sum over time
// has data whenever messages flowed.
func (r *Record) Deliveries(delivered, gone, failed, throttled, queued int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	for _, c := range [...]struct {
		m Metric
		n int
	}{{Deliveries, delivered}, {DeliveriesGone, gone}, {DeliveriesFailed, failed},
		{DeliveriesThrottled, throttled}, {DeliveriesQueued, queued}} {
		r.values[c.m] += float64(c.n)
		r.set[c.m] = true
	}
	r.mu.Unlock()
}

// FanOut records the size and duration of a GROUP or GLOBAL message's
// fan-out (target GROUP or GLOBAL), or of a batch's (TargetBatch).
func (r *Record) FanOut(target string, recipients int, d time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.target == "" || r.target == TargetNone {
		r.target = target
	}
	r.values[FanOutRecipients] += float64(recipients)
	r.values[FanOutDuration] += float64(d) / float64(time.Millisecond)
	r.set[FanOutRecipients], r.set[FanOutDuration] = true, true
	r.mu.Unlock()
}

// logID is an id that log lines and metric documents carry, by its key.
type logID struct{ k, v string }

// idsLocked returns the record's ids; r.mu is held.
func (r *Record) idsLocked() [4]logID {
	return [...]logID{
		{LogRequestID, r.requestID}, {LogConnectionID, r.connectionID},
		{LogServiceID, r.serviceID}, {LogMessageID, r.messageID},
	}
}
