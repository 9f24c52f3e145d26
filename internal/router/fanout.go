package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// Dispatcher hands a share of a fan-out to another invocation, which
// delivers it with DeliverBatch: on AWS, an asynchronous invocation of the
// fan-out function. Dispatch returns once the batch is accepted; an error
// means it was not, and the caller delivers those recipients itself.
type Dispatcher interface {
	Dispatch(ctx context.Context, b Batch) error
}

// Batch is a share of the recipients of one GROUP or GLOBAL message, for
// another invocation to deliver. Encode makes its JSON payload;
// encoding/json decodes it.
type Batch struct {
	// Gateway is the management endpoint the frame is posted through:
	// the Config.Gateway of the router that made the batch.
	Gateway string `json:"gateway"`
	// ID is the message's id, for the logs.
	ID string `json:"id,omitempty"`
	// Frame is the delivery frame, exactly as every recipient receives it.
	Frame json.RawMessage `json:"frame"`
	// To are the recipients' connection ids.
	To []string `json:"to"`
	// Rate is the posts per second this batch may make: its share of
	// Config.PostRate. Zero: as fast as Config.FanOut allows.
	Rate float64 `json:"rate,omitempty"`
	// Attempt is 1 for a batch of a message, and one more each time a
	// batch hands its undelivered remainder on.
	Attempt int `json:"attempt"`
}

// Encode returns the batch's JSON with the frame's bytes as they are:
// json.Marshal would compact them and escape HTML characters, and a
// recipient of a batch must receive what an inline recipient does.
// json.Unmarshal keeps them as they are.
func (b Batch) Encode() ([]byte, error) {
	if !json.Valid(b.Frame) {
		return nil, errors.New("batch: frame is not JSON")
	}
	out := make([]byte, 0, b.encodedSize())
	out = append(out, `{"gateway":`...)
	out = strconv.AppendQuote(out, b.Gateway)
	if b.ID != "" {
		out = append(out, `,"id":`...)
		out = strconv.AppendQuote(out, b.ID)
	}
	out = append(out, `,"frame":`...)
	out = append(out, b.Frame...)
	out = append(out, `,"to":[`...)
	for i, id := range b.To {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, id)
	}
	out = append(out, ']')
	if b.Rate > 0 {
		out = append(out, `,"rate":`...)
		out = strconv.AppendFloat(out, b.Rate, 'f', -1, 64)
	}
	out = append(out, `,"attempt":`...)
	out = strconv.AppendInt(out, int64(b.Attempt), 10)
	return append(out, '}'), nil
}

// batchOverhead bounds the bytes of a batch's JSON beside its frame, its
// gateway, its id and its recipients.
const batchOverhead = 96

// encodedSize is about the size of the batch's JSON (ids with no
// characters to escape, as connection ids are).
func (b Batch) encodedSize() int {
	n := batchOverhead + len(b.Frame) + len(b.Gateway) + len(b.ID)
	for _, id := range b.To {
		n += len(id) + 3
	}
	return n
}

// validBatch checks a batch that another invocation made.
func validBatch(b Batch) error {
	switch {
	case len(b.To) == 0:
		return errors.New("batch: no recipients")
	case len(b.Frame) == 0 || !json.Valid(b.Frame):
		return errors.New("batch: the frame is missing or not JSON")
	case len(b.Frame) > MaxDeliveryBytes:
		return fmt.Errorf("batch: frame of %d bytes is over %d", len(b.Frame), MaxDeliveryBytes)
	case b.Rate < 0:
		return fmt.Errorf("batch: rate %v is negative", b.Rate)
	case b.Attempt < 1:
		return fmt.Errorf("batch: attempt %d, want at least 1", b.Attempt)
	}
	return nil
}

// BatchReport says what became of a batch: its receipt, and how many of
// its recipients were handed on to a new batch because this invocation
// ran out of time or was throttled past its retries.
type BatchReport struct {
	protocol.Receipt
	HandedOn int `json:"handedOn"`
}

