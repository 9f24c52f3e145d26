package gateway

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Throttle makes an HTTP API answer as a busy AWS API does: every answer
// takes Latency, and requests beyond Rate per second (a token bucket of
// Burst) are refused at once with 429 LimitExceededException, as the
// @connections API refuses calls beyond the account's quota. The zero
// value lets everything through at once.
type Throttle struct {
	// Rate is the steady requests per second allowed; 0: no limit.
	Rate float64
	// Burst is the bucket's size; default Rate / 2 (AWS's account quota
	// of @connections calls is 10,000/s with a burst of 5,000).
	Burst float64
	// Latency is added to every answer that is not refused.
	Latency time.Duration

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// allow takes a token, or reports that there is none.
func (t *Throttle) allow() bool {
	if t.Rate <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	burst := t.Burst
	if burst <= 0 {
		burst = max(t.Rate/2, 1)
	}
	now := time.Now()
	if t.last.IsZero() {
		t.tokens = burst
	} else {
		t.tokens = min(burst, t.tokens+now.Sub(t.last).Seconds()*t.Rate)
	}
	t.last = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// Wrap returns h behind the throttle.
func (t *Throttle) Wrap(h http.Handler) http.Handler {
	if t == nil || (t.Rate <= 0 && t.Latency <= 0) {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.allow() {
			w.Header().Set("X-Amzn-RequestId", newID())
			awsError(w, http.StatusTooManyRequests, "LimitExceededException", "Rate exceeded")
			return
		}
		if t.Latency > 0 {
			timer := time.NewTimer(t.Latency)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
			}
		}
		h.ServeHTTP(w, r)
	})
}

// apiHandler serves the management API, behind cfg.ManagementThrottle,
// the other APIs of cfg.APIs by path prefix, and cfg.Home at "/".
func (g *Gateway) apiHandler() http.Handler {
	mgmt := g.cfg.ManagementThrottle.Wrap(g.mgmtHandler())
	if len(g.cfg.APIs) == 0 && g.cfg.Home == nil {
		return mgmt
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && g.cfg.Home != nil {
			g.cfg.Home.ServeHTTP(w, r)
			return
		}
		if h := g.otherAPI(r.URL.Path); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		mgmt.ServeHTTP(w, r)
	})
}

// otherAPI returns the handler of cfg.APIs that serves path, or nil.
func (g *Gateway) otherAPI(path string) http.Handler {
	for prefix, h := range g.cfg.APIs {
		if strings.HasPrefix(path, prefix) {
			return h
		}
	}
	return nil
}
