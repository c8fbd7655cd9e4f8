package retryafter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/retryafter"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
)

func TestParse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"3600":                          retryafter.Max,
		"99999999999999999999":          -1,
		"Fri, 02 Jan 2026 03:04:09 GMT": 4 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // already past
		"-1":                            -1,
		"soon":                          -1,
		"":                              -1,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		d, ok := retryafter.Parse(h, now)
		if ok != (want >= 0) || (ok && d != want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", v, d, ok, want)
		}
	}
}

// A request after a 429 with Retry-After waits that long, even when the client
// above retries at once; a cancelled one stops waiting.
func TestTransportWaitsForRetryAfter(t *testing.T) {
	t.Parallel()
	throttle := &faultproxy.Rule{Count: 1, Status: 429, RetryAfter: 2 * time.Second}
	f, err := faultproxy.New(throttle)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	c := &http.Client{Transport: &retryafter.Transport{Base: http.DefaultTransport}}
	get := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	if code, err := get(context.Background()); code != 429 || err != nil {
		t.Fatalf("first request: %d, %v", code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request cancelled while waiting: %v", err)
	}
	if code, err := get(context.Background()); code != 200 || err != nil {
		t.Fatalf("retry: %d, %v", code, err)
	}
	a := throttle.Arrivals()
	if len(a) != 2 || a[1].Sub(a[0]) < 2*time.Second {
		t.Errorf("the retry came %v after the 429 (Retry-After: 2); arrivals %v", a[len(a)-1].Sub(a[0]), a)
	}
}
