package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
)

func TestTheBackoffGrowsToItsMaximumWithJitter(t *testing.T) {
	o, err := Options{Token: "t", Group: "g"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b := o.Backoff
	if b.Min != 200*time.Millisecond || b.Max != 20*time.Second || b.Factor != 2 || b.Jitter != 0.5 || b.MaxAttempts != 0 {
		t.Fatalf("defaults: got %+v", b)
	}
	for _, tt := range []struct {
		attempt int
		base    time.Duration
	}{{1, 200 * time.Millisecond}, {2, 400 * time.Millisecond}, {5, 3200 * time.Millisecond}, {8, 20 * time.Second}, {1000, 20 * time.Second}} {
		for range 100 {
			if d := b.delay(tt.attempt); d < tt.base/2 || d > tt.base {
				t.Fatalf("attempt %d: delay %v, want %v to %v", tt.attempt, d, tt.base/2, tt.base)
			}
		}
	}
	b.Jitter = 1e-9
	if d := b.delay(3); d < 799*time.Millisecond {
		t.Errorf("with almost no jitter, attempt 3 waited %v, want 800ms", d)
	}
}

func TestOptionsHaveTheDocumentedDefaults(t *testing.T) {
	o, err := Options{Token: "t", Group: "g"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxMessageBytes != DefaultMaxMessageBytes || o.HandlerConcurrency != 1 || o.MaxPending != DefaultMaxPending ||
		o.PongTimeout != DefaultPongTimeout || o.ConnectTimeout != DefaultConnectTimeout || o.WriteTimeout != DefaultWriteTimeout ||
		o.Logger == nil || o.IdentifyAfterConnect {
		t.Errorf("got %+v", o)
	}
	for _, bad := range []Options{
		{Token: "t", Group: "g", MaxMessageBytes: -1},
		{Token: "t", Group: "g", HandlerConcurrency: -1},
		{Token: "t", Group: "g", PongTimeout: -time.Second},
		{Token: "t", Group: "g", Backoff: Backoff{Factor: 0.5}},
		{Token: "t", Group: strings.Repeat("g", 65)},
		{Group: "g"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: got no error", bad)
		}
	}
}

func TestCodesAndOpsMatchTheServers(t *testing.T) {
	for _, c := range []Code{CodeMessageTooBig, CodeUnknownError, CodeUnknownOp, CodeInvalidPayload, CodeUnauthorized,
		CodeIdentifyFailed, CodeAlreadyIdentified, CodeTargetNotFound, CodePingTimeout, CodeKicked} {
		if got, want := c.String(), protocol.Code(c).Reason(); got != want {
			t.Errorf("code %d: got %s, want the server's %s", int(c), got, want)
		}
		if got, want := (&ServerError{Code: c}).Fatal(), protocol.Code(c).Fatal(); got != want {
			t.Errorf("code %d: fatal %v, want %v", int(c), got, want)
		}
	}
	for op := OpEvent; op <= OpReceipt; op++ {
		if got, want := op.String(), protocol.Op(op).String(); got != want {
			t.Errorf("op %d: got %s, want the server's %s", int(op), got, want)
		}
	}
}

func TestLocalRefusalsAgreeWithTheServersParser(t *testing.T) {
	for _, tt := range []struct {
		name  string
		op    Op
		event string
		to    Intent
	}{
		{"a valid EVENT", OpEvent, "HI", Global()},
		{"a valid REPLY without event", OpReply, "", Direct("x")},
		{"an EVENT without event", OpEvent, "", Global()},
		{"an event of 128 characters", OpEvent, strings.Repeat("é", 128), Global()},
		{"an event of 129 characters", OpEvent, strings.Repeat("é", 129), Global()},
		{"a GROUP to a valid name", OpEvent, "HI", Group("a.b_c:d-E9")},
		{"a GROUP to a name with a space", OpEvent, "HI", Group("a b")},
		{"a GROUP to a name of 65 characters", OpEvent, "HI", Group(strings.Repeat("g", 65))},
		{"a GROUP to no one", OpEvent, "HI", Group("")},
		{"a DIRECT to no one", OpEvent, "HI", Direct("")},
		{"a DIRECT to an id of 129 characters", OpEvent, "HI", Direct(strings.Repeat("d", 129))},
		{"an unknown target", OpEvent, "HI", Intent{Target: "SOME"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			local := checkMessage(tt.op, "id1", tt.event, tt.to)
			to := tt.to
			b, err := json.Marshal(outFrame{Op: tt.op, ID: "id1", Event: tt.event, Intent: &to})
			if err != nil {
				t.Fatal(err)
			}
			_, perr := protocol.Parse(b)
			var pe *protocol.Error
			switch {
			case local == nil && perr != nil:
				t.Errorf("refused by the server (%v) but not locally", perr)
			case local != nil && perr == nil:
				t.Errorf("refused locally (%v) but not by the server", local)
			case local != nil && (!errors.As(perr, &pe) || int(pe.Code) != int(local.Code) || pe.ID != local.ID):
				t.Errorf("refused locally with %v (id %q), by the server with %v", local, local.ID, perr)
			}
		})
	}
}

func TestTheSizeCheckMeasuresWhatIsWritten(t *testing.T) {
	f, err := eventFrame("", "E", Global(), strings.Repeat("x", 100), false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(f)
	if _, err := encode(f, len(b)); err != nil {
		t.Errorf("a message of exactly the limit: %v", err)
	}
	_, err = encode(f, len(b)-1)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodeMessageTooBig || se.ID != f.ID {
		t.Errorf("a message one byte over: %v, want MESSAGE_TOO_BIG with its id", err)
	}
}

func TestDataIsEncodedAsJSONWithoutEscapingHTML(t *testing.T) {
	for _, tt := range []struct {
		data any
		want string
	}{
		{nil, ""},
		{json.RawMessage(`{"a": 1}`), `{"a": 1}`},
		{map[string]string{"q": "<a&b>"}, `{"q":"<a&b>"}`},
		{42, `42`},
	} {
		got, err := marshalData(tt.data)
		if err != nil || string(got) != tt.want {
			t.Errorf("%v: got %s, %v, want %s", tt.data, got, err, tt.want)
		}
	}
	if _, err := marshalData(json.RawMessage(`{`)); err == nil {
		t.Error("invalid raw JSON: got no error")
	}
	if _, err := marshalData(func() {}); err == nil {
		t.Error("a func: got no error")
	}
}

func TestTheQueueDropsPastItsBoundAndStops(t *testing.T) {
	q := newQueue[int](2)
	if !q.push(1) || !q.push(2) || q.push(3) {
		t.Fatal("want two pushes to pass and the third to fail")
	}
	if v, ok := q.pop(); !ok || v != 1 {
		t.Fatalf("pop: %d %v", v, ok)
	}
	q.close(true)
	if v, ok := q.pop(); !ok || v != 2 {
		t.Fatalf("a draining queue gives what it holds: %d %v", v, ok)
	}
	if _, ok := q.pop(); ok {
		t.Fatal("a closed, empty queue gives nothing")
	}
	if q.push(4) {
		t.Fatal("a closed queue takes nothing")
	}
}

// Lifecycle callbacks are queued past MaxPending, so that a burst of error
// reports never costs an OnConnect (a new service id unannounced) or the
// OnClose.
func TestLifecycleCallbacksAreNeverDropped(t *testing.T) {
	q := newQueue[int](1)
	if !q.push(1) || q.push(2) {
		t.Fatal("a bounded push went past the bound")
	}
	if !q.pushAlways(3) {
		t.Error("pushAlways refused an item on a full queue")
	}
	q.close(true)
	if q.pushAlways(4) {
		t.Error("pushAlways queued on a closed queue")
	}
	var got []int
	for v, ok := q.pop(); ok; v, ok = q.pop() {
		got = append(got, v)
	}
	if fmt.Sprint(got) != "[1 3]" {
		t.Errorf("got %v, want [1 3]", got)
	}
}
