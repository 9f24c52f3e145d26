package localrun_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/localrun"
)

// BenchmarkLocalGatewayGroupFanOut holds 1,000 WebSocket connections on the
// local gateway (functions in process, memory store) and sends GROUP
// messages to all of them from one more connection, the next one as soon as
// every delivery of the one before has arrived. Each iteration is one message, that is
// 1,000 deliveries through PostToConnection; it reports deliveries per
// second and the p50/p99 latency from send to receipt.
func BenchmarkLocalGatewayGroupFanOut(b *testing.B) {
	const members, window = 1000, 1
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../template.yaml", Token: e2eToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	go s.Run(context.Background())
	defer s.Close()

	var (
		received  atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		progress  = make(chan struct{}, 1)
	)
	ctx := context.Background()
	dialIdentified := func(group string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, s.URL(), nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		c.Write(ctx, websocket.MessageText, []byte(`{"op":1,"data":{"token":"`+e2eToken+`","group":"`+group+`"}}`))
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		return c
	}
	conns := make([]*websocket.Conn, members)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			conns[i] = dialIdentified("bench")
		}()
	}
	wg.Wait()
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var local []time.Duration
			defer func() {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}()
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				if t := sentAt(msg); t > 0 {
					local = append(local, time.Duration(now-t))
				}
				received.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	sender := dialIdentified("senders")
	b.Logf("%d connections held", members+1)

	b.ResetTimer()
	cpuStart := cpuTime()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for received.Load() < int64(i-window+1)*members { // at most window messages in flight
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled at %d of %d deliveries", received.Load(), int64(i)*members)
			}
		}
		msg := `{"op":0,"event":"BENCH","data":{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `},"intent":{"target":"GROUP","identifier":"bench"}}`
		if err := sender.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * members
	for received.Load() < want {
		select {
		case <-progress:
		case <-time.After(10 * time.Second):
			b.Fatalf("stalled at %d of %d deliveries", received.Load(), want)
		}
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpuStart
	b.StopTimer()

	for _, c := range conns {
		c.CloseNow()
	}
	sender.CloseNow()
	readers.Wait() // every reader has handed in its latencies
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	rate := float64(want) / elapsed.Seconds()
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(float64(pct(0.50))/1e6, "p50-ms")
	b.ReportMetric(float64(pct(0.99))/1e6, "p99-ms")
	b.ReportMetric(float64(cpu)/float64(elapsed)/float64(runtime.NumCPU())*100, "cpu-%")
	b.Logf("%d deliveries to %d connections in %v: %.0f deliveries/s, p50 %v, p99 %v",
		want, members, elapsed.Round(time.Millisecond), rate, pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}

// sentAt reads the send time out of a delivered BENCH message's data
// {"t":<unix nanoseconds>} without decoding all of it: the clients share
// the gateway's two cores, and the benchmark measures the gateway.
func sentAt(msg []byte) int64 {
	i := bytes.Index(msg, []byte(`"data":{"t":`))
	if i < 0 {
		return 0
	}
	var t int64
	for _, c := range msg[i+len(`"data":{"t":`):] {
		if c < '0' || c > '9' {
			break
		}
		t = t*10 + int64(c-'0')
	}
	return t
}
