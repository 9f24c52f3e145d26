package router_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/router"
)

// slowSender is a gateway whose every call takes a fixed time.
type slowSender struct{ delay time.Duration }

func (s slowSender) Send(ctx context.Context, _ string, _ []byte) error {
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (slowSender) Close(context.Context, string) error { return nil }

// BenchmarkGroupFanOutSlowSender routes one GROUP message to 1,000 members
// through a sender whose every call takes 10 ms, for several fan-out bounds:
// the time per message should be about 1,000 × 10 ms / bound.
func BenchmarkGroupFanOutSlowSender(b *testing.B) {
	const members, delay = 1000, 10 * time.Millisecond
	for _, bound := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("bound=%d", bound), func(b *testing.B) {
			store := memstore.New()
			r, err := router.New(store, slowSender{delay}, router.Config{
				FanOut: bound, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			now := time.Now()
			join := func(connID, group string) {
				c := router.Connection{ID: connID, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := store.AddConnection(ctx, c); err != nil {
					b.Fatal(err)
				}
				c.Identity = &router.Identity{ServiceID: "svc-" + connID, Group: group, IdentifiedAt: now}
				if err := store.Identify(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			for i := range members {
				join(fmt.Sprintf("c%04d=", i), "g")
			}
			join("sender=", "other")
			req := router.Request{ConnectionID: "sender=", ConnectedAt: now,
				Body: []byte(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"g"}}`)}
			for b.Loop() {
				if _, err := r.Handle(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			ideal := time.Duration(members) * delay / time.Duration(bound)
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/msg")
			b.ReportMetric(float64(ideal.Milliseconds()), "ideal-ms/msg")
		})
	}
}
