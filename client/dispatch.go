package client

import (
	"sync"
)

// queue is a bounded FIFO of work consumed by a fixed set of goroutines.
// Producers never block: a push past the bound fails. Closing it wakes
// every consumer; drain says whether they finish what is queued first.
type queue[T any] struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []T
	max    int
	closed bool
	drain  bool
}

func newQueue[T any](max int) *queue[T] {
	q := &queue[T]{max: max}
	q.cond.L = &q.mu
	return q
}

// push adds v and reports whether it was queued: not when the queue is full
// or closed.
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, v)
	q.cond.Signal()
	return true
}

// pushAlways adds v even past the bound, and reports whether it was
// queued: not once the queue is closed. It is for items that are few by
// nature and must not be lost (the lifecycle callbacks).
func (q *queue[T]) pushAlways(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append(q.items, v)
	q.cond.Signal()
	return true
}

// pop waits for the next item; ok is false once the queue is closed (and,
// when it drains, empty).
func (q *queue[T]) pop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 || (q.closed && !q.drain) {
		return v, false
	}
	v = q.items[0]
	var zero T
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}

// close stops the queue; with drain, consumers take what is queued first,
// otherwise it is dropped.
func (q *queue[T]) close(drain bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed, q.drain = true, drain
	if !drain {
		clear(q.items)
		q.items = nil
	}
	q.cond.Broadcast()
}

// recentIDs remembers the ids of the last calls that ended, so that their
// late answers are dropped instead of reaching the handlers (where an
// answer to INFO would look like a new INFO).
type recentIDs struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

const recentCalls = 1024

func newRecentIDs() *recentIDs {
	return &recentIDs{set: map[string]struct{}{}, ring: make([]string, recentCalls)}
}

func (r *recentIDs) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[id]; ok {
		return
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

func (r *recentIDs) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[id]
	return ok
}
