package registry

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
)

// faultyRegistry serves an in-memory registry holding app:cache-main behind a
// fault proxy with rules, and returns its host.
func faultyRegistry(t *testing.T, rules ...*faultproxy.Rule) string {
	t.Helper()
	up := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(up.Close)
	push(t, strings.TrimPrefix(up.URL, "http://"), "app:cache-main", layerImage(t, must(random.Layer(64, types.OCILayer))))
	return faultproxy.Serve(t, up.URL, rules...).Host
}

// A throttled probe is retried no sooner than the registry's Retry-After, which
// is longer here than go-containerregistry's own first backoff (1 s).
func TestThrottledProbeWaitsForRetryAfter(t *testing.T) {
	t.Parallel()
	throttle := &faultproxy.Rule{Method: "GET", Path: `^/v2/app/manifests/`, Count: 1, Status: 429, RetryAfter: 3 * time.Second}
	host := faultyRegistry(t, throttle)
	reg := New(authn.DefaultKeychain, host)

	p := reg.Probe(context.Background(), []string{host + "/app:cache-main"})[0]
	if p.Kind != Cache || p.Err != nil {
		t.Fatalf("probe after one 429: exists=%v err=%v", p.Kind, p.Err)
	}
	if a := throttle.Arrivals(); len(a) != 2 || a[1].Sub(a[0]) < 3*time.Second {
		t.Errorf("attempts %v: want 2, the retry at least 3 s (Retry-After) after the 429", a)
	}
}

// A registry that stays unavailable is given up on after three attempts, with
// its error.
func TestUnavailableProbeGivesUp(t *testing.T) {
	t.Parallel()
	down := &faultproxy.Rule{Method: "GET", Path: `^/v2/app/manifests/`, Status: 503, RetryAfter: time.Second}
	host := faultyRegistry(t, down)
	reg := New(authn.DefaultKeychain, host)

	p := reg.Probe(context.Background(), []string{host + "/app:cache-main"})[0]
	if p.Exists() || p.Err == nil || !strings.Contains(p.Err.Error(), "faultproxy: injected 503 Service Unavailable") {
		t.Fatalf("exists=%v err=%v; want the registry's 503", p.Kind, p.Err)
	}
	if down.Matched() != 3 {
		t.Errorf("%d attempts; want 3", down.Matched())
	}
}
