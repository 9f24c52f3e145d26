package router_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
)

// FuzzRoute feeds arbitrary messages from an identified member and from an
// anonymous connection to the routing core on the memory store, and checks
// what a client of any of them would check: no message panics or fails the
// router; every answer is a well-formed frame (IDENTIFY, PONG or ERROR, or a
// DISCONNECT sent before a close); a delivery goes only where its intent
// says, never back to the sender, never to an anonymous connection, at most
// once per recipient, and parses as the protocol says.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		`{"op":0,"id":"m","event":"E","data":{"a":[1,2]},"intent":{"target":"GROUP","identifier":"alpha"}}`,
		`{"op":0,"event":"E","intent":{"target":"GLOBAL"}}`,
		`{"op":5,"id":"q","data":"r","intent":{"target":"DIRECT","identifier":"svc-b"}}`,
		`{"op":0,"event":"E","intent":{"target":"DIRECT","identifier":"svc-a"}}`,
		`{"op":0,"event":"E","intent":{"target":"GROUP","identifier":"bad group!"}}`,
		`{"op":1,"data":{"token":"mst_good","group":"alpha"}}`,
		`{"op":1,"data":{"token":"mst_bad","group":"alpha"}}`,
		`{"op":3,"id":"p"}`, `{"op":2}`, `{"op":4}`, `{"op":7}`, `not json`, `{"op":0,"data":"\ud800"}`,
		`{"op":0,"event":"E","data":[[[[[[[[[[[[]]]]]]]]]]]],"intent":{"target":"GLOBAL"}}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, fromMember bool) {
		e := newEnv(t, router.Config{MaxMessageBytes: 4096})
		a, b, c := e.connect(), e.connect(), e.connect()
		anon := e.connect()
		identifyAs(t, e, a, "svc-a", "alpha")
		identifyAs(t, e, b, "svc-b", "alpha")
		identifyAs(t, e, c, "svc-c", "beta")
		sender := a
		if !fromMember {
			sender = anon
		}

		reply, err := e.r.Handle(t.Context(), router.Request{ConnectionID: sender.id, ConnectedAt: sender.at, Body: body})
		if err != nil {
			t.Fatalf("Handle(%q) failed: %v", body, err)
		}
		if reply != nil {
			var fr protocol.Frame
			if err := json.Unmarshal(reply, &fr); err != nil {
				t.Fatalf("answer %s to %q is not a frame: %v", reply, body, err)
			}
			switch fr.Op {
			case protocol.OpIdentify, protocol.OpPong:
			case protocol.OpError:
				var d protocol.ErrorData
				if json.Unmarshal(fr.Data, &d) != nil || d.Reason != d.Code.Reason() || d.Reason == "UNKNOWN_ERROR" || d.Message == "" {
					t.Fatalf("answer %s to %q: a malformed or unknown error", reply, body)
				}
			default:
				t.Fatalf("answer %s to %q: op %v is no answer", reply, body, fr.Op)
			}
		}

		members := map[string]*conn{"svc-a": a, "svc-b": b, "svc-c": c}
		group := map[string]string{a.id: "alpha", b.id: "alpha", c.id: "beta"}
		for connID, frames := range e.sender.sent {
			for _, raw := range frames {
				var fr protocol.Frame
				if err := json.Unmarshal(raw, &fr); err != nil {
					t.Fatalf("delivered %s to %s: not JSON: %v", raw, connID, err)
				}
				if fr.Op == protocol.OpDisconnect {
					if connID != sender.id {
						t.Fatalf("DISCONNECT %s went to %s, not the sender", raw, connID)
					}
					continue
				}
				if connID == sender.id {
					t.Fatalf("the sender received %s", raw)
				}
				if connID == anon.id {
					t.Fatalf("an anonymous connection received %s", raw)
				}
				if fr.Source == nil || fr.Source.ID != "svc-a" || fr.Intent == nil {
					t.Fatalf("delivered %s without the sender's source and intent", raw)
				}
				if _, err := protocol.Parse(raw); err != nil {
					t.Fatalf("delivered %s does not parse: %v", raw, err)
				}
				switch fr.Intent.Target {
				case protocol.TargetGroup:
					if group[connID] != fr.Intent.Identifier {
						t.Fatalf("GROUP %q delivered to %s of group %q", fr.Intent.Identifier, connID, group[connID])
					}
				case protocol.TargetDirect:
					if m := members[fr.Intent.Identifier]; m == nil || m.id != connID {
						t.Fatalf("DIRECT %q delivered to %s", fr.Intent.Identifier, connID)
					}
				}
				if len(frames) > 1 {
					t.Fatalf("%s received %d frames for one message", connID, len(frames))
				}
			}
		}
		// The sender is closed only after its DISCONNECT frame, unless it
		// asked to be (op 2).
		if closeAt := slices.Index(e.sender.calls, "close:"+sender.id); closeAt >= 0 {
			m, _ := protocol.Parse(body)
			asked := m != nil && m.Op == protocol.OpDisconnect
			if sendAt := slices.Index(e.sender.calls, "send:"+sender.id); !asked && (sendAt < 0 || sendAt > closeAt) {
				t.Fatalf("%q closed the sender without a DISCONNECT first: %v", body, e.sender.calls)
			}
		}
	})
}

// identifyAs records c as identified with a fixed service id, so that
// DIRECT targets are known to the fuzzer.
func identifyAs(t *testing.T, e *env, c *conn, serviceID, group string) {
	t.Helper()
	cur, err := e.store.Connection(t.Context(), c.id)
	if err != nil {
		t.Fatal(err)
	}
	cur.Identity = &router.Identity{ServiceID: serviceID, Group: group}
	if err := e.store.Identify(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	c.serviceID = serviceID
}
