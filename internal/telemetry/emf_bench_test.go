package telemetry

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkRecordAndEmit is what metrics cost one invocation of the
// message function: its record made and carried in the context, what a
// PING or a GROUP message to ten members counts, and its document
// written. It reports the document's size (bytes/doc), which CloudWatch
// Logs bills as ingestion.
func BenchmarkRecordAndEmit(b *testing.B) {
	cases := []struct {
		name  string
		count func(*Record)
	}{
		{"PING", func(r *Record) {
			r.SetService("svc-sender")
			r.Message("PING", TargetNone, "")
		}},
		{"GROUP-10", func(r *Record) {
			r.SetService("svc-sender")
			r.Message("EVENT", "GROUP", "3f0c7b8e-5a2d-4c1e-9b7a-1d2e3f405162")
			r.Deliveries(10, 0, 0, 0, 0)
			r.FanOut("GROUP", 10, 2*time.Millisecond)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := NewEmitter(io.Discard, "Mastersocket/prod-stack")
			var size int
			b.ReportAllocs()
			for b.Loop() {
				rec := NewRecord("prod", "Z3l1dEhcoAMEbYA=", "Z3l1cfLJoAMCJ1A=")
				ctx := NewContext(context.Background(), rec)
				c.count(FromContext(ctx))
				if err := e.Emit(rec); err != nil {
					b.Fatal(err)
				}
			}
			rec := NewRecord("prod", "Z3l1dEhcoAMEbYA=", "Z3l1cfLJoAMCJ1A=")
			c.count(rec)
			size = len(e.Append(nil, rec))
			b.ReportMetric(float64(size), "bytes/doc")
		})
	}
}
