package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

// observations records what a gateway reports.
type observations struct {
	mu   sync.Mutex
	seen []gateway.Observation
}

func (o *observations) Observe(ob gateway.Observation) {
	ob.Body = append([]byte(nil), ob.Body...) // the gateway's: copied
	o.mu.Lock()
	o.seen = append(o.seen, ob)
	o.mu.Unlock()
}

// wait returns the first observation of kind on conn that match accepts.
func (o *observations) wait(t *testing.T, kind gateway.ObservationKind, conn string, match func(gateway.Observation) bool) gateway.Observation {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		for _, ob := range o.seen {
			if ob.Kind == kind && (conn == "" || ob.ConnectionID == conn) && (match == nil || match(ob)) {
				o.mu.Unlock()
				return ob
			}
		}
		o.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no observation of kind %d on %q", kind, conn)
	return gateway.Observation{}
}

func TestTheObserverSeesConnectionsMessagesFramesAndDeletes(t *testing.T) {
	obs := &observations{}
	funcs := standardFuncs()
	funcs["Fail"] = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{}, errors.New("boom")
	}
	routes := append(standardRoutes(), gateway.Route{Key: "fail", Function: "Fail"})
	gw := start(t, gateway.Config{Invoker: newRecorder(funcs), Routes: routes, Observer: obs})
	c := dial(t, gw.URL(), http.Header{"User-Agent": {"observer-test"}})

	open := obs.wait(t, gateway.ObservedOpen, "", nil)
	id := open.ConnectionID
	if open.UserAgent != "observer-test" || open.SourceIP != "127.0.0.1" || open.ConnectedAt.IsZero() {
		t.Errorf("open: got %+v", open)
	}

	c.text(`{"action":"x","n":1}`)
	if got := c.readText(); got != `echo:{"action":"x","n":1}` {
		t.Fatalf("got %q", got)
	}
	in := obs.wait(t, gateway.ObservedMessage, id, nil)
	if string(in.Body) != `{"action":"x","n":1}` || in.Route != "$default" || in.Size != len(in.Body) || in.Injected {
		t.Errorf("message: got %+v", in)
	}
	resp := obs.wait(t, gateway.ObservedSend, id, nil)
	if string(resp.Body) != `echo:{"action":"x","n":1}` || resp.Via != gateway.ViaRouteResponse || resp.Status != 200 {
		t.Errorf("route response: got %+v (body %q)", resp, resp.Body)
	}

	// A post, and one to a connection that is not there.
	post := func(conn, body string) int {
		req, _ := http.NewRequest(http.MethodPost, gw.ManagementEndpoint()+"/@connections/"+conn, strings.NewReader(body))
		r, err := (&http.Client{Transport: gw.ManagementTransport()}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	post(id, "pushed")
	c.readText()
	obs.wait(t, gateway.ObservedSend, id, func(o gateway.Observation) bool {
		return o.Via == gateway.ViaPost && o.Status == 200 && string(o.Body) == "pushed"
	})
	post("R1kmxc2VNjMCFIA=", "lost")
	obs.wait(t, gateway.ObservedSend, "R1kmxc2VNjMCFIA=", func(o gateway.Observation) bool { return o.Status == 410 && o.Size == 4 })

	// A failed invocation, and the gateway's own answer to it.
	c.text(`{"action":"fail"}`)
	c.readText()
	fail := obs.wait(t, gateway.ObservedInvokeError, id, nil)
	if fail.Function != "Fail" || fail.Route != "fail" || fail.Err == nil {
		t.Errorf("invoke error: got %+v", fail)
	}
	obs.wait(t, gateway.ObservedSend, id, func(o gateway.Observation) bool {
		return o.Via == gateway.ViaGateway && strings.Contains(string(o.Body), "Internal server error")
	})

	// Inject: as if the client had sent it.
	if err := gw.Inject(context.Background(), id, []byte(`{"injected":true}`)); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	if got := c.readText(); got != `echo:{"injected":true}` {
		t.Fatalf("after Inject the client got %q", got)
	}
	obs.wait(t, gateway.ObservedMessage, id, func(o gateway.Observation) bool { return o.Injected })
	if err := gw.Inject(context.Background(), "R1kmxc2VNjMCFIA=", []byte(`{}`)); !errors.Is(err, gateway.ErrNoConnection) {
		t.Errorf("Inject to no connection: got %v, want ErrNoConnection", err)
	}
	if err := gw.Inject(context.Background(), id, []byte{'"', 0xff, '"'}); err == nil {
		t.Error("Inject of invalid UTF-8: no error")
	}

	// A DELETE closes it.
	req, _ := http.NewRequest(http.MethodDelete, gw.ManagementEndpoint()+"/@connections/"+id, nil)
	if r, err := (&http.Client{Transport: gw.ManagementTransport()}).Do(req); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	obs.wait(t, gateway.ObservedDelete, id, func(o gateway.Observation) bool { return o.Status == 204 })
	closed := obs.wait(t, gateway.ObservedClose, id, nil)
	if closed.Code != 1000 {
		t.Errorf("close: got %+v, want code 1000", closed)
	}

	gw.Close()
	obs.wait(t, gateway.ObservedShutdown, "", nil)
}

func TestAStageNamedLikeAnAPIPrefixIsRefused(t *testing.T) {
	for _, tc := range []struct {
		stage, prefix string
		refused       bool
	}{
		{"_inspector", "/_inspector/", true},
		{"dev", "/_inspector/", false},
		{"_inspectors", "/_inspector/", false},
		{"2015-03-31", "/2015-03-31/functions/", false},
	} {
		_, err := gateway.New(gateway.Config{
			Addr: "127.0.0.1:0", Stage: tc.stage, Invoker: newRecorder(nil), Logger: discard(),
			APIs: map[string]http.Handler{tc.prefix: http.NotFoundHandler()},
		})
		if refused := err != nil; refused != tc.refused {
			t.Errorf("stage %q beside %s: err %v, want refused %v", tc.stage, tc.prefix, err, tc.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "reserved") {
			t.Errorf("stage %q: the error %q does not say why", tc.stage, err)
		}
	}
}

func TestHomeServesTheRootOnly(t *testing.T) {
	home := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("home")) })
	gw := start(t, gateway.Config{Invoker: newRecorder(standardFuncs()), Routes: standardRoutes(), Home: home})
	for path, want := range map[string]int{"/": 200, "/other": 403, "/dev": 426} {
		r, err := http.Get("http://" + gw.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, r.StatusCode, want)
		}
	}
	// The stage still takes WebSocket clients.
	c := dial(t, gw.URL(), nil)
	c.text("hi")
	if got := c.readText(); got != "echo:hi" {
		t.Errorf("got %q", got)
	}
}
