package localrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// required is the template's default mode, written out.
var required = map[string]string{"ConnectAuth": "required"}

// dialAuth opens a connection with credentials in the handshake: the
// token as a bearer (or, with asProtocol, as a browser offers it) and the
// group in the query string. It returns the connection, or the HTTP status
// of a refused handshake.
func dialAuth(t *testing.T, s *localrun.Server, name, tok, group string, asProtocol bool) (*svc, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := s.URL()
	if group != "" {
		u += "?group=" + group
	}
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	switch {
	case tok == "":
	case asProtocol:
		opts.Subprotocols = []string{"mastersocket", "bearer." + tok}
	default:
		opts.HTTPHeader.Set("Authorization", "Bearer "+tok)
	}
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		if resp == nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		return nil, resp.StatusCode
	}
	return wrap(t, c, name), http.StatusSwitchingProtocols
}

// whoAmI sends an IDENTIFY without a token and returns the identity it is
// answered with.
func (v *svc) whoAmI() protocol.IdentifiedData {
	v.t.Helper()
	v.send(`{"op":1,"id":"who"}`)
	for {
		f := v.next()
		if f.Op == protocol.OpEvent {
			continue // traffic of the group, which may come first
		}
		var d protocol.IdentifiedData
		if f.Op != protocol.OpIdentify || f.ID != "who" || json.Unmarshal(f.Data, &d) != nil {
			v.t.Fatalf("%s: who am I answered %+v %s", v.name, f, f.Data)
		}
		v.id = d.ID
		return d
	}
}

func TestConnectAuthEndToEnd(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			o := m.opts(t)
			o.Parameters = required
			s := startLocal(t, o)
			scoped := "mst_edge-only"
			if err := s.Store().PutToken(t.Context(), token.Token{Hash: token.HashOf(scoped), Groups: []string{"edge"}}); err != nil {
				t.Fatal(err)
			}
			listener, status := dialAuth(t, s, "listener", e2eToken, "edge", false)
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("a handshake with a valid token got %d", status)
			}

			// Handshakes without valid credentials are refused and leave
			// nothing behind.
			for _, tt := range []struct {
				name, tok, group string
				want             int
			}{
				{"no credentials", "", "edge", 401},
				{"an unknown token", "mst_nobody", "edge", 401},
				{"no group", e2eToken, "", 403},
				{"a group the token does not allow", scoped, "core", 403},
			} {
				if _, got := dialAuth(t, s, tt.name, tt.tok, tt.group, false); got != tt.want {
					t.Errorf("%s: got HTTP %d, want %d", tt.name, got, tt.want)
				}
			}
			if got := items(t, s); len(got) != 1 {
				t.Errorf("after the refused handshakes the store knows the connections %v, want only the listener", got)
			}
			st := s.Stats()
			if st.Unauthorized401 != 2 || st.Forbidden403 != 2 || st.Authorized != 1 || st.Invocations["ConnectFunction"] != 1 {
				t.Errorf("got %+v, want 2 handshakes refused with 401, 2 with 403, 1 allowed and only its $connect run", st)
			}

			// An EVENT right behind the handshake, with no IDENTIFY and no
			// wait, is delivered: 100 times over.
			const senders = 100
			var conns []*svc
			for i := range senders {
				v, status := dialAuth(t, s, fmt.Sprintf("sender%d", i), e2eToken, "edge", i%2 == 1)
				if status != http.StatusSwitchingProtocols {
					t.Fatalf("sender %d: handshake got %d", i, status)
				}
				v.send(fmt.Sprintf(`{"op":0,"id":"first-%d","event":"HI","intent":{"target":"GROUP","identifier":"edge"}}`, i))
				conns = append(conns, v)
			}
			got := map[string]bool{}
			for len(got) < senders {
				f := listener.next()
				if f.Op != protocol.OpEvent || f.Event != "HI" || f.Source == nil || f.Source.Group != "edge" {
					t.Fatalf("listener got %+v, want the senders' HI", f)
				}
				if got[f.ID] {
					t.Fatalf("%s delivered twice", f.ID)
				}
				got[f.ID] = true
			}

			// The senders learn their identity with "who am I", and are
			// reachable by it; the browser-style ones got the subprotocol.
			a, b := conns[0], conns[1]
			if d := a.whoAmI(); len(d.ID) != 36 || d.Group != "edge" || d.Ping != 30000 {
				t.Errorf("who am I: got %+v", d)
			}
			if p := b.c.Subprotocol(); p != "mastersocket" {
				t.Errorf("a browser-style handshake selected %q, want mastersocket", p)
			}
			b.whoAmI()
			b.send(`{"op":0,"id":"d1","event":"ASK","intent":{"target":"DIRECT","identifier":"` + a.id + `"}}`)
			for {
				f := a.next()
				if f.Op == protocol.OpEvent && f.ID == "d1" {
					if f.Source.ID != b.id {
						t.Errorf("DIRECT came from %q, want %q", f.Source.ID, b.id)
					}
					break
				}
			}
			// IDENTIFY with a token: the connection is identified already.
			a.send(`{"op":1,"id":"again","data":{"token":"` + e2eToken + `","group":"edge"}}`)
			for {
				f := a.next()
				if f.Op == protocol.OpEvent {
					continue
				}
				var d protocol.ErrorData
				if f.Op != protocol.OpError || f.ID != "again" || json.Unmarshal(f.Data, &d) != nil || d.Code != protocol.CodeAlreadyIdentified {
					t.Fatalf("IDENTIFY with a token: got %+v %s, want ALREADY_IDENTIFIED", f, f.Data)
				}
				break
			}

			// Closing them leaves nothing behind.
			for _, v := range append(conns, listener) {
				v.c.Close(websocket.StatusNormalClosure, "")
			}
			eventually(t, func() bool { return len(items(t, s)) == 0 })
			if err := s.Store().GroupMembers(t.Context(), "edge", func(page []router.Member) error {
				if len(page) > 0 {
					return fmt.Errorf("%d members left", len(page))
				}
				return nil
			}); err != nil {
				t.Errorf("group edge after every connection closed: %v", err)
			}
		})
	}
}

