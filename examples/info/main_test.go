package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The README's two commands against a local gateway in each mode: the
// services of damon answer, and the asker prints each answer and how many
// it expected.
func TestTheINFOExchangeRunsAsTheReadmeShows(t *testing.T) {
	for _, mode := range []string{"required", "off"} {
		t.Run("ConnectAuth="+mode, func(t *testing.T) {
			const tok = "mst_example-info"
			s, err := localrun.Start(t.Context(), localrun.Options{
				Addr: "127.0.0.1:0", Template: "../../template.yaml", Token: tok, BuildDir: t.TempDir(),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Parameters: map[string]string{"ConnectAuth": mode},
			})
			if err != nil {
				t.Fatal(err)
			}
			go s.Run(context.Background())
			t.Cleanup(func() { s.Close() })
			common := []string{"--url", s.URL(), "--token", tok}
			if mode == "off" {
				common = append(common, "--identify-after-connect")
			}

			ctx, stop := context.WithCancel(t.Context())
			var served syncBuffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, append([]string{"serve", "--shards", "2"}, common...), &served, io.Discard) }()
			for deadline := time.Now().Add(10 * time.Second); strings.Count(served.String(), "answering INFO") < 2; {
				if time.Now().After(deadline) {
					t.Fatalf("the services did not start: %s", served.String())
				}
				time.Sleep(20 * time.Millisecond)
			}

			var asked syncBuffer
			if err := run(t.Context(), append([]string{"ask", "--timeout", "5s"}, common...), &asked, io.Discard); err != nil {
				t.Fatalf("ask: %v\n%s", err, asked.String())
			}
			out := asked.String()
			for _, want := range []string{"asked group damon for INFO", "shard 0, 10 channels, 100 users", "shard 1, 11 channels, 200 users", "2 answers; expected 2"} {
				if !strings.Contains(out, want) {
					t.Errorf("ask printed:\n%s\nwant %q", out, want)
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			if n := strings.Count(served.String(), "answered INFO"); n != 2 {
				t.Errorf("serve printed %d answers, want 2:\n%s", n, served.String())
			}
		})
	}
}
