// Package retryafter honours the Retry-After header of throttled (429) and
// unavailable (503) HTTP responses (RFC 9110, section 10.2.3) in the action's
// own registry and ECR calls: go-containerregistry and the AWS SDK retry those
// on their own backoff and ignore the header.
package retryafter

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Max caps how long one Retry-After can hold up a retry, so that a run gives up
// within a bounded time whatever a server asks.
const Max = 10 * time.Second

// Parse returns how long h's Retry-After (delay-seconds or an HTTP-date) asks
// to wait from now, at most Max; ok is false when there is no usable header.
func Parse(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return max(0, min(d, Max)), true
}

// Transport holds back requests while a Retry-After from an earlier 429 or 503
// response is pending, so that the retries of a client above it (such as
// go-containerregistry's) come no sooner than the server asked.
type Transport struct {
	Base http.RoundTripper

	mu        sync.Mutex
	notBefore time.Time
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	wait := time.Until(t.notBefore)
	t.mu.Unlock()
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-req.Context().Done():
			return nil, fmt.Errorf("waiting %s for the registry's Retry-After: %w", wait.Round(time.Millisecond), context.Cause(req.Context()))
		}
	}
	resp, err := t.Base.RoundTrip(req)
	if err == nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := Parse(resp.Header, time.Now()); ok {
			t.mu.Lock()
			t.notBefore = time.Now().Add(d)
			t.mu.Unlock()
		}
	}
	return resp, err
}
