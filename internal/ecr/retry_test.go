package ecr

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
)

const target = "AmazonEC2ContainerRegistry_V20150921."

// faulty starts the ECR double with rules in front of its API.
func faulty(t *testing.T, rules ...*faultproxy.Rule) *Client {
	t.Helper()
	f, err := faultproxy.New(rules...)
	if err != nil {
		t.Fatal(err)
	}
	_, c, _ := double(t, fakeecr.Config{Wrap: f.Wrap, Repositories: []fakeecr.Repository{{Name: "app"}}})
	return c
}

// ECR throttles with ThrottlingException (HTTP 400) or a bare 429; both are
// retried, and a Retry-After longer than the SDK's backoff is waited for.
func TestThrottledCallsAreRetried(t *testing.T) {
	t.Parallel()
	token := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": target + "GetAuthorizationToken"},
		Count: 1, Status: 429, RetryAfter: 2 * time.Second}
	describe := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": target + "DescribeRepositories"},
		Count: 2, Status: 400, Body: `{"__type":"ThrottlingException","message":"Rate exceeded"}`}
	c := faulty(t, token, describe)

	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("token after one 429: %v", err)
	}
	// The SDK's first backoff on throttling is at most 1 s.
	if a := token.Arrivals(); len(a) != 2 || a[1].Sub(a[0]) < 2*time.Second {
		t.Errorf("token attempts %v: want 2, the second at least 2 s (Retry-After) after the first", a)
	}
	if err := c.CheckTagOverwrite(context.Background(), "", "app", "cache-main"); err != nil {
		t.Fatalf("describe after two ThrottlingExceptions: %v", err)
	}
	if n := describe.Matched(); n != 3 {
		t.Errorf("%d DescribeRepositories attempts, want 3", n)
	}
}

// A service that stays unavailable is given up on after MaxAttempts, each
// retry waiting for Retry-After: a clear error after a bounded number of tries.
func TestUnavailableGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	token := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": target + "GetAuthorizationToken"},
		Status: 503, RetryAfter: time.Second, Body: `{"__type":"ServiceUnavailableException","message":"Service Unavailable"}`}
	c := faulty(t, token)

	_, err := c.Token(context.Background())
	if err == nil {
		t.Fatal("token from an unavailable service")
	}
	for _, want := range []string{"get ECR authorization token", "exceeded maximum number of attempts, 5", "StatusCode: 503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// Each retry comes at least the Retry-After of 1 s after the attempt
	// before; the SDK alone would wait well under a second for a 503.
	a := token.Arrivals()
	if len(a) != MaxAttempts {
		t.Fatalf("%d attempts, want %d", len(a), MaxAttempts)
	}
	for i := 1; i < len(a); i++ {
		if gap := a[i].Sub(a[i-1]); gap < time.Second {
			t.Errorf("attempt %d came %v after the one before; want at least 1 s (Retry-After)", i+1, gap)
		}
	}
}
