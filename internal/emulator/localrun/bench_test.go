package localrun_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// BenchmarkLocalGatewayGroupFanOut holds 1,000 WebSocket connections on the
// local gateway (functions in process, memory store) and sends GROUP
// messages to all of them from one more connection, the next one as soon as
// every delivery of the one before has arrived. Each iteration is one message, that is
// 1,000 deliveries through PostToConnection; it reports deliveries per
// second (deliveries/s), the latency from send to receipt (p50-ms, p99-ms,
// max-ms), the process's CPU use (cpu-%, of all cores) and its CPU time
// per delivery (cpu-us/delivery, clients included: the figure that other
// work on the machine disturbs least).
func BenchmarkLocalGatewayGroupFanOut(b *testing.B) {
	// `make run` serves the inspector page unless --inspector=false; the
	// page need not be open for it to record the traffic.
	b.Run("inspector=off", func(b *testing.B) { benchGroupFanOut(b, false) })
	b.Run("inspector=on", func(b *testing.B) { benchGroupFanOut(b, true) })
}

func benchGroupFanOut(b *testing.B, inspector bool) {
	const members, window = 1000, 1
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Token: e2eToken,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Inspector: inspector,
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
	// In the template's default mode the handshake identifies the
	// connection; the answer to "who am I" marks it ready.
	dialIdentified := func(group string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, s.URL()+"?group="+group, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + e2eToken}},
		})
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		c.Write(ctx, websocket.MessageText, []byte(`{"op":1}`))
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
	b.ReportMetric(float64(pct(1))/1e6, "max-ms")
	b.ReportMetric(float64(cpu)/float64(elapsed)/float64(runtime.NumCPU())*100, "cpu-%")
	b.ReportMetric(float64(cpu)/1e3/float64(want), "cpu-us/delivery")
	b.Logf("%d deliveries to %d connections in %v: %.0f deliveries/s, p50 %v, p99 %v, max %v; %.1f µs of CPU per delivery",
		want, members, elapsed.Round(time.Millisecond), rate, pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
		pct(1).Round(time.Microsecond), float64(cpu)/1e3/float64(want))
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

// tokenReads counts the token lookups that reach the store of the
// in-process functions (the authorizer's reads of the table).
type tokenReads struct {
	handler.Store
	n *atomic.Int64
}

func (s tokenReads) Token(ctx context.Context, h token.Hash) (token.Token, error) {
	s.n.Add(1)
	return s.Store.Token(ctx, h)
}

// BenchmarkReconnectStorm connects 1,000 clients with one token at once
// through the local gateway in the template's default mode (the $connect
// authorizer on, functions in process, memory store), then drops them all
// and has them reconnect at once, b.N times. Each iteration is one storm of
// 1,000 handshakes, timed from the first dial to the last handshake done;
// it reports the storm's duration, and the authorizer invocations and
// token reads of the table it cost (API Gateway does not cache WebSocket
// authorizer results, so every handshake invokes the authorizer; its own
// warm cache saves the reads).
//
// It runs with the authorizer's cache as deployed (AUTH_CACHE_SECONDS 30)
// and with the cache off, to show what the cache saves.
func BenchmarkReconnectStorm(b *testing.B) {
	for _, tt := range []struct{ name, cacheSeconds string }{{"cache-30s", "30"}, {"cache-off", "0"}} {
		b.Run(tt.name, func(b *testing.B) { reconnectStorm(b, tt.cacheSeconds) })
	}
}

func reconnectStorm(b *testing.B, cacheSeconds string) {
	const clients = 1000
	var reads atomic.Int64
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Token: e2eToken,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		WrapStore:   func(st handler.Store) handler.Store { return tokenReads{st, &reads} },
		Environment: map[string]string{"AUTH_CACHE_SECONDS": cacheSeconds},
	})
	if err != nil {
		b.Fatal(err)
	}
	go s.Run(context.Background())
	defer s.Close()
	ctx := context.Background()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e2eToken}}}
	url := s.URL() + "?group=storm"

	var storms []time.Duration
	var invocations, tableReads int64
	for range b.N {
		inv0, reads0 := s.Stats().Invocations["AuthorizerFunction"], reads.Load()
		conns := make([]*websocket.Conn, clients)
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range conns {
			wg.Go(func() {
				c, _, err := websocket.Dial(ctx, url, opts)
				conns[i] = c
				errs <- err
			})
		}
		wg.Wait()
		storms = append(storms, time.Since(start))
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatalf("a handshake of the storm failed: %v", err)
			}
		}
		invocations += s.Stats().Invocations["AuthorizerFunction"] - inv0
		tableReads += reads.Load() - reads0
		b.StopTimer()
		for _, c := range conns {
			c.CloseNow()
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			var n int
			s.Store().Connections(ctx, s.ManagementEndpoint(), func(page []router.Connection) error { n += len(page); return nil })
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d connections still recorded 30 s after the storm's clients left", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
	}
	slices.Sort(storms)
	median := storms[len(storms)/2]
	b.ReportMetric(float64(median)/1e6, "ms/storm")
	b.ReportMetric(clients/median.Seconds(), "handshakes/s")
	b.ReportMetric(float64(invocations)/float64(b.N), "authorizer-invocations/storm")
	b.ReportMetric(float64(tableReads)/float64(b.N), "token-reads/storm")
	b.Logf("%d storms of %d handshakes with one token: median %v (all: %v); %d authorizer invocations, %d token reads of the table in all",
		b.N, clients, median.Round(time.Millisecond), storms, invocations, tableReads)
}