// fanOut delivers frame to every member that list yields, except the
// sender. This invocation delivers to the first InlineFanOut recipients
// itself, at most cfg.FanOut at a time, starting while the members are
// still being listed; with a Dispatcher, the rest go in batches to other
// invocations once the listing is done. Gone recipients are removed.
// Delivery is at most once: failures are logged, and fanOut returns an
// error only when listing the members failed or every delivery failed.
// The receipt counts the inline deliveries, and the recipients handed on
// as Queued.
func (r *Router) fanOut(ctx context.Context, from, msgID string, frame []byte, list func(func([]Member) error) error) (protocol.Receipt, error) {
	d := r.newDeliveries(ctx, frame, 0)
	dispatching := r.cfg.Dispatcher != nil
	listErr := list(func(page []Member) error {
		for _, mem := range page {
			if mem.ConnectionID == from {
				continue
			}
			if dispatching && d.keepForDispatch(mem.ConnectionID) {
				continue
			}
			if !d.add(mem) {
				return ctx.Err()
			}
		}
		return nil
	})
	var queued int
	if rest := d.rest; len(rest) > 0 { // list has returned: no page is being read
		var undispatched []string
		queued, undispatched = r.dispatch(ctx, msgID, frame, rest)
		for i, id := range undispatched {
			if !d.add(Member{ConnectionID: id}) {
				// Out of time: not posted to, and counted as failed.
				for _, id := range undispatched[i:] {
					d.count(Member{ConnectionID: id}, ctx.Err())
				}
				break
			}
		}
	}
	receipt, firstErr := d.wait()
	receipt.Queued = queued
	telemetry.FromContext(ctx).Deliveries(receipt.Delivered, receipt.Gone, receipt.Failed, d.throttled, queued)
	recipients := receipt.Delivered + receipt.Gone + receipt.Failed
	if r.log.Enabled(ctx, slog.LevelDebug) { // its arguments would allocate, logged or not
		r.log.DebugContext(ctx, "fan-out done", "recipients", recipients, "gone", receipt.Gone, "failed", receipt.Failed, "queued", queued)
	}
	if receipt.Failed > 0 {
		r.log.WarnContext(ctx, "deliveries failed", "failed", receipt.Failed, "recipients", recipients, "err", firstErr)
		if receipt.Failed == recipients && queued == 0 && listErr == nil {
			return receipt, &deliveriesFailed{fmt.Errorf("all %d deliveries failed: %w", receipt.Failed, firstErr)}
		}
	}
	if listErr != nil {
		return receipt, fmt.Errorf("list recipients: %w", listErr)
	}
	return receipt, nil
}

// dispatchConcurrency bounds the Dispatch calls of one message in flight.
const dispatchConcurrency = 16

// dispatch hands recipients to the Dispatcher in batches of at most
// BatchSize recipients and BatchBytes of JSON, which share PostRate. It
// returns how many recipients were handed on, and those whose batch the
// Dispatcher refused.
func (r *Router) dispatch(ctx context.Context, msgID string, frame []byte, to []string) (queued int, refused []string) {
	batches := r.split(Batch{Gateway: r.cfg.Gateway, ID: msgID, Frame: frame, Attempt: 1}, to)
	rate := r.cfg.PostRate / float64(len(batches))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, dispatchConcurrency)
	)
	for _, b := range batches {
		b.Rate = rate
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := r.cfg.Dispatcher.Dispatch(ctx, b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.log.WarnContext(ctx, "a fan-out batch was not accepted: delivering it here", "recipients", len(b.To), "err", err)
				refused = append(refused, b.To...)
				return
			}
			queued += len(b.To)
		}()
	}
	wg.Wait()
	r.log.InfoContext(ctx, "fan-out handed on", "batches", len(batches), "recipients", queued, "rate", rate)
	return queued, refused
}

// assumedPostTime is how long a post may take from Lambda (a round trip to
// the @connections API, about 20 ms), for sizing batches: a batch with
// cfg.FanOut posts in flight makes at most FanOut/assumedPostTime posts per
// second. Twice the usual time leaves room for slow answers.
const assumedPostTime = 40 * time.Millisecond

