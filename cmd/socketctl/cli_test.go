package main

import (
	"encoding/json"
	"errors"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
)

// everyCommand is every command line that names a command, as a person
// types it.
var everyCommand = [][]string{
	{"token"}, {"token", "create"}, {"token", "list"}, {"token", "revoke"},
	{"connections"}, {"send"}, {"kick"},
}

func TestHelpListsEveryCommandAndExitsZero(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, stderr := socketctl(t, nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: got exit %d, stderr %q; want 0 and nothing on stderr", args, code, stderr)
		}
		for _, cmd := range everyCommand[1:] {
			if line := "socketctl " + strings.Join(cmd, " ") + " "; !strings.Contains(out, line) {
				t.Errorf("%v does not list %q:\n%s", args, line, out)
			}
		}
		for _, want := range []string{"--version", "--management-endpoint", "--store dynamodb --dynamodb-endpoint"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v does not mention %s", args, want)
			}
		}
	}
}

func TestNoArgumentsPrintUsageOnStderrAndExitTwo(t *testing.T) {
	code, out, stderr := socketctl(t, nil)
	if code != 2 || out != "" || !strings.Contains(stderr, "socketctl send --event E") || !strings.Contains(stderr, "no command given") {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 2 with the usage on stderr", code, out, stderr)
	}
}

func TestEveryCommandPrintsItsUsageWithDashH(t *testing.T) {
	for _, cmd := range everyCommand {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, out, stderr := socketctl(t, map[string]string{"TABLE_NAME": "t"}, args...)
				if code != 0 || stderr != "" {
					t.Fatalf("got exit %d, stderr %q; want 0", code, stderr)
				}
				if want := "socketctl " + strings.Join(cmd, " "); !strings.Contains(out, "usage:") || !strings.Contains(out, want) {
					t.Errorf("got %q, want the usage of %s", out, want)
				}
				if len(cmd) == 1 && cmd[0] == "token" {
					return
				}
				for _, flag := range []string{"--table NAME", "--endpoint URL"} {
					if !strings.Contains(out, flag) {
						t.Errorf("usage does not list %s:\n%s", flag, out)
					}
				}
			})
		}
		// socketctl help COMMAND says the same as COMMAND -h.
		_, viaFlag, _ := socketctl(t, nil, append(append([]string{}, cmd...), "-h")...)
		code, viaHelp, _ := socketctl(t, nil, append([]string{"help"}, cmd...)...)
		if code != 0 || viaHelp != viaFlag {
			t.Errorf("help %v: got exit %d and %q, want what -h prints", cmd, code, viaHelp)
		}
	}
	if code, out, _ := socketctl(t, nil, "token", "help"); code != 0 || !strings.Contains(out, "socketctl token revoke") {
		t.Errorf("token help: got exit %d, %q", code, out)
	}
	code, _, stderr := socketctl(t, nil, "help", "nothing")
	if code != 2 || !strings.Contains(stderr, `no command "nothing"`) {
		t.Errorf("help of an unknown command: got exit %d, %q", code, stderr)
	}
}

func TestUsageNamesTheKickCodeAndTheSendSource(t *testing.T) {
	_, out, _ := socketctl(t, nil, "kick", "-h")
	if !strings.Contains(out, `{"op":2,"data":{"code":4009,"reason":"KICKED"`) {
		t.Errorf("kick -h does not show the DISCONNECT it sends:\n%s", out)
	}
	_, out, _ = socketctl(t, nil, "send", "-h")
	if !strings.Contains(out, `"source":{"id":"socketctl","group":"socketctl"}`) {
		t.Errorf("send -h does not show the source of the EVENTs it sends:\n%s", out)
	}
}