func TestTheTemplatesDefaultModeRefusesAnonymousHandshakes(t *testing.T) {
	s := startLocal(t, localrun.Options{Parameters: map[string]string{"ConnectAuth": "required"}})
	def := startLocalDefault(t)
	for name, srv := range map[string]*localrun.Server{"ConnectAuth=required": s, "no override": def} {
		if _, status := dialAuth(t, srv, "anonymous", "", "", false); status != http.StatusUnauthorized {
			t.Errorf("%s: an anonymous handshake got %d, want 401", name, status)
		}
		if got := srv.Stats().Invocations["ConnectFunction"]; got != 0 {
			t.Errorf("%s: $connect ran %d times for a refused handshake", name, got)
		}
	}
}

func TestTheSummarySaysHowToConnectInEachMode(t *testing.T) {
	for mode, want := range map[string][]string{
		"required": {"connect auth   required", "wscat -c '", "?group=demo' -H 'Authorization: Bearer " + e2eToken + "'", "'bearer." + e2eToken + "'"},
		"off":      {"connect auth   off", `{"op":1,"data":{"token":"` + e2eToken + `","group":"demo"}}`},
	} {
		s := startLocal(t, localrun.Options{Parameters: map[string]string{"ConnectAuth": mode}})
		for _, w := range want {
			if !strings.Contains(s.Summary, w) {
				t.Errorf("%s: the summary lacks %q:\n%s", mode, w, s.Summary)
			}
		}
		if !strings.Contains(s.Summary, s.URL()) {
			t.Errorf("%s: the summary lacks the URL %s", mode, s.URL())
		}
	}
}

// startLocalDefault runs template.yaml with no parameter overridden.
func startLocalDefault(t *testing.T) *localrun.Server {
	t.Helper()
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: "../../../template.yaml", Token: e2eToken, BuildDir: t.TempDir(), Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(context.Background())
	t.Cleanup(func() { s.Close() })
	return s
}
