package router

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// countingSender counts the posts, and blocks each until release is closed.
type countingSender struct {
	mu      sync.Mutex
	posts   map[string]int
	release chan struct{}
}

func (s *countingSender) Send(_ context.Context, connID string, _ []byte) error {
	<-s.release
	s.mu.Lock()
	s.posts[connID]++
	s.mu.Unlock()
	return nil
}

func (s *countingSender) Close(context.Context, string) error { return nil }

func TestWorkersServeFanOutAfterFanOutThenEndWhenIdle(t *testing.T) {
	snd := &countingSender{posts: map[string]int{}, release: make(chan struct{})}
	r := &Router{sender: snd, cfg: Config{FanOut: 3}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		workers: newWorkers(200 * time.Millisecond)}
	recipients := []Member{{ConnectionID: "a"}, {ConnectionID: "b"}, {ConnectionID: "c"}, {ConnectionID: "d"}, {ConnectionID: "e"}}

	d := r.newDeliveries(t.Context(), []byte(`{}`), 0)
	added := make(chan struct{})
	go func() {
		defer close(added)
		for _, m := range recipients {
			d.add(m) // the fourth waits for one of the first three posts to end
		}
	}()
	waitFor(t, "3 workers (FanOut) to run the blocked posts", func() bool { return r.workers.running() == 3 })
	time.Sleep(10 * time.Millisecond) // the fourth recipient waits for a slot
	if got := r.workers.running(); got != 3 {
		t.Errorf("got %d workers while 3 posts are blocked, want 3 (FanOut)", got)
	}
	close(snd.release)
	<-added
	if got, err := d.wait(); got.Delivered != 5 || err != nil {
		t.Fatalf("got receipt %+v, %v; want 5 delivered", got, err)
	}
	// A second fan-out finds the workers waiting: it starts none.
	waitFor(t, "the 3 workers to wait for posts", func() bool { return r.workers.waiting.Load() == 3 })
	d = r.newDeliveries(t.Context(), []byte(`{}`), 0)
	for _, m := range recipients[:3] {
		d.add(m)
	}
	if got, _ := d.wait(); got.Delivered != 3 {
		t.Fatalf("second fan-out: got %+v, want 3 delivered", got)
	}
	if got := r.workers.running(); got > 3 {
		t.Errorf("got %d workers after the second fan-out, want at most 3", got)
	}
	for id, n := range snd.posts {
		if want := map[string]int{"a": 2, "b": 2, "c": 2, "d": 1, "e": 1}[id]; n != want {
			t.Errorf("%s got %d posts, want %d", id, n, want)
		}
	}

	waitFor(t, "the idle workers to end", func() bool { return r.workers.running() == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