func TestVersionPrintsTheBuildVersionOrDevel(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := socketctl(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "socketctl ") || len(strings.TrimSpace(out)) <= len("socketctl") {
			t.Errorf("%v: got exit %d, %q", args, code, out)
		}
	}
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build information", nil, false, "devel"},
		{"a release", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, true, "v1.4.0"},
		{"a pseudo-version", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"}}, true, "v0.0.0-20260101120000-0123456789ab+dirty"},
		{"go run without VCS", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "devel"},
		{"a checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.revision", "0123456789abcdef0123", "vcs.modified", "false")}, true, "devel (0123456789ab)"},
		{"a modified checkout", &debug.BuildInfo{Settings: settings("vcs.revision", "0123456789abcdef0123", "vcs.modified", "true")}, true, "devel (0123456789ab, modified)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := version(tt.bi, tt.ok); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpiresInTakesDaysOrAGoDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"1d", 24 * time.Hour, ""},
		{"36500d", 36500 * 24 * time.Hour, ""},
		{"720h", 720 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"30", 0, lifetimeFormat},
		{"30x", 0, lifetimeFormat},
		{"4w", 0, lifetimeFormat},
		{"d", 0, lifetimeFormat},
		{"1.5d", 0, lifetimeFormat},
		{"1d12h", 0, lifetimeFormat},
		{"", 0, lifetimeFormat},
		{"0d", 0, "must be positive"},
		{"-1d", 0, "must be positive"},
		{"0s", 0, "must be positive"},
		{"-1h", 0, "must be positive"},
		{"36501d", 0, "at most 36500d"},
		{"99999999999999999999d", 0, "at most 36500d"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLifetime(tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("got %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, %v; want an error saying %q", got, err, tt.wantErr)
			}
			code, _, stderr := socketctl(t, map[string]string{"TABLE_NAME": "t"}, "token", "create", "--all-groups", "--expires-in", tt.in)
			if code != 2 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("token create --expires-in %q: got exit %d, %q; want exit 2 saying %q", tt.in, code, stderr, tt.wantErr)
			}
		})
	}
}

func TestNoArgumentLookingLikeATokenIsEchoed(t *testing.T) {
	const secret = "mst_0m5CsecretSECRETsecret"
	for _, args := range [][]string{
		{secret},
		{"token", secret},
		{"token", "create", "--group", "a", secret},
		{"token", "list", secret},
		{"token", "list", "--" + secret},
		{"token", "create", "--all-groups", "--expires-in", secret},
		{"help", secret},
		{"connections", secret},
		{"send", "--event", "E", "--global", secret},
		{"send", "--event", secret, "--group", secret},
		{"connections", "--management-endpoint", "http://" + secret},
	} {
		code, out, stderr := socketctl(t, map[string]string{"TABLE_NAME": "t"}, args...)
		if code != 2 {
			t.Errorf("%v: got exit %d, want 2", args, code)
		}
		if strings.Contains(out+stderr, "0m5Csecret") {
			t.Errorf("%v: the output repeats the token: %q %q", args, out, stderr)
		}
	}
}

func TestEventFrameIsTheRoutersDeliveryWithTheOperatorsSource(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		event  string
		data   string
		intent protocol.Intent
		want   string
	}{
		{"global with data", "op-1", "NOTICE", `{ "n": 1 }`, protocol.Intent{Target: protocol.TargetGlobal},
			`{"id":"op-1","op":0,"event":"NOTICE","data":{"n":1},"intent":{"target":"GLOBAL"},"source":{"id":"socketctl","group":"socketctl"}}`},
		{"group without data", "op-2", "<b>&", "", protocol.Intent{Target: protocol.TargetGroup, Identifier: "bots"},
			`{"id":"op-2","op":0,"event":"<b>&","intent":{"target":"GROUP","identifier":"bots"},"source":{"id":"socketctl","group":"socketctl"}}`},
		{"direct with a string", "q", "ASK", `"text"`, protocol.Intent{Target: protocol.TargetDirect, Identifier: "3cc637ab"},
			`{"id":"q","op":0,"event":"ASK","data":"text","intent":{"target":"DIRECT","identifier":"3cc637ab"},"source":{"id":"socketctl","group":"socketctl"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data json.RawMessage
			if tt.data != "" {
				data = json.RawMessage(tt.data)
			}
			got, err := eventFrame(tt.id, tt.event, data, tt.intent)
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
			var f protocol.Frame
			if err := json.Unmarshal(got, &f); err != nil || f.Op != protocol.OpEvent || f.Source == nil || *f.Source != operatorSource {
				t.Errorf("the frame reads as %+v, %v", f, err)
			}
		})
	}
	_, err := eventFrame("x", "E", json.RawMessage(`"`+strings.Repeat("a", 130<<10)+`"`), protocol.Intent{Target: protocol.TargetGlobal})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "over the 131072 bytes") {
		t.Errorf("a 130 KB EVENT: got %v, want a usage error", err)
	}
}

func TestKickFrameIsADisconnectWithTheReason(t *testing.T) {
	got := kickFrame(`maintenance <now> "v2"`)
	want := `{"op":2,"data":{"code":4009,"reason":"KICKED","message":"disconnected by an operator: maintenance <now> \"v2\""}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := kickFrame(""); !strings.Contains(string(got), `"message":"disconnected by an operator"}`) {
		t.Errorf("without a reason: got %s", got)
	}
}
