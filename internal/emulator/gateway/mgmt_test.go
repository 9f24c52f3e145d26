package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
)

// The in-memory transport serves a post as a server would see it,
// whatever the body: of a known length, of an unknown one (a client's
// ContentLength 0 with a body), empty, or over the limit; and the message
// arrives whole, in one frame or many.
func TestInMemoryTransportReadsEveryKindOfBody(t *testing.T) {
	rec := newRecorder(standardFuncs())
	gw := start(t, gateway.Config{Routes: standardRoutes(), Invoker: rec, MaxFrameBytes: 1 << 10, MaxMessageBytes: 4 << 10})
	c := dial(t, gw.URL(), nil)
	ev, _ := rec.event(t, "Connect")
	url := gw.ManagementEndpoint() + "/@connections/" + ev.RequestContext.ConnectionID
	hc := &http.Client{Transport: gw.ManagementTransport()}
	tests := []struct {
		name       string
		body       func() io.Reader
		wantStatus int
		want       string // the message the client receives
	}{
		{"known length", func() io.Reader { return strings.NewReader("hello") }, http.StatusOK, "hello"},
		{"unknown length", func() io.Reader { return io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")) }, http.StatusOK, "hello"},
		{"over a frame", func() io.Reader { return strings.NewReader(strings.Repeat("x", 3000)) }, http.StatusOK, strings.Repeat("x", 3000)},
		{"empty", func() io.Reader { return strings.NewReader("") }, http.StatusOK, ""},
		{"over the limit", func() io.Reader { return strings.NewReader(strings.Repeat("x", 5000)) }, http.StatusRequestEntityTooLarge, ""},
		{"over the limit, unknown length", func() io.Reader { return io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))) }, http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := hc.Post(url, "application/octet-stream", tt.body())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if resp.Header.Get("X-Amzn-RequestId") == "" {
				t.Error("no X-Amzn-RequestId")
			}
			if tt.wantStatus != http.StatusOK {
				if got := resp.Header.Get("X-Amzn-ErrorType"); got != "PayloadTooLargeException" {
					t.Errorf("X-Amzn-ErrorType: got %q, want PayloadTooLargeException", got)
				}
				return
			}
			got := c.readText()
			if got != tt.want {
				t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}
