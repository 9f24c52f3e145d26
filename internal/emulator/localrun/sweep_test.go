package localrun_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// items counts the connections the run's store still knows.
func items(t *testing.T, s *localrun.Server) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	if err := s.Store().Connections(t.Context(), s.ManagementEndpoint(), func(page []router.Connection) error {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// The template's sweeper, run by the local gateway on a short schedule,
// closes a silent member with 4008 and a connection that never identified
// with 4004, and leaves a member that pings alone.
func TestSweeperEndToEnd(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			o := m.opts(t)
			o.Parameters = map[string]string{"PingIntervalMs": "1000", "IdentifyTimeoutSeconds": "1"}
			o.SweepEvery = 250 * time.Millisecond
			s := startLocal(t, o)
			pinger, silent := connectSvc(t, s, "pinger"), connectSvc(t, s, "silent")
			pinger.identify("g")
			silent.identify("g")
			anon := connectSvc(t, s, "anon")

			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
						pinger.c.Write(context.Background(), websocket.MessageText, []byte(`{"op":3}`))
					}
				}
			}()

			for _, c := range []struct {
				v    *svc
				code protocol.Code
			}{{anon, protocol.CodeIdentifyFailed}, {silent, protocol.CodePingTimeout}} {
				f := c.v.next() // within 10 s
				if f.Op != protocol.OpDisconnect || !strings.Contains(string(f.Data), `"code":`+itoa(int(c.code))) {
					t.Fatalf("%s: got %+v %s, want DISCONNECT %d", c.v.name, f, f.Data, c.code)
				}
				c.v.expectClosed(websocket.StatusNormalClosure)
			}
			// The pinger is still there, reachable, and alone in the store.
			other := connectSvc(t, s, "other")
			other.identify("g")
			other.send(`{"op":0,"event":"STILL","intent":{"target":"DIRECT","identifier":"` + pinger.id + `"}}`)
			for {
				if f := pinger.next(); f.Op == protocol.OpEvent {
					if f.Event != "STILL" {
						t.Fatalf("pinger got %+v", f)
					}
					break
				}
			}
			eventually(t, func() bool { return len(items(t, s)) == 2 })
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The token a local gateway stores expires unless the running gateway
// renews it, and is gone once the gateway stops.
func TestTheTokenIsLeasedAndRemovedOnStop(t *testing.T) {
	s := startLocal(t, localrun.Options{TokenLease: 400 * time.Millisecond})
	h := token.HashOf(e2eToken)
	tok, err := s.Store().Token(t.Context(), h)
	if err != nil || tok.ExpiresAt.IsZero() || time.Until(tok.ExpiresAt) > time.Second {
		t.Fatalf("stored token %+v, %v; want one expiring within the lease", tok, err)
	}
	time.Sleep(time.Second) // past the first expiry: renewed since
	v := connectSvc(t, s, "late")
	v.identify("g")
	s.Close()
	if _, err := s.Store().Token(context.Background(), h); !errors.Is(err, router.ErrNotFound) {
		t.Fatalf("after stop: token %v, want it removed", err)
	}
}