// split cuts to into batches like proto, as even as can be, each within
// BatchSize recipients and BatchBytes of JSON (one recipient at least),
// and enough of them that their FanOut posts in flight can make PostRate:
// at 64 in flight and 40 ms a post, 10,000 posts/s takes 7 batches.
func (r *Router) split(proto Batch, to []string) []Batch {
	k := max(ceilDiv(len(to), r.cfg.BatchSize),
		int(math.Ceil(r.cfg.PostRate*assumedPostTime.Seconds()/float64(r.cfg.FanOut))))
	per := ceilDiv(len(to), min(k, len(to)))
	var out []Batch
	base := proto.encodedSize()
	for len(to) > 0 {
		n, size := 0, base
		for n < len(to) && n < per {
			if n > 0 && size+len(to[n])+3 > r.cfg.BatchBytes {
				break
			}
			size += len(to[n]) + 3
			n++
		}
		b := proto
		b.To = to[:n:n]
		out = append(out, b)
		to = to[n:]
	}
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// DeliverBatch delivers a batch that another invocation handed on (see
// Dispatcher), at most cfg.FanOut posts at a time and no faster than the
// batch's rate. Gone recipients are removed. Recipients it could not post
// to before ctx ends, or that the gateway throttled past the sender's
// retries, are handed on in a new batch (Attempt one more) while Attempt is
// below MaxBatchAttempts; otherwise they count as failed. It returns an
// error only for a batch it cannot deliver at all: malformed, or made for
// another gateway.
func (r *Router) DeliverBatch(ctx context.Context, b Batch) (BatchReport, error) {
	if err := validBatch(b); err != nil {
		return BatchReport{}, err
	}
	if b.Gateway != r.cfg.Gateway {
		return BatchReport{}, fmt.Errorf("batch: for gateway %q, this router serves %q", b.Gateway, r.cfg.Gateway)
	}
	start := time.Now()
	d := r.newDeliveries(ctx, b.Frame, b.Rate)
	d.keepUndelivered = true
	for i, id := range b.To {
		if !d.add(Member{ConnectionID: id}) {
			d.handOn(b.To[i:]...)
			break
		}
	}
	receipt, firstErr := d.wait()
	rep := BatchReport{Receipt: receipt}
	if rest := d.undelivered; len(rest) > 0 {
		handedOn := false
		if r.cfg.Dispatcher != nil && b.Attempt < r.cfg.MaxBatchAttempts {
			// ctx may be over: the hand-on gets a moment of its own.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handOnTimeout)
			next := b
			next.To, next.Attempt = rest, b.Attempt+1
			err := r.cfg.Dispatcher.Dispatch(hctx, next)
			cancel()
			if err == nil {
				handedOn = true
			} else {
				r.log.ErrorContext(ctx, "handing on the rest of a batch failed", "recipients", len(rest), "err", err)
			}
		}
		if handedOn {
			rep.HandedOn = len(rest)
		} else {
			rep.Failed += len(rest)
		}
	}
	rec := telemetry.FromContext(ctx)
	rec.Deliveries(rep.Delivered, rep.Gone, rep.Failed, d.throttled, rep.HandedOn)
	rec.FanOut(telemetry.TargetBatch, len(b.To), time.Since(start))
	if rep.Failed > 0 {
		r.log.WarnContext(ctx, "batch deliveries failed", "failed", rep.Failed, "recipients", len(b.To), "attempt", b.Attempt, "err", firstErr)
	}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.DebugContext(ctx, "batch done", "recipients", len(b.To), "delivered", rep.Delivered, "gone", rep.Gone,
			"failed", rep.Failed, "handedOn", rep.HandedOn, "attempt", b.Attempt)
	}
	return rep, nil
}

// handOnTimeout bounds the Dispatch of a batch's remainder.
const handOnTimeout = 5 * time.Second

// deliveries posts one frame to recipients added one at a time, with at
// most cfg.FanOut posts in flight, on the router's workers.
type deliveries struct {
	r     *Router
	ctx   context.Context
	frame []byte
	// slots holds a token per post in flight: at most cfg.FanOut.
	slots chan struct{}
	wg    sync.WaitGroup // one per post

	// rate > 0 paces the posts: the n-th starts no sooner than start + n/rate.
	rate  float64
	start time.Time
	n     atomic.Int64

	// keepUndelivered collects in undelivered, instead of counting them
	// failed, the recipients not posted to before ctx ended and those
	// throttled past the sender's retries: posting to them again cannot
	// deliver twice. A post that ctx cut short may have been delivered,
	// and counts as failed.
	keepUndelivered bool

	mu                      sync.Mutex
	delivered, gone, failed int
	// throttled counts the posts refused with ErrThrottled, whether
	// handed on or failed.
	throttled   int
	firstErr    error
	undelivered []string
	// inline and rest are fanOut's: the recipients it posts to itself,
	// and those it keeps for the Dispatcher.
	inline int
	rest   []string
}

func (r *Router) newDeliveries(ctx context.Context, frame []byte, rate float64) *deliveries {
	return &deliveries{r: r, ctx: ctx, frame: frame, slots: make(chan struct{}, r.cfg.FanOut), rate: rate, start: time.Now()}
}

// keepForDispatch reports whether fanOut has InlineFanOut recipients to
// post to already, and then keeps connID in rest; otherwise it counts one
// more inline recipient.
func (d *deliveries) keepForDispatch(connID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inline < d.r.cfg.InlineFanOut {
		d.inline++
		return false
	}
	d.rest = append(d.rest, connID)
	return true
}

// add hands m to a worker once fewer than cfg.FanOut of these posts are in
// flight, waiting for one to end if need be. It returns false, having not
// taken m, once ctx has ended while it waited.
func (d *deliveries) add(m Member) bool {
	select {
	case d.slots <- struct{}{}:
	default:
		select {
		case d.slots <- struct{}{}:
		case <-d.ctx.Done():
			return false
		}
	}
	d.wg.Add(1)
	d.r.workers.post(post{d: d, to: m})
	return true
}

