package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
)

// sweep invokes the sweeper through aws-lambda-go's handler machinery with
// a scheduled event, as EventBridge does, and returns its report.
func runSweep(t *testing.T, h any) sweep.Report {
	t.Helper()
	ev, err := os.ReadFile("../../testdata/eventbridge/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // the function's Timeout
	defer cancel()
	out, err := lambda.NewHandler(h).Invoke(ctx, ev)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	var r sweep.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("sweep answered %s: %v", out, err)
	}
	return r
}

func TestSweeper(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			putToken(t, store)
			m := newMgmtServer(t)
			h := newHandlers(t, store, m)
			sweeper := newHandlers(t, store, m) // a function of its own

			active, silent, gone := connect(t, h), connect(t, h), connect(t, h)
			for _, c := range []*client{active, silent, gone} {
				c.identify("bots")
			}
			// Connected 20 s ago and still anonymous: past the 10 s deadline.
			late := &client{t: t, h: h, id: "Late000000000AQ=", at: time.Now().Add(-20 * time.Second).Truncate(time.Millisecond)}
			if resp, err := invoke(t, h.Connect, event(t, "connect", late.id, late.at, "")); err != nil || resp.StatusCode != 200 {
				t.Fatalf("$connect: %+v, %v", resp, err)
			}
			m.mu.Lock()
			m.active[silent.id] = time.Now().Add(-31 * time.Second) // ping interval 15 s
			m.gone[gone.id] = true                                  // its $disconnect never came
			m.opened[late.id] = late.at
			m.mu.Unlock()

			r := runSweep(t, sweeper.Sweep)
			if want := (sweep.Report{Checked: 4, Gone: 1, Silent: 1, Anonymous: 1}); r != want {
				t.Fatalf("got report %+v, want %+v", r, want)
			}
			for c, wantCode := range map[*client]protocol.Code{silent: protocol.CodePingTimeout, late: protocol.CodeIdentifyFailed} {
				f := m.frames(t, c.id)
				var d protocol.ErrorData
				if len(f) != 1 || f[0].Op != protocol.OpDisconnect || json.Unmarshal(f[0].Data, &d) != nil || d.Code != wantCode {
					t.Errorf("%s was sent %+v, want one DISCONNECT %d", c.id, f, wantCode)
				}
			}
			for _, c := range []*client{silent, gone, late} {
				if _, err := store.Connection(t.Context(), c.id); !errors.Is(err, router.ErrNotFound) {
					t.Errorf("%s still stored after the sweep: %v", c.id, err)
				}
			}
			if _, err := store.ServiceConnection(t.Context(), gone.serviceID); !errors.Is(err, router.ErrNotFound) {
				t.Errorf("the gone service is still reachable: %v", err)
			}

			// The live member is still reached, and only it.
			m.reset()
			other := connect(t, h)
			other.identify("bots")
			other.send(`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"bots"}}`)
			m.mu.Lock()
			calls := slices.Clone(m.calls)
			m.mu.Unlock()
			if len(m.frames(t, active.id)) != 1 || len(calls) != 1 {
				t.Errorf("GROUP after the sweep made calls %v, want one POST to %s", calls, active.id)
			}
		})
	}
}

func TestSweeperNeedsTheManagementEndpoint(t *testing.T) {
	h, err := handler.New(handler.Backend{
		Store: memstore.New(),
		NewSender: func(endpoint string) (handler.Sender, error) {
			return mgmtapi.New(aws.Config{}, mgmtapi.Config{Endpoint: endpoint})
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Sweep(t.Context(), events.EventBridgeEvent{})
	if err == nil || !strings.Contains(err.Error(), "MANAGEMENT_ENDPOINT") {
		t.Fatalf("got %v, want an error naming MANAGEMENT_ENDPOINT", err)
	}
}

// The sweeper's policy in template.yaml grants exactly what it does on
// DynamoDB: every case of a sweep (gone, silent, anonymous, live) is run
// and each operation it makes must be granted, and each grant used.
func TestSweeperPolicyIsWhatItDoes(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	setup, err := dynamostore.New(db, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	rec := &countingAPI{API: db, calls: map[string]int{}}
	swept, err := dynamostore.New(rec, dynamostore.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	putToken(t, setup)
	m := newMgmtServer(t)
	h := newHandlers(t, setup, m)
	conns := []*client{connect(t, h), connect(t, h), connect(t, h)}
	conns[0].identify("a")
	conns[1].identify("a")
	late := &client{t: t, h: h, id: "Late000000000BQ=", at: time.Now().Add(-time.Minute).Truncate(time.Millisecond)}
	invoke(t, h.Connect, event(t, "connect", late.id, late.at, ""))
	m.mu.Lock()
	m.gone[conns[0].id] = true
	m.active[conns[1].id] = time.Now().Add(-time.Hour)
	m.opened[late.id] = late.at
	m.mu.Unlock()
	r := runSweep(t, newHandlers(t, swept, m).Sweep)
	if r.Gone != 1 || r.Silent != 1 || r.Anonymous != 1 || r.Failed != 0 {
		t.Fatalf("got report %+v, want one of each", r)
	}

	checkPolicyIsWhatItDoes(t, "SweeperFunction", rec)
}

// checkPolicyIsWhatItDoes compares the DynamoDB calls rec counted with the
// grants of function's policy in template.yaml: each call granted, each
// grant used.
func checkPolicyIsWhatItDoes(t *testing.T, function string, rec *countingAPI) {
	t.Helper()
	tmpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string]bool{}
	for _, p := range tmpl.Functions()[function].Policies {
		for _, st := range p.Statements {
			for _, a := range st.Action {
				for _, res := range st.Resource {
					switch {
					case !strings.HasPrefix(a, "dynamodb:"):
					case res == "getatt:Table.Arn":
						granted[a+" on table"] = true
					case strings.HasPrefix(res, "${Table.Arn}/index/"):
						granted[a+" on index/"+strings.TrimPrefix(res, "${Table.Arn}/index/")] = true
					default:
						t.Errorf("grant of %s on %s, which is neither the table nor one of its indexes", a, res)
					}
				}
			}
		}
	}
	var did, allowed []string
	for op := range rec.take() {
		if strings.Contains(op, " index/") {
			did = append(did, "dynamodb:"+strings.Replace(op, " index/", " on index/", 1))
		} else {
			did = append(did, "dynamodb:"+op+" on table")
		}
	}
	for op := range granted {
		allowed = append(allowed, op)
	}
	sort.Strings(did)
	sort.Strings(allowed)
	if !slices.Equal(did, allowed) {
		t.Errorf("%s did %v; its policy grants %v", function, did, allowed)
	}
}
