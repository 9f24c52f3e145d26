package telemetry

import (
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
)

// DefaultNamespace is the CloudWatch namespace when none is configured.
const DefaultNamespace = "Mastersocket"

// Emitter writes records as CloudWatch embedded metric format documents,
// one JSON object per line, which CloudWatch Logs turns into metrics when
// Lambda writes them to the function's log: no API call, no agent. It is
// safe for concurrent use: each document is one Write.
type Emitter struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
}

// NewEmitter returns an Emitter writing to w (on Lambda, standard output)
// in namespace (DefaultNamespace when empty).
func NewEmitter(w io.Writer, namespace string) *Emitter {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Emitter{w: w, namespace: namespace, now: time.Now}
}

// Emit writes rec: one document with every metric it set, and one more for
// each ERROR code beyond the first (a document holds one value of each
// dimension). A record that set nothing writes nothing. A nil Emitter or
// record writes nothing.
func (e *Emitter) Emit(rec *Record) error {
	if e == nil || rec == nil {
		return nil
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	b := e.Append((*bp)[:0], rec)
	*bp = b
	if len(b) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.w.Write(b)
	return err
}

// buffers hold documents being written: one is about 1 KB.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Append appends rec's documents to b, each ending with a newline.
func (e *Emitter) Append(b []byte, rec *Record) []byte {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	ts := e.now().UnixMilli()
	var firstCode *codeCount
	if len(rec.codes) > 0 {
		firstCode = &rec.codes[0]
	}
	b = e.appendDoc(b, rec, ts, rec.set, firstCode)
	for i := 1; i < len(rec.codes); i++ {
		b = e.appendDoc(b, rec, ts, [numMetrics]bool{}, &rec.codes[i])
	}
	return b
}

// appendDoc appends one document: the metrics of set, and ErrorsSent for
// code when it is not nil.
func (e *Emitter) appendDoc(b []byte, rec *Record, ts int64, set [numMetrics]bool, code *codeCount) []byte {
	if code != nil {
		set[ErrorsSent] = true
	}
	if !slices.Contains(set[:], true) {
		return b
	}
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"CloudWatchMetrics":[`...)
	// One directive per dimension set, in the catalogue's order.
	var done [numMetrics]bool
	first := true
	for m := range numMetrics {
		if !set[m] || done[m] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"Namespace":`...)
		b = protocol.AppendString(b, e.namespace)
		b = append(b, `,"Dimensions":[[`...)
		for i, d := range Catalogue[m].Dimensions {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocol.AppendString(b, d)
		}
		b = append(b, `]],"Metrics":[`...)
		n := 0
		for o := m; o < numMetrics; o++ {
			if !set[o] || done[o] || !slices.Equal(Catalogue[o].Dimensions, Catalogue[m].Dimensions) {
				continue
			}
			done[o] = true
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = append(b, `{"Name":`...)
			b = protocol.AppendString(b, Catalogue[o].Name)
			b = append(b, `,"Unit":`...)
			b = protocol.AppendString(b, Catalogue[o].Unit)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)

	// The dimensions' values: CloudWatch drops a document with an empty
	// one.
	b = appendMember(b, DimStage, orNone(rec.stage))
	if set[Messages] {
		b = appendMember(b, DimOp, orNone(rec.op))
	}
	if set[Messages] || set[FanOutRecipients] {
		b = appendMember(b, DimTarget, orNone(rec.target))
	}
	if set[Identifies] {
		b = appendMember(b, DimOutcome, orNone(rec.outcome))
	}
	if code != nil {
		b = appendMember(b, DimCode, code.code)
	}
	// The values.
	for m := range numMetrics {
		if !set[m] {
			continue
		}
		v := rec.values[m]
		if m == ErrorsSent {
			v = float64(code.n)
		}
		b = append(b, ',')
		b = protocol.AppendString(b, Catalogue[m].Name)
		b = append(b, ':')
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	// The ids, which make the line findable in the logs; they are not
	// dimensions, so they cost no metric.
	for _, id := range rec.idsLocked() {
		if id.v != "" {
			b = appendMember(b, id.k, id.v)
		}
	}
	return append(b, "}\n"...)
}

func appendMember(b []byte, k, v string) []byte {
	b = append(b, ',')
	b = protocol.AppendString(b, k)
	b = append(b, ':')
	return protocol.AppendString(b, v)
}

func orNone(s string) string {
	if s == "" {
		return TargetNone
	}
	return s
}