// wait returns once every added recipient has been posted to, with their
// receipt and the first error of a failed post. No add may follow.
func (d *deliveries) wait() (protocol.Receipt, error) {
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return protocol.Receipt{Delivered: d.delivered, Gone: d.gone, Failed: d.failed}, d.firstErr
}

// post is one post for a worker to make: a recipient of a fan-out. The
// zero post ends a worker.
type post struct {
	d  *deliveries
	to Member
}

// workerIdle is how long the workers of a router wait for posts before
// they end: they serve message after message of a busy gateway, and a
// router left alone keeps no goroutine for long (at most twice that).
const workerIdle = time.Second

// workers are the goroutines that make the posts of a router's fan-outs.
// They outlive fan-outs, waiting on idle for the next post, so that a post
// seldom needs a goroutine of its own, with its stack to grow (the SDK's
// call stack is deep), its start and its end. A waiting worker costs no
// timer: the reaper ends the waiting workers once the router has made no
// post for a while (workerIdle).
type workers struct {
	idle     chan post    // unbuffered: a send succeeds when a worker waits
	posts    atomic.Int64 // posts handed to workers, for the reaper
	waiting  atomic.Int32 // workers waiting on idle
	idleTime time.Duration

	mu     sync.Mutex
	n      int         // workers running
	reaper *time.Timer // runs reap while n > 0
	seen   int64       // posts at reap's last look
}

func newWorkers(idle time.Duration) *workers {
	return &workers{idle: make(chan post), idleTime: idle}
}

// post hands p to a waiting worker, or starts a worker.
func (w *workers) post(p post) {
	w.posts.Add(1)
	select {
	case w.idle <- p:
		return
	default:
	}
	w.mu.Lock()
	if w.n++; w.n == 1 {
		if w.reaper == nil {
			w.reaper = time.AfterFunc(w.idleTime, w.reap)
		} else {
			w.reaper.Reset(w.idleTime)
		}
	}
	w.mu.Unlock()
	go w.work(p)
}

// work makes post p, then the posts that reach it through idle, until the
// reaper sends it the zero post.
func (w *workers) work(p post) {
	for p.d != nil {
		p.d.deliver(p.to)
		<-p.d.slots
		p.d.wg.Done()
		p = post{} // a waiting worker holds on to no fan-out, nor its frame
		w.waiting.Add(1)
		p = <-w.idle
		w.waiting.Add(-1)
	}
	w.mu.Lock()
	w.n--
	w.mu.Unlock()
}

// reap ends the waiting workers once no post has been made since its last
// look, idleTime ago, and looks again later while workers run.
func (w *workers) reap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if posts := w.posts.Load(); posts != w.seen {
		w.seen = posts
		w.reaper.Reset(w.idleTime)
		return
	}
	for waiting := true; waiting; {
		select {
		case w.idle <- post{}:
		default:
			waiting = false
		}
	}
	if w.n > 0 { // busy ones, or ending ones still counted
		w.reaper.Reset(w.idleTime)
	}
}

// running returns the number of workers running.
func (w *workers) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (d *deliveries) deliver(to Member) {
	defer func() {
		if p := recover(); p != nil {
			d.count(to, fmt.Errorf("panic delivering to %s: %v", to.ConnectionID, p))
		}
	}()
	if d.rate > 0 {
		n := d.n.Add(1) - 1
		at := d.start.Add(time.Duration(float64(n) / d.rate * float64(time.Second)))
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.ctx.Done():
				t.Stop()
			}
		}
	}
	if d.keepUndelivered && d.ctx.Err() != nil {
		d.handOn(to.ConnectionID) // never posted to: another invocation may
		return
	}
	err := d.r.sender.Send(d.ctx, to.ConnectionID, d.frame)
	if errors.Is(err, ErrGone) {
		d.r.forgetGone(d.ctx, to.ConnectionID, to.ServiceID)
	}
	d.count(to, err)
}

// handOn keeps recipients for another invocation.
func (d *deliveries) handOn(ids ...string) {
	d.mu.Lock()
	d.undelivered = append(d.undelivered, ids...)
	d.mu.Unlock()
}

// count records what became of one post.
func (d *deliveries) count(to Member, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if errors.Is(err, ErrThrottled) {
		d.throttled++
	}
	switch {
	case err == nil:
		d.delivered++
	case errors.Is(err, ErrGone):
		d.gone++
	case d.keepUndelivered && errors.Is(err, ErrThrottled):
		// Refused before delivery: posting again cannot duplicate it.
		d.undelivered = append(d.undelivered, to.ConnectionID)
	default:
		d.failed++
		if d.firstErr == nil {
			d.firstErr = err
		}
	}
}