// On DynamoDB, a token an operator stored (given with --token) is used and
// kept; one a killed local gateway left behind (expired) is taken over and
// removed; one another running local gateway holds is used and left to it.
func TestTokensOfTheTableAreKept(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	st, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	operator, leftover, held := "mst_operator-made", "mst_left-by-a-killed-gateway", "mst_held-by-another-gateway"
	st.PutToken(t.Context(), token.Token{Hash: token.HashOf(operator), Name: "crawler", Groups: []string{"g"}, CreatedAt: now})
	st.PutToken(t.Context(), token.Token{Hash: token.HashOf(leftover), Name: "localgw", AllGroups: true, CreatedAt: now, ExpiresAt: now.Add(-time.Minute)})
	st.PutToken(t.Context(), token.Token{Hash: token.HashOf(held), Name: "localgw", AllGroups: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})

	for tok, keep := range map[string]bool{operator: true, leftover: false, held: true} {
		s, err := localrun.Start(t.Context(), localrun.Options{
			Addr: "127.0.0.1:0", Template: "../../../template.yaml", Token: tok, Logger: testLogger(),
			Store: localrun.StoreDynamoDB, DynamoDBEndpoint: dynamotest.Endpoint(t), Table: table,
			Parameters: map[string]string{"ConnectAuth": "off"}, // seed-style: IDENTIFY with the token
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Run(context.Background())
		v := connectSvc(t, s, "svc")
		v.identifyWith(tok, "g") // the leftover was expired: it works again, renewed
		s.Close()
		_, err = st.Token(t.Context(), token.HashOf(tok))
		if kept := err == nil; kept != keep {
			t.Errorf("token %s after stop: %v; want kept %v", tok, err, keep)
		}
	}
}

func TestDynamoDBWithoutAnEndpointIsRefusedUnlessAllowed(t *testing.T) {
	_, err := localrun.Start(t.Context(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Store: localrun.StoreDynamoDB, Logger: testLogger(),
	})
	if err == nil || !strings.Contains(err.Error(), "--allow-aws") || !strings.Contains(err.Error(), "--dynamodb-endpoint") {
		t.Fatalf("got %v, want a refusal that names --dynamodb-endpoint and --allow-aws", err)
	}
}

// Two gateways side by side build their bootstraps in folders of their
// own, and remove them when they stop.
func TestGatewaysSideBySideBuildApart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function twice")
	}
	tmpl := routeAdded(t)
	dir := t.TempDir()
	var servers []*localrun.Server
	for range 2 {
		s, err := localrun.Start(t.Context(), localrun.Options{
			Addr: "127.0.0.1:0", Template: tmpl, Token: e2eToken, BuildDir: dir, Logger: testLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Run(context.Background())
		servers = append(servers, s)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "run-*", "EchoFunction", "bootstrap"))
	if len(runs) != 2 {
		t.Fatalf("bootstraps %v, want one in each run's own folder", runs)
	}
	for _, s := range servers {
		s.Close()
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left in the build folder after both stopped: %v", left)
	}
}

func TestParameterOverridesReachTheFunctions(t *testing.T) {
	s := startLocal(t, localrun.Options{Parameters: map[string]string{"PingIntervalMs": "5000"}})
	v := connectSvc(t, s, "v")
	v.send(`{"op":1,"data":{"token":"` + e2eToken + `","group":"g"}}`)
	if f := v.next(); f.Op != protocol.OpIdentify || !strings.Contains(string(f.Data), `"ping":5000`) {
		t.Fatalf("got %+v %s, want the overridden ping interval 5000", f, f.Data)
	}
	if !strings.Contains(s.Summary, "SweeperFunction every 1m0s (rate(1 minute))") {
		t.Errorf("summary %q does not show the sweeper's schedule", s.Summary)
	}
}

// With --verbose, the local gateway logs bodies and events, never a token.
func TestVerboseLogsHoldNoToken(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startLocal(t, localrun.Options{Verbose: true, Logger: log})
	v := connectSvc(t, s, "v")
	v.identify("g")
	v.send(`{"op":0,"event":"LEAK","data":{"note":"my key is ` + e2eToken + `"},"intent":{"target":"GLOBAL"}}`)
	v.send(`{"op":0,"event":"ESCAPED","data":"\u006d` + strings.TrimPrefix(e2eToken, "m") + `","intent":{"target":"GLOBAL"}}`)
	v.send(`{"op":3}`)
	v.next()
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(buf.String(), e2eToken) || strings.Contains(buf.String(), strings.TrimPrefix(e2eToken, token.Prefix)) {
		t.Fatalf("the verbose log holds the token:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "LEAK") {
		t.Fatalf("the verbose log lacks the message bodies:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
